"""Several losses weighted by a dict and summed in a generator (`sum(w[k] * v for k, v in losses.items())`): the
subscripts read the generator's own variables, so they stay inside the jitted step."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 12)
        self.fc2 = nn.Linear(12, 2)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def main():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((48, 5)), dtype=torch.float32)
    Y = torch.tensor(rng.standard_normal((48, 2)), dtype=torch.float32)
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    weights = {"mse": 1.0, "l1": 0.5, "size": 0.01}
    column_weights = [1.0, 0.25]
    for step in range(10):
        start = step * 16 % 48
        out = model(X[start:start + 16])
        target = Y[start:start + 16]
        losses = {"mse": F.mse_loss(out, target), "l1": (out - target).abs().mean(), "size": out.pow(2).mean()}
        loss = sum(weights[k] * v for k, v in losses.items())
        loss = loss + sum(column_weights[j] * (out[:, j] - target[:, j]).pow(2).mean() for j in range(2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
    with torch.no_grad():
        print(f"final loss {F.mse_loss(model(X), Y).item():.6f}")


if __name__ == "__main__":
    main()
