"""Regression MLP with BatchNorm; p.data.copy_ init from numpy; Adam + CosineAnnealingLR; eval loop over a loader."""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)


class Regressor(nn.Module):
    def __init__(self, d_in: int, d_hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, d_hidden, bias=False),  # a bias before BatchNorm gets ~0 gradients that Adam amplifies into noise
            nn.BatchNorm1d(d_hidden),
            nn.ReLU(),
            nn.Dropout(p=0.0),
            nn.Linear(d_hidden, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


def evaluate(model, loader, loss_fn):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for xb, yb in loader:
            pred = model(xb)
            total += loss_fn(pred, yb).item() * xb.size(0)
            count += xb.size(0)
    return total / count


def main():
    rng = np.random.default_rng(3)
    w_true = rng.standard_normal(4)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = (X @ w_true + 0.1 * rng.standard_normal(64)).astype(np.float32)
    ds = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    train_loader = DataLoader(ds, batch_size=16)
    model = Regressor(4)
    for name, p in model.named_parameters():
        p.data.copy_(torch.from_numpy(rng.standard_normal(p.shape).astype(np.float32) * 0.5))
    loss_fn = nn.MSELoss()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8)
    step = 0
    for epoch in range(2):
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * xb.size(0)
            print(f"step {step} loss {loss.item():.6f}")
            step += 1
        print(f"epoch {epoch} mean loss {running / len(ds):.6f}")
    print(f"final loss {evaluate(model, train_loader, loss_fn):.6f}")


if __name__ == "__main__":
    main()
