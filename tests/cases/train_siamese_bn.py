"""A siamese network: forward returns a pair built through a helper method that reaches BatchNorm, the loop
unpacks the pair (`ea, eb = model(a, b)`), the loss calls the helper method from outside the class
(`model.embed(a)`) and a submodule holding BatchNorm (`model.body(b)`), and a contrastive loss module without
parameters."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))

    def embed(self, x):
        return self.body(x)

    def forward(self, a, b):
        return self.embed(a), self.embed(b)


class ContrastiveLoss(nn.Module):
    def __init__(self, margin=2.0):
        super().__init__()
        self.margin = margin

    def forward(self, ea, eb, same):
        d = F.pairwise_distance(ea, eb)
        return (same * d.pow(2) + (1 - same) * torch.clamp(self.margin - d, min=0).pow(2)).mean()


def main():
    rng = np.random.default_rng(6)
    model = Encoder()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
    criterion = ContrastiveLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    a = torch.tensor(rng.standard_normal((10, 6)), dtype=torch.float32)
    b = torch.tensor(rng.standard_normal((10, 6)), dtype=torch.float32)
    same = torch.tensor(rng.integers(0, 2, 10), dtype=torch.float32)
    for step in range(6):
        model.train()
        optimizer.zero_grad()
        ea, eb = model(a, b)
        loss = criterion(ea, eb, same) + 0.01 * model.embed(a).pow(2).mean() + 0.01 * model.body(b).mean()
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
    model.eval()
    with torch.no_grad():
        ea, eb = model(a, b)
        print(f"final loss {criterion(ea, eb, same).item() + model.embed(b).mean().item():.6f}")
        print(f"body {model.body(a).sum().item():.6f}")


if __name__ == "__main__":
    main()
