"""Distillation: a teacher frozen three ways (a loop setting requires_grad, requires_grad_(False) on the module and
on its parameters) and run under no_grad; the student learns from its softened outputs (KL divergence)."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    rng = np.random.default_rng(7)
    teacher = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    student = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5, dtype=torch.float32))
        for p in student.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.3, dtype=torch.float32))
    for p in teacher.parameters():
        p.requires_grad = False
    teacher.requires_grad_(False)
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.eval()
    optimizer = torch.optim.Adam(student.parameters(), lr=0.02)
    x = torch.tensor(rng.standard_normal((32, 5)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 32))
    T = 2.0
    for step in range(8):
        with torch.no_grad():
            t_logits = teacher(x)
        s_logits = student(x)
        kd = F.kl_div(F.log_softmax(s_logits / T, dim=1), F.softmax(t_logits / T, dim=1), reduction="batchmean")
        loss = kd * T * T + 0.5 * F.cross_entropy(s_logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"step {step} loss {loss.item():.6f}")
    with torch.no_grad():
        print(f"final loss {F.cross_entropy(student(x), y).item():.6f}")


if __name__ == "__main__":
    main()
