"""SGD with momentum over a DataLoader, conditional clipping, zero_grad after step, MultiStepLR per epoch; an EMA
copy of the model updated in place by a function after each step (T2J308), and a soft target update."""
import copy

import numpy as np
import torch as t
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset


def build(d_in, hidden, n_out):
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def update_ema(ema, model, decay):
    with t.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.mul_(decay).add_(p, alpha=1 - decay)


def soft_update(target, source, tau):
    for tp, sp in zip(target.parameters(), source.parameters()):
        tp.data.copy_(tau * sp.data + (1.0 - tau) * tp.data)
    return target


@t.no_grad()
def evaluate(model, X, y):
    model.eval()
    pred = model(X).argmax(1)
    return (pred == y).float().mean().item()


def main():
    rng = np.random.default_rng(1)
    X = t.from_numpy(rng.standard_normal((96, 5)).astype(np.float32))
    y = t.from_numpy(rng.integers(0, 4, 96))
    model = build(5, 12, 4)
    with t.no_grad():
        for p in model.parameters():
            p.copy_(t.from_numpy((rng.standard_normal(tuple(p.shape)) * 0.4).astype(np.float32)))
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1, 2], gamma=0.3)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False)
    ema = copy.deepcopy(model)
    target = copy.deepcopy(model)
    max_norm = 0.5
    step = 0
    for epoch in range(3):
        model.train()
        for xb, yb in loader:
            out = model(xb)
            loss = criterion(out, yb)
            loss.backward()
            if max_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            update_ema(ema, model, 0.8)
            target = soft_update(target, ema, 0.5)
            print(f"step {step} loss {loss.item():.6f}")
            step += 1
        scheduler.step()
    print(f"final accuracy {evaluate(model, X, y):.4f}")
    with t.no_grad():
        print(f"final ema {criterion(ema(X), y).item():.6f}")
        print(f"final target {criterion(target(X), y).item():.6f}")


if __name__ == "__main__":
    main()
