"""Linear layers and reshaping layers with torch's parameter names, shapes and default initialisation."""
import math

import equinox as eqx
from jax import Array

from torch2jax.runtime import init
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype, split_key


def _fan_in_uniform(key, shape, fan_in, dtype):
    """torch's default bias (and Bilinear weight) init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return init.uniform(key, shape, -bound, bound, dtype)


class Identity(eqx.Module):
    def __init__(self, *args, key=None, **kwargs):
        pass

    def __call__(self, x, *, key=None):
        return x


class Linear(eqx.Module):
    """y = x @ weight.T + bias over the last dim; weight (out_features, in_features)."""

    in_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    weight: Array
    bias: Array | None

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, *, key=None):
        wkey, bkey = split_key(key, 2, "Linear")
        dtype = param_dtype(dtype)
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.kaiming_uniform(wkey, (out_features, in_features), a=math.sqrt(5), dtype=dtype)
        self.bias = _fan_in_uniform(bkey, (out_features,), in_features, dtype) if bias else None

    def __call__(self, x, *, key=None):
        return F.linear(x, self.weight, self.bias)


class Bilinear(eqx.Module):
    """y_o = x1 @ weight[o] @ x2 + bias_o; weight (out_features, in1_features, in2_features)."""

    in1_features: int = eqx.field(static=True)
    in2_features: int = eqx.field(static=True)
    out_features: int = eqx.field(static=True)
    weight: Array
    bias: Array | None

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None, dtype=None, *, key=None):
        wkey, bkey = split_key(key, 2, "Bilinear")
        dtype = param_dtype(dtype)
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = _fan_in_uniform(wkey, (out_features, in1_features, in2_features), in1_features, dtype)
        self.bias = _fan_in_uniform(bkey, (out_features,), in1_features, dtype) if bias else None

    def __call__(self, x1, x2, *, key=None):
        return F.bilinear(x1, x2, self.weight, self.bias)


class Flatten(eqx.Module):
    start_dim: int = eqx.field(static=True)
    end_dim: int = eqx.field(static=True)

    def __init__(self, start_dim=1, end_dim=-1, *, key=None):
        self.start_dim, self.end_dim = start_dim, end_dim

    def __call__(self, x, *, key=None):
        start, end = self.start_dim % x.ndim, self.end_dim % x.ndim
        return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1 :])


class Unflatten(eqx.Module):
    dim: int = eqx.field(static=True)
    unflattened_size: tuple = eqx.field(static=True)

    def __init__(self, dim, unflattened_size, *, key=None):
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def __call__(self, x, *, key=None):
        dim = self.dim % x.ndim
        return x.reshape(x.shape[:dim] + self.unflattened_size + x.shape[dim + 1 :])
