"""A loss computed by a Python while loop over time steps, a recurrent cell fed its own previous output (seq2seq
decoding, a rollout): the names the loop body assigns before reading them (`pred`, `err`) are its own, not inputs
of the jitted step; `err`, read after the step, comes back out of it."""
import numpy as np
import torch
import torch.nn as nn


class Cell(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 5)
        self.rec = nn.Linear(5, 5)
        self.out = nn.Linear(5, 3)

    def forward(self, x, h):
        h = torch.tanh(self.inp(x) + self.rec(h))
        return self.out(h), h


def main():
    rng = np.random.default_rng(3)
    model = Cell()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.4, dtype=torch.float32))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x0 = torch.tensor(rng.standard_normal((4, 3)), dtype=torch.float32)
    target = torch.tensor(rng.standard_normal((6, 4, 3)), dtype=torch.float32)
    for step in range(6):
        opt.zero_grad()
        inp = x0
        state = torch.zeros(4, 5)
        loss = 0.0
        t = 0
        while t < 6:
            pred, state = model(inp, state)
            err = ((pred - target[t]) ** 2).mean()
            loss = loss + err
            inp = pred.detach()
            t += 1
        loss.backward()
        opt.step()
        print(f"step {step} loss {loss.item():.6f}")
    print(f"final err {err.item():.6f}")


if __name__ == "__main__":
    main()
