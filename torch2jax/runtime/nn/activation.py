"""Activation layers with torch's constructor arguments; the math lives in functional.py.

`inplace=` is accepted and ignored (JAX has no in-place ops).
"""
import equinox as eqx
import jax.numpy as jnp
from jax import Array

from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype


class ReLU(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.relu(x)


class ReLU6(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.relu6(x)


class LeakyReLU(eqx.Module):
    negative_slope: float = eqx.field(static=True)

    def __init__(self, negative_slope=0.01, inplace=False, *, key=None):
        self.negative_slope = negative_slope

    def __call__(self, x, *, key=None):
        return F.leaky_relu(x, self.negative_slope)


class ELU(eqx.Module):
    alpha: float = eqx.field(static=True)

    def __init__(self, alpha=1.0, inplace=False, *, key=None):
        self.alpha = alpha

    def __call__(self, x, *, key=None):
        return F.elu(x, self.alpha)


class SELU(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.selu(x)


class CELU(eqx.Module):
    alpha: float = eqx.field(static=True)

    def __init__(self, alpha=1.0, inplace=False, *, key=None):
        self.alpha = alpha

    def __call__(self, x, *, key=None):
        return F.celu(x, self.alpha)


class GELU(eqx.Module):
    approximate: str = eqx.field(static=True)

    def __init__(self, approximate="none", *, key=None):
        self.approximate = approximate

    def __call__(self, x, *, key=None):
        return F.gelu(x, self.approximate)


class SiLU(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.silu(x)


class Mish(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.mish(x)


class Sigmoid(eqx.Module):
    def __init__(self, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.sigmoid(x)


class Tanh(eqx.Module):
    def __init__(self, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.tanh(x)


class Softplus(eqx.Module):
    beta: float = eqx.field(static=True)
    threshold: float = eqx.field(static=True)

    def __init__(self, beta=1.0, threshold=20.0, *, key=None):
        self.beta, self.threshold = beta, threshold

    def __call__(self, x, *, key=None):
        return F.softplus(x, self.beta, self.threshold)


class Softsign(eqx.Module):
    def __init__(self, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.softsign(x)


class Hardtanh(eqx.Module):
    min_val: float = eqx.field(static=True)
    max_val: float = eqx.field(static=True)

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False, *, key=None):
        self.min_val, self.max_val = min_val, max_val

    def __call__(self, x, *, key=None):
        return F.hardtanh(x, self.min_val, self.max_val)


class Hardsigmoid(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.hardsigmoid(x)


class Hardswish(eqx.Module):
    def __init__(self, inplace=False, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.hardswish(x)


class LogSigmoid(eqx.Module):
    def __init__(self, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.logsigmoid(x)


class PReLU(eqx.Module):
    """Learnable negative slope `weight`: one per channel (num_parameters=C) or shared (num_parameters=1)."""

    num_parameters: int = eqx.field(static=True)
    weight: Array

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None, *, key=None):
        self.num_parameters = num_parameters
        self.weight = jnp.full((num_parameters,), init, param_dtype(dtype))

    def __call__(self, x, *, key=None):
        return F.prelu(x, self.weight)


class Softmax(eqx.Module):
    dim: int | None = eqx.field(static=True)

    def __init__(self, dim=None, *, key=None):
        self.dim = dim

    def __call__(self, x, *, key=None):
        return F.softmax(x, self.dim)


class LogSoftmax(eqx.Module):
    dim: int | None = eqx.field(static=True)

    def __init__(self, dim=None, *, key=None):
        self.dim = dim

    def __call__(self, x, *, key=None):
        return F.log_softmax(x, self.dim)


class Softmin(eqx.Module):
    dim: int | None = eqx.field(static=True)

    def __init__(self, dim=None, *, key=None):
        self.dim = dim

    def __call__(self, x, *, key=None):
        return F.softmin(x, self.dim)


class Softmax2d(eqx.Module):
    """Softmax over the channel dim of (N, C, H, W) or (C, H, W) input."""

    def __init__(self, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.softmax(x, -3)


class Threshold(eqx.Module):
    threshold: float = eqx.field(static=True)
    value: float = eqx.field(static=True)

    def __init__(self, threshold, value, inplace=False, *, key=None):
        self.threshold, self.value = threshold, value

    def __call__(self, x, *, key=None):
        return F.threshold(x, self.threshold, self.value)


class GLU(eqx.Module):
    dim: int = eqx.field(static=True)

    def __init__(self, dim=-1, *, key=None):
        self.dim = dim

    def __call__(self, x, *, key=None):
        return F.glu(x, self.dim)


class Tanhshrink(eqx.Module):
    def __init__(self, *, key=None):
        pass

    def __call__(self, x, *, key=None):
        return F.tanhshrink(x)


class Softshrink(eqx.Module):
    lambd: float = eqx.field(static=True)

    def __init__(self, lambd=0.5, *, key=None):
        self.lambd = lambd

    def __call__(self, x, *, key=None):
        return F.softshrink(x, self.lambd)


class Hardshrink(eqx.Module):
    lambd: float = eqx.field(static=True)

    def __init__(self, lambd=0.5, *, key=None):
        self.lambd = lambd

    def __call__(self, x, *, key=None):
        return F.hardshrink(x, self.lambd)
