"""Dropout layers. Train mode (the default, like a fresh torch module) needs a key; under eqx.nn.inference_mode
(torch's eval()) they are the identity."""
import equinox as eqx

from torch2jax.runtime.nn import functional as F


class _DropoutNd(eqx.Module):
    p: float = eqx.field(static=True)
    inference: bool

    def __init__(self, p=0.5, inplace=False, *, key=None):
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inference = False  # set here, not as a class default: eqx.nn.inference_mode flips it


class Dropout(_DropoutNd):
    def __call__(self, x, *, key=None):
        return F.dropout(x, self.p, not self.inference, key=key)


class Dropout1d(_DropoutNd):
    def __call__(self, x, *, key=None):
        return F.dropout1d(x, self.p, not self.inference, key=key)


class Dropout2d(_DropoutNd):
    def __call__(self, x, *, key=None):
        return F.dropout2d(x, self.p, not self.inference, key=key)


class Dropout3d(_DropoutNd):
    def __call__(self, x, *, key=None):
        return F.dropout3d(x, self.p, not self.inference, key=key)
