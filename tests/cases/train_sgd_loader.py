"""SGD with momentum over a DataLoader, conditional clipping, zero_grad after step, MultiStepLR per epoch."""
import numpy as np
import torch as t
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset


def build(d_in, hidden, n_out):
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


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
            print(f"step {step} loss {loss.item():.6f}")
            step += 1
        scheduler.step()
    print(f"final accuracy {evaluate(model, X, y):.4f}")


if __name__ == "__main__":
    main()
