"""timm-style loop: the loss read with .item() and checked with math.isfinite between the forward and backward
(an `if` that exits, which runs after the jitted step), gradient clipping chosen by a flag; weights from numpy."""
import math
import sys

import numpy as np
import torch
import torch.nn as nn


def train_one_epoch(model, criterion, batches, optimizer, epoch, clip_grad=None):
    model.train()
    for i, (samples, targets) in enumerate(batches):
        outputs = model(samples)
        loss = criterion(outputs, targets)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            print("Loss is {}, stopping training".format(loss_value))
            sys.exit(1)
        optimizer.zero_grad()
        loss.backward()
        if clip_grad is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        print(f"step {epoch * len(batches) + i} loss {loss_value:.6f}")


def main():
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.standard_normal((30, 4)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 30))
    batches = [(x[i:i + 10], y[i:i + 10]) for i in range(0, 30, 10)]
    model = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Linear(16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, tuple(p.shape)).astype(np.float32)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.05)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    for epoch in range(2):
        train_one_epoch(model, criterion, batches, optimizer, epoch, clip_grad=1.0)
    with torch.no_grad():
        print(f"final loss {criterion(model(x), y).item():.6f}")


if __name__ == "__main__":
    main()
