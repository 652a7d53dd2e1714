"""The checker's fixture, torch side: plain functions, a random function, and modules (dropout, BatchNorm, an
integer-input tagger, one that needs constructor arguments). ops_jax.py is its translation, written by hand."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def scaled_softplus(x, beta: float = 2.0):
    return F.softplus(x * beta) / beta


def leaky_mix(x, y):
    return F.leaky_relu(x, 0.1) * torch.sigmoid(y) + 0.5 * y


def normalize_rows(x):
    return x / (x.norm(dim=-1, keepdim=True) + 1e-6)


def gram(x):
    return x @ x.transpose(-2, -1)


def squash(x):
    return torch.tanh(x)


def gated(x, y):
    return x * torch.sigmoid(y)


def pick(x, idx):
    return x[idx].sum(-1)


def noisy_pair(x, scale: float = 0.5):
    a = x + scale * torch.randn_like(x)
    b = x * torch.rand_like(x)
    return a, b


class MLP(nn.Module):
    def __init__(self, d_in=6, d_hidden=16, d_out=3, p=0.3):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.drop = nn.Dropout(p)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(self.drop(torch.tanh(self.fc1(x))))


class ConvBN(nn.Module):
    def __init__(self, c_in=3, c=4, n_out=5):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.head = nn.Linear(c, n_out)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return self.head(x.mean(dim=(2, 3)))


class Tagger(nn.Module):
    def __init__(self, vocab=11, d=8, n_tags=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, n_tags)

    def forward(self, tokens):
        return F.log_softmax(self.out(self.norm(self.emb(tokens))), dim=-1)


class Stack(nn.Module):
    def __init__(self, d, depth):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(depth)])

    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x
