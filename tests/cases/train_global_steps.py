"""A module-level script (pytorch/examples style): the model, optimizer and data are globals, and a module-level
`train(epoch)` function steps them; the model holds BatchNorm statistics."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

rng = np.random.default_rng(5)
model = nn.Sequential(nn.Linear(4, 6, bias=False), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3))
with torch.no_grad():
    for p in model.parameters():
        p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
X = torch.tensor(rng.standard_normal((24, 4)), dtype=torch.float32)
y = torch.tensor(rng.integers(0, 3, 24))


def train(epoch):
    model.train()
    for i in range(0, 24, 8):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(X[i:i + 8]), y[i:i + 8])
        loss.backward()
        optimizer.step()
        print(f"step {epoch * 3 + i // 8} loss {loss.item():.6f}")


def test():
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(X), y).item()


for epoch in range(3):
    train(epoch)
print(f"final loss {test():.6f}")
