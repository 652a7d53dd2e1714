"""Tabular regression with a multi-layer perceptron.

A synthetic "house price" style dataset (a smooth nonlinear function of eight
features plus noise), standardised with statistics from the training split.
The model is an nn.Sequential MLP built in a loop; training uses MSELoss,
RMSprop and an ExponentialLR schedule, and reports validation MSE and MAE.
"""
import argparse

import torch
import torch.nn as nn
from torch import optim
from torch.utils.data import DataLoader, TensorDataset


class MLPRegressor(nn.Module):
    def __init__(self, in_features=8, hidden_sizes=(64, 32), dropout=0.1):
        super().__init__()
        layers = []
        prev = in_features
        for h in hidden_sizes:
            layers.append(nn.Linear(prev, h))
            layers.append(nn.ReLU())
            layers.append(nn.Dropout(dropout))
            prev = h
        layers.append(nn.Linear(prev, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def make_regression(num_samples, generator, in_features=8):
    x = torch.randn(num_samples, in_features, generator=generator)
    x[:, 0] = x[:, 0].abs() * 3  # a skewed, size-like feature
    w = torch.linspace(-1.0, 1.0, in_features)
    y = x @ w + 0.5 * torch.sin(2 * x[:, 1]) * x[:, 2] + 0.1 * x[:, 0] ** 2
    y = y + 0.1 * torch.randn(num_samples, generator=generator)
    return x, y


def main():
    parser = argparse.ArgumentParser(description='MLP regression (synthetic tabular data)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--lr', type=float, default=1e-2)
    parser.add_argument('--gamma', type=float, default=0.9)
    parser.add_argument('--dropout', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    g = torch.Generator().manual_seed(args.seed)
    x, y = make_regression(96, g)
    x_train, y_train = x[:64], y[:64]
    x_val, y_val = x[64:], y[64:]

    # standardise features with training statistics only
    mean = x_train.mean(dim=0, keepdim=True)
    std = x_train.std(dim=0, keepdim=True)
    x_train = (x_train - mean) / std
    x_val = (x_val - mean) / std

    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(args.seed))
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=args.batch_size)

    model = MLPRegressor(in_features=x.size(1), dropout=args.dropout).to(device)
    criterion = nn.MSELoss()
    optimizer = optim.RMSprop(model.parameters(), lr=args.lr, alpha=0.99, momentum=0.0)
    scheduler = optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.gamma)

    step = 0
    for epoch in range(args.epochs):
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            pred = model(xb)
            loss = criterion(pred, yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * xb.size(0)
            print(f"step {step} loss {loss.item():.6f}")
            step += 1
        scheduler.step()

        model.eval()
        se, ae, n = 0.0, 0.0, 0
        with torch.no_grad():
            for xb, yb in val_loader:
                xb, yb = xb.to(device), yb.to(device)
                pred = model(xb)
                se += nn.functional.mse_loss(pred, yb, reduction='sum').item()
                ae += (pred - yb).abs().sum().item()
                n += yb.numel()
        val_mse = se / n
        print(f"epoch {epoch}: train mse {running / len(train_loader.dataset):.4f} "
              f"val mse {val_mse:.4f} val mae {ae / n:.4f} lr {scheduler.get_last_lr()[0]:.5f}")

    print(f"final loss {val_mse:.6f}")


if __name__ == '__main__':
    main()
