"""A trainer whose result is used inside expressions: an f-string, a list append, an if test, a for iterable. Each
call is taken out into a statement of its own that rebinds the model and optimizer state."""
import numpy as np
import torch
import torch.nn as nn


class Regressor(nn.Module):
    def __init__(self, d_in):
        super().__init__()
        self.hidden = nn.Linear(d_in, 16)
        self.out = nn.Linear(16, 1)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def fit(net, opt, batches):
    """One pass over the batches; the mean loss."""
    total = 0.0
    for xb, yb in batches:
        opt.zero_grad()
        loss = ((net(xb) - yb) ** 2).mean()
        loss.backward()
        opt.step()
        total += loss.item()
    return total / len(batches)


def losses_of(net, opt, batches):
    return [fit(net, opt, batches[:1]), fit(net, opt, batches[1:])]


def main():
    rng = np.random.default_rng(5)
    batches = [(torch.tensor(rng.standard_normal((12, 5)), dtype=torch.float32),
                torch.tensor(rng.standard_normal((12, 1)), dtype=torch.float32)) for _ in range(4)]
    model = Regressor(5)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.4, dtype=torch.float32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = []
    step = 0
    for epoch in range(2):
        print(f"step {step} loss {fit(model, optimizer, batches):.6f}")
        step += 1
    for epoch in range(2):
        history.append(fit(model, optimizer, batches))
    for k, value in enumerate(history):
        print(f"step {step + k} loss {value:.6f}")
    step += len(history)
    if fit(model, optimizer, batches) < 100.0:
        print(f"step {step} loss {fit(model, optimizer, batches):.6f}")
    for value in losses_of(model, optimizer, batches):
        step += 1
        print(f"step {step} loss {value:.6f}")
    with torch.no_grad():
        final = sum(((model(xb) - yb) ** 2).mean().item() for xb, yb in batches) / len(batches)
    print(f"final loss {final:.6f}")


if __name__ == "__main__":
    main()
