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


class EmbeddingBag(eqx.Module):
    """torch.nn.EmbeddingBag: sums, means or maxes of bags of embeddings, without building the (bag, item) tensor.
    Bags are the rows of a 2-D input, or the runs of a 1-D input that `offsets` starts."""

    num_embeddings: int = eqx.field(static=True)
    embedding_dim: int = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    include_last_offset: bool = eqx.field(static=True)
    padding_idx: int | None = eqx.field(static=True)
    freeze: bool = eqx.field(static=True)
    weight: Array

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None, device=None,
                 dtype=None, _freeze=False, *, key=None):
        if max_norm is not None or scale_grad_by_freq:
            raise NotImplementedError("EmbeddingBag(max_norm=..., scale_grad_by_freq=True) is not supported")
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError("padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.mode = num_embeddings, embedding_dim, mode
        self.include_last_offset, self.padding_idx, self.freeze = include_last_offset, padding_idx, _freeze
        if _weight is not None:
            self.weight = jnp.asarray(_weight, dtype)
            return
        (wkey,) = split_key(key, 1, "EmbeddingBag")
        weight = init.normal(wkey, (num_embeddings, embedding_dim), dtype=param_dtype(dtype))
        self.weight = weight if padding_idx is None else weight.at[padding_idx].set(0)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                        mode="mean", sparse=False, include_last_offset=False, padding_idx=None):
        rows, dim = embeddings.shape
        return cls(rows, dim, max_norm, norm_type, scale_grad_by_freq, mode, sparse, embeddings, include_last_offset,
                   padding_idx, _freeze=freeze)

    def __call__(self, input, offsets=None, per_sample_weights=None, *, key=None):
        weight = jax.lax.stop_gradient(self.weight) if self.freeze else self.weight
        return F.embedding_bag(input, weight, offsets, mode=self.mode, per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset, padding_idx=self.padding_idx)
