"""The training step inside a closure of main (`def train(epoch):` reading main's model, optimizer, criterion and
data), with a BatchNorm model, a per-sample loss list filled in a loop over a Python list, and comprehensions."""
import numpy as np
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 8, bias=False)  # a bias before BatchNorm gets float-noise gradients Adam would amplify
        self.bn = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def main():
    rng = np.random.default_rng(4)
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.4, dtype=torch.float32))
    criterion = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batches = [torch.tensor(rng.standard_normal((6, 5)), dtype=torch.float32) for _ in range(3)]
    targets = [torch.tensor(rng.standard_normal((6, 2)), dtype=torch.float32) for _ in range(3)]
    step = 0

    def train(epoch):
        nonlocal step
        model.train()
        optimizer.zero_grad()
        losses = []
        for xb, yb in zip(batches, targets):
            losses.append(criterion(model(xb), yb))
        reg = sum(p.pow(2).sum() for p in model.parameters())
        loss = torch.stack(losses).mean() + 1e-3 * reg
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1

    for epoch in range(6):
        train(epoch)
    model.eval()
    with torch.no_grad():
        final = sum(criterion(model(xb), yb).item() for xb, yb in zip(batches, targets))
    print(f"final loss {final:.6f}")


if __name__ == "__main__":
    main()
