"""torch.nn.init as pure functions: they return a new array instead of filling a tensor in place.

Translated `nn.init.xavier_uniform_(w, gain=2.0)` becomes `t2j.init.xavier_uniform(key, w.shape, gain=2.0,
dtype=w.dtype)`: same name without the trailing underscore, the tensor replaced by `key, shape`, torch's other
arguments unchanged, and `dtype` last. Deterministic fills (`zeros`, `ones`, `constant`, `eye`) take no key.
Fans are torch's: for a weight of shape (out, in, *kernel), fan_in = in * prod(kernel), fan_out = out * prod(kernel).
"""
import math

import jax
import jax.numpy as jnp


def fan_in_and_fan_out(shape):
    """torch's _calculate_fan_in_and_fan_out: dim 1 is the input dim, dim 0 the output dim, the rest the kernel."""
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as torch.nn.init.calculate_gain."""
    linear_like = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
    if nonlinearity in linear_like or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _fan(shape, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def uniform(key, shape, a=0.0, b=1.0, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=a, maxval=b)


def normal(key, shape, mean=0.0, std=1.0, dtype=jnp.float32):
    return mean + std * jax.random.normal(key, shape, dtype)


def trunc_normal(key, shape, mean=0.0, std=1.0, a=-2.0, b=2.0, dtype=jnp.float32):
    """Normal(mean, std) restricted to [a, b]; like torch, a and b are absolute bounds, not multiples of std."""
    return mean + std * jax.random.truncated_normal(key, (a - mean) / std, (b - mean) / std, shape, dtype)


def constant(shape, val, dtype=jnp.float32):
    return jnp.full(shape, val, dtype)


def ones(shape, dtype=jnp.float32):
    return jnp.ones(shape, dtype)


def zeros(shape, dtype=jnp.float32):
    return jnp.zeros(shape, dtype)


def eye(shape, dtype=jnp.float32):
    if len(shape) != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return jnp.eye(*shape, dtype=dtype)


def xavier_uniform(key, shape, gain=1.0, dtype=jnp.float32):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform(key, shape, -bound, bound, dtype)


def xavier_normal(key, shape, gain=1.0, dtype=jnp.float32):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    return normal(key, shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype)


def kaiming_uniform(key, shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", dtype=jnp.float32):
    """torch's default for Linear and Conv weights is kaiming_uniform(a=math.sqrt(5)): U(-1/sqrt(fan_in), +)."""
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return uniform(key, shape, -bound, bound, dtype)


def kaiming_normal(key, shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", dtype=jnp.float32):
    return normal(key, shape, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode)), dtype)


def orthogonal(key, shape, gain=1.0, dtype=jnp.float32):
    """A (semi-)orthogonal matrix over (shape[0], prod(shape[1:])), torch's orthogonal_ step by step: a standard
    normal draw of shape (rows, cols), transposed when rows < cols, QR, the sign fix with r's diagonal, transposed
    back, times gain. Given the same normal draw (the checker's replay of torch's) the result is torch's."""
    if len(shape) < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    rows, cols = shape[0], math.prod(shape[1:])
    if rows * cols == 0:  # torch leaves an empty tensor as it is
        return jnp.zeros(shape, dtype)
    flat = jax.random.normal(key, (rows, cols), jnp.float32)
    if rows < cols:
        flat = flat.T
    q, r = jnp.linalg.qr(flat)
    q = q * jnp.sign(jnp.diagonal(r))  # makes the decomposition unique, so the draw is uniform over matrices
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)
