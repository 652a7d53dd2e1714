"""Embedding: a lookup table with torch's N(0, 1) init, padding row and from_pretrained."""
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from torch2jax.runtime import init
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype, split_key


class Embedding(eqx.Module):
    num_embeddings: int = eqx.field(static=True)
    embedding_dim: int = eqx.field(static=True)
    padding_idx: int | None = eqx.field(static=True)
    freeze: bool = eqx.field(static=True)  # torch's requires_grad=False: no gradient reaches the weight
    weight: Array

    def __init__(
        self,
        num_embeddings,
        embedding_dim,
        padding_idx=None,
        max_norm=None,
        norm_type=2.0,
        scale_grad_by_freq=False,
        sparse=False,
        _weight=None,
        _freeze=False,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        if max_norm is not None or scale_grad_by_freq:
            raise NotImplementedError("Embedding(max_norm=..., scale_grad_by_freq=True) is not supported")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError("padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.freeze = _freeze
        if _weight is not None:
            self.weight = jnp.asarray(_weight, dtype)
            return
        (wkey,) = split_key(key, 1, "Embedding")
        weight = init.normal(wkey, (num_embeddings, embedding_dim), dtype=param_dtype(dtype))
        self.weight = weight if padding_idx is None else weight.at[padding_idx].set(0)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings,
                   _freeze=freeze)

    def __call__(self, x, *, key=None):
        weight = jax.lax.stop_gradient(self.weight) if self.freeze else self.weight
        return F.embedding(x, weight, self.padding_idx)
