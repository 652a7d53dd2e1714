"""One function that trains when given an optimizer and only evaluates without one (`run_epoch(model, data,
criterion, optimizer=None)`): the loss is computed before `if training:`, which holds the step; model.train(flag)
and torch.set_grad_enabled(flag) around it; BatchNorm statistics updated by the training calls only."""
import numpy as np
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
        rng = np.random.default_rng(2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))

    def forward(self, x):
        return self.body(x).squeeze(-1)


def run_epoch(model, data, criterion, optimizer=None, batch_size=8):
    x, y = data
    training = optimizer is not None
    model.train(training)
    total = 0.0
    with torch.set_grad_enabled(training):
        for i in range(0, x.size(0), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            pred = model(xb)
            loss = criterion(pred, yb)
            if training:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            total += loss.item() * xb.size(0)
    return total / x.size(0)


def main():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((32, 5)), dtype=torch.float32)
    y = x @ torch.tensor(rng.standard_normal(5), dtype=torch.float32) + 0.1
    train, val = (x[:24], y[:24]), (x[24:], y[24:])
    model = Net()
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(4):
        train_loss = run_epoch(model, train, criterion, optimizer)
        val_loss = run_epoch(model, val, criterion)
        print(f"step {epoch} loss {train_loss:.6f}")
        print(f"step {epoch + 10} loss {val_loss:.6f}")
    final = run_epoch(model, val, criterion)
    print(f"final val {final:.6f}")


if __name__ == "__main__":
    main()
