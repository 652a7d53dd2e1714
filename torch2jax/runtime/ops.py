"""Tensor operations whose torch semantics jax.numpy does not have directly.

Each takes torch's arguments (dim, keepdim, ...) and returns what torch returns (a (values, indices) pair for
max/min/sort/topk along a dim), so a translated call keeps its meaning without rewriting its call site.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ValuesIndices(NamedTuple):
    values: jax.Array
    indices: jax.Array


def _reduce_with_index(x, dim, keepdim, reduce, arg):
    values = reduce(x, axis=dim, keepdims=keepdim)
    indices = arg(x, axis=dim, keepdims=keepdim)
    return ValuesIndices(values, indices)


def max(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """torch.max: the maximum; along `dim`, (values, indices); with a tensor second argument, the elementwise max."""
    if dim is None:
        return jnp.max(input)
    if not isinstance(dim, int):
        return jnp.maximum(input, dim)
    return _reduce_with_index(input, dim, keepdim, jnp.max, jnp.argmax)


def min(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """torch.min: the minimum; along `dim`, (values, indices); with a tensor second argument, the elementwise min."""
    if dim is None:
        return jnp.min(input)
    if not isinstance(dim, int):
        return jnp.minimum(input, dim)
    return _reduce_with_index(input, dim, keepdim, jnp.min, jnp.argmin)
