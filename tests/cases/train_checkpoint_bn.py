"""A BatchNorm classifier trained a few steps, its state_dict saved with torch.save, loaded with torch.load into a
fresh model (load_state_dict), and both evaluated: the reloaded model must give the trained one's numbers, running
statistics included; weights drawn with numpy."""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 12)
        self.bn = nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


def main():
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal((32, 5)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 32))
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for step in range(6):
        start = step * 8 % 32
        xb, yb = x[start:start + 8], y[start:start + 8]
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
    path = os.path.join(tempfile.mkdtemp(), "net.pt")
    torch.save(model.state_dict(), path)
    fresh = Net()
    fresh.load_state_dict(torch.load(path, map_location="cpu"))
    model.eval()
    fresh.eval()
    with torch.no_grad():
        print(f"final trained {F.cross_entropy(model(x), y).item():.6f}")
        print(f"final reloaded {F.cross_entropy(fresh(x), y).item():.6f}")


if __name__ == "__main__":
    main()
