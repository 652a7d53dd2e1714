"""A train_epoch helper that trains in place and counts correct predictions inside the step region."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, d_in, d_hidden, n_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.LayerNorm(d_hidden))
        self.head = nn.Linear(d_hidden, n_classes)

    def forward(self, x):
        return self.head(self.body(x))


def train_epoch(model, optimizer, X, y, batch_size, step):
    model.train()
    correct = 0
    for i in range(0, X.shape[0], batch_size):
        xb, yb = X[i:i + batch_size], y[i:i + batch_size]
        optimizer.zero_grad()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb, label_smoothing=0.1)
        correct += (logits.argmax(-1) == yb).sum().item()
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
        step += 1
    return correct / X.shape[0], step


def main():
    rng = np.random.default_rng(2)
    X = torch.tensor(rng.standard_normal((80, 7)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 80))
    model = Net(7, 10, 3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.3, dtype=torch.float32))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.9, 0.99))
    step = 0
    for epoch in range(3):
        acc, step = train_epoch(model, optimizer, X, y, 20, step)
        print(f"epoch {epoch} train accuracy {acc:.4f}")
    train_epoch(model, optimizer, X[:40], y[:40], 20, 100)  # what it returns is dropped: the model still trains
    model.eval()
    with torch.no_grad():
        final = F.cross_entropy(model(X), y).item()
    print(f"final loss {final:.6f}")


if __name__ == "__main__":
    main()
