"""AdamW over two parameter groups (trunk and head, each its own lr and weight decay), the groups listed from the
submodules' parameters(); the translation must train each group with its own settings, as torch does."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.trunk(x))


def main():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((64, 6)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 64))
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    groups = [
        {"params": model.trunk.parameters(), "lr": 0.002, "weight_decay": 0.0},
        {"params": model.head.parameters(), "weight_decay": 0.1},
    ]
    optimizer = torch.optim.AdamW(groups, lr=0.05)
    for step in range(12):
        start = step * 16 % 64
        loss = F.cross_entropy(model(X[start:start + 16]), y[start:start + 16])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
    with torch.no_grad():
        print(f"final loss {F.cross_entropy(model(X), y).item():.6f}")
        print(f"final trunk_norm {torch.nn.utils.parameters_to_vector(model.trunk.parameters()).norm().item():.6f}")
        print(f"final head_norm {torch.nn.utils.parameters_to_vector(model.head.parameters()).norm().item():.6f}")


if __name__ == "__main__":
    main()
