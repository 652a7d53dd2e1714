"""The checker's random-code fixture, torch side: modules whose forward draws noise in eval mode too."""
import torch
from torch import nn


class Reparam(nn.Module):
    """A VAE's encoder and decoder: z = mu + eps * std, with eps drawn in every mode."""

    def __init__(self, d_in=10, d_z=4):
        super().__init__()
        self.mu = nn.Linear(d_in, d_z)
        self.logvar = nn.Linear(d_in, d_z)
        self.dec = nn.Linear(d_z, d_in)

    def forward(self, x):
        mu, logvar = self.mu(x), self.logvar(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.dec(z)), mu, logvar


class TwoNoises(nn.Module):
    """Two independent draws of different shapes."""

    def __init__(self, d=6):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        h = self.fc(x)
        return h + torch.randn_like(h), torch.rand(h.shape[-1]) * h.mean(0)


class Jitter(nn.Module):
    """Uniform noise in a non-replayable form on the JAX side (bernoulli): checked by statistics and the outputs
    that do not vary."""

    def __init__(self, d=5):
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x):
        h = self.fc(x)
        return h, h * (torch.rand_like(h) < 0.5)


class TwoDropouts(nn.Module):
    """Two dropout masks of one shape: the translation must draw them from two keys."""

    def __init__(self, d=8):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, d), nn.Linear(d, d)
        self.drop1, self.drop2 = nn.Dropout(0.3), nn.Dropout(0.3)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(torch.relu(self.fc1(x)))))
