"""The checker's isolation fixture, torch side: each entry works; faulty_jax.py's raise, hang and crash."""
import torch
import torch.nn as nn


def double(x):
    return x * 2


class Raises(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


class Hangs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)


def crashes(x):
    return torch.exp(x)


def shift(x):
    return x + 1


def hog(x):
    return x.sum()
