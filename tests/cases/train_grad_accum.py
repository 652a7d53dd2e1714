"""Gradient accumulation in its two common forms, each compared with torch step by step:
- backward() on every batch and the step on every second one inside an `if`, zero_grad after the step, a LambdaLR
  schedule stepping with the optimizer;
- nanoGPT's inner loop over micro-steps (the loss divided by their number), then clipping and an AdamW step after
  the loop, zero_grad(set_to_none=True);
- the same with backward() on the scaled loss itself (`(loss / micro_steps).backward()`), the printed loss being
  the unscaled one."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 16)
        self.fc2 = nn.Linear(16, 3)
        rng = np.random.default_rng(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.4, dtype=torch.float32))

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


def main():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((64, 6)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 64))
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    accum = 2
    step = 0
    for i in range(0, 64, 8):
        loss = F.cross_entropy(model(X[i:i + 8]), y[i:i + 8]) / accum
        loss.backward()
        if (i // 8 + 1) % accum == 0:
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1

    second = Net()
    opt2 = torch.optim.AdamW(second.parameters(), lr=0.05, weight_decay=0.1)
    micro_steps = 4
    for it in range(3):
        for micro in range(micro_steps):
            start = (it * micro_steps + micro) * 4 % 64
            xb, yb = X[start:start + 4], y[start:start + 4]
            logits = second(xb)
            loss = F.cross_entropy(logits, yb)
            loss = loss / micro_steps
            loss.backward()
        torch.nn.utils.clip_grad_norm_(second.parameters(), 0.5)
        opt2.step()
        opt2.zero_grad(set_to_none=True)
        print(f"step {step} loss {loss.item() * micro_steps:.6f}")
        step += 1
    third = Net()
    opt3 = torch.optim.SGD(third.parameters(), lr=0.2)
    for it in range(3):
        for micro in range(micro_steps):
            start = (it * micro_steps + micro) * 4 % 64
            loss = F.cross_entropy(third(X[start:start + 4]), y[start:start + 4])
            (loss / micro_steps).backward()
        opt3.step()
        opt3.zero_grad()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    with torch.no_grad():
        print(f"final accuracy {(model(X).argmax(1) == y).float().mean().item():.6f}")
        print(f"final second {(second(X).argmax(1) == y).float().mean().item():.6f}")
        print(f"final third {F.cross_entropy(third(X), y).item():.6f}")


if __name__ == "__main__":
    main()
