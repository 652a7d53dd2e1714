"""Classifier trained with AdamW + StepLR + gradient clipping; weights drawn with numpy so torch and the
translation start from the same point."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, d_in=6, d_hidden=16, n_classes=3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, n_classes)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def main():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((64, 6)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 64))
    model = MLP()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    # torch-only implementation switches, chosen at run time as nanoGPT does (fused=True on CUDA)
    extra_args = dict(fused=True) if torch.cuda.is_available() else dict(foreach=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.01, **extra_args)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    for step in range(12):
        start = step * 16 % 64
        logits = model(X[start:start + 16])
        loss = F.cross_entropy(logits, y[start:start + 16])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        scheduler.step()
        print(f"step {step} loss {loss.item():.6f}")
    model.eval()
    with torch.no_grad():
        acc = (model(X).argmax(dim=1) == y).float().mean().item()
    print(f"final accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
