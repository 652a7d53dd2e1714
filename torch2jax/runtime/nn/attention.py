"""torch.nn.MultiheadAttention as a pure-JAX Equinox layer with torch's parameters, init and masking rules."""
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from torch2jax.runtime import init
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype, split_key
from torch2jax.runtime.nn.linear import Linear


def _float_mask(mask, name, dtype):
    """torch's `_canonical_mask`: a bool mask (True = not allowed) becomes 0 / -inf; a float mask is added as is."""
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype == jnp.bool_:
        return jnp.where(mask, -jnp.inf, 0.0).astype(dtype)
    if not jnp.issubdtype(mask.dtype, jnp.floating):
        raise TypeError(f"only bool and floating types of {name} are supported, got {mask.dtype}")
    return mask


class MultiheadAttention(eqx.Module):
    """torch.nn.MultiheadAttention.

    Construction mirrors torch: `MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True,
    add_bias_kv=False, add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None, dtype=None,
    *, key)`. Parameters carry torch's names and shapes (`in_proj_weight` (3E, E) and `in_proj_bias` (3E,), or
    `q_proj_weight`/`k_proj_weight`/`v_proj_weight` when kdim or vdim differ from embed_dim; `out_proj.weight`,
    `out_proj.bias`; `bias_k`, `bias_v`), and torch's init (xavier-uniform input projections, zero biases).

    The call is `mha(query, key_, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False, *, key=None)`. torch calls its second argument `key`; here that
    name is the PRNG key (the convention every layer follows), so the attention keys are `key_` (as in
    eqx.nn.MultiheadAttention). Positional calls are unchanged; a torch call spelling `key=k` becomes `key_=k`.
    The PRNG key is needed only in training mode with dropout > 0 (dropout on the attention weights).

    Returns `(attn_output, attn_weights)`, `attn_weights` None when `need_weights=False`, otherwise averaged
    over heads (or per head with `average_attn_weights=False`) and taken after dropout, as torch does.
    Masks: bool (True = may not attend) or float (added to the scores); `attn_mask` (L, S) or
    (N * num_heads, L, S); `key_padding_mask` (N, S). As in torch, `is_causal=True` needs an `attn_mask` and,
    when there is no key_padding_mask and need_weights=False, stands in for it with the causal mask.
    """

    in_proj_weight: jax.Array | None
    q_proj_weight: jax.Array | None
    k_proj_weight: jax.Array | None
    v_proj_weight: jax.Array | None
    in_proj_bias: jax.Array | None
    bias_k: jax.Array | None
    bias_v: jax.Array | None
    out_proj: Linear
    embed_dim: int = eqx.field(static=True)
    kdim: int = eqx.field(static=True)
    vdim: int = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)
    head_dim: int = eqx.field(static=True)
    dropout: float = eqx.field(static=True)
    add_zero_attn: bool = eqx.field(static=True)
    batch_first: bool = eqx.field(static=True)
    inference: bool

    def __init__(
        self,
        embed_dim,
        num_heads,
        dropout=0.0,
        bias=True,
        add_bias_kv=False,
        add_zero_attn=False,
        kdim=None,
        vdim=None,
        batch_first=False,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        dtype = param_dtype(dtype)
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got {embed_dim} and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.add_zero_attn = add_zero_attn
        self.batch_first = batch_first
        self.inference = False

        kq, kk, kv, kout, kbk, kbv = split_key(key, 6, "MultiheadAttention")
        if self._qkv_same_embed_dim:
            self.in_proj_weight = init.xavier_uniform(kq, (3 * embed_dim, embed_dim), dtype=dtype)
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = init.xavier_uniform(kq, (embed_dim, embed_dim), dtype=dtype)
            self.k_proj_weight = init.xavier_uniform(kk, (embed_dim, self.kdim), dtype=dtype)
            self.v_proj_weight = init.xavier_uniform(kv, (embed_dim, self.vdim), dtype=dtype)
        self.in_proj_bias = init.zeros((3 * embed_dim,), dtype) if bias else None
        # out_proj keeps nn.Linear's default weight init; torch zeroes only its bias.
        out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype, key=kout)
        if bias:
            out_proj = eqx.tree_at(lambda m: m.bias, out_proj, init.zeros((embed_dim,), dtype))
        self.out_proj = out_proj
        if add_bias_kv:
            self.bias_k = init.xavier_normal(kbk, (1, 1, embed_dim), dtype=dtype)
            self.bias_v = init.xavier_normal(kbv, (1, 1, embed_dim), dtype=dtype)
        else:
            self.bias_k = self.bias_v = None

    @property
    def _qkv_same_embed_dim(self):
        return self.kdim == self.embed_dim and self.vdim == self.embed_dim

    def _projections(self):
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight[:e], self.in_proj_weight[e : 2 * e], self.in_proj_weight[2 * e :]
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        if self.in_proj_bias is None:
            return (w_q, None), (w_k, None), (w_v, None)
        b = self.in_proj_bias
        return (w_q, b[:e]), (w_k, b[e : 2 * e]), (w_v, b[2 * e :])

    def __call__(
        self,
        query,
        key_,
        value,
        key_padding_mask=None,
        need_weights=True,
        attn_mask=None,
        average_attn_weights=True,
        is_causal=False,
        *,
        key=None,
    ):
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key_.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                "query, key_ and value must all be 3-D (batched) or all 2-D (unbatched), got "
                f"{query.ndim}-D, {key_.ndim}-D and {value.ndim}-D"
            )
        if key_padding_mask is not None and key_padding_mask.ndim != query.ndim - 1:
            raise ValueError(f"key_padding_mask must be {query.ndim - 1}-D for {query.ndim}-D query")
        if attn_mask is not None and attn_mask.ndim not in (2, 3):
            raise ValueError(f"attn_mask must be 2-D or 3-D, got {attn_mask.ndim}-D")
        if is_causal and attn_mask is None:
            raise ValueError(
                "is_causal=True is a hint that attn_mask is causal and needs attn_mask too "
                "(torch raises here as well); pass attn_mask=causal mask."
            )

        # Work batch-first: (N, L, E).
        if not batched:
            query, key_, value = query[None], key_[None], value[None]
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask[None]
        elif not self.batch_first:
            query, key_, value = (jnp.swapaxes(t, 0, 1) for t in (query, key_, value))
        bsz, tgt_len, _ = query.shape
        dtype = query.dtype

        key_padding_mask = _float_mask(key_padding_mask, "key_padding_mask", dtype)
        # torch then hands is_causal to scaled_dot_product_attention in place of the attn_mask it was given.
        causal_hint = is_causal and key_padding_mask is None and not need_weights
        attn_mask = None if causal_hint else _float_mask(attn_mask, "attn_mask", dtype)

        (w_q, b_q), (w_k, b_k), (w_v, b_v) = self._projections()

        q = F.linear(query, w_q, b_q)
        k = F.linear(key_, w_k, b_k)
        v = F.linear(value, w_v, b_v)

        def pad_masks(attn_mask, key_padding_mask):
            # One more key position that nobody masks.
            pad = lambda m: None if m is None else jnp.pad(m, [(0, 0)] * (m.ndim - 1) + [(0, 1)])
            return pad(attn_mask), pad(key_padding_mask)

        if self.bias_k is not None:
            k = jnp.concatenate([k, jnp.broadcast_to(self.bias_k[0], (bsz, 1, self.embed_dim))], axis=1)
            v = jnp.concatenate([v, jnp.broadcast_to(self.bias_v[0], (bsz, 1, self.embed_dim))], axis=1)
            attn_mask, key_padding_mask = pad_masks(attn_mask, key_padding_mask)

        def heads(x):  # (N, S, E) -> (N, H, S, head_dim)
            return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads(q), heads(k), heads(v)
        if self.add_zero_attn:
            zeros = jnp.zeros((bsz, self.num_heads, 1, self.head_dim), k.dtype)
            k = jnp.concatenate([k, zeros], axis=2)
            v = jnp.concatenate([v, zeros], axis=2)
            attn_mask, key_padding_mask = pad_masks(attn_mask, key_padding_mask)
        src_len = k.shape[2]

        # Masks broadcast to (N, H, L, S); a 3-D attn_mask is indexed by batch * num_heads + head.
        mask = None
        if causal_hint:
            mask = jnp.where(jnp.tril(jnp.ones((tgt_len, src_len), bool)), 0.0, -jnp.inf).astype(dtype)
        if attn_mask is not None:
            mask = attn_mask if attn_mask.ndim == 2 else attn_mask.reshape(-1, self.num_heads, tgt_len, src_len)
        if key_padding_mask is not None:
            kpm = key_padding_mask.reshape(bsz, 1, 1, src_len)
            mask = kpm if mask is None else mask + kpm

        scores = (q * math.sqrt(1.0 / self.head_dim)) @ jnp.swapaxes(k, -1, -2)
        if mask is not None:
            scores = scores + mask
        weights = jax.nn.softmax(scores, axis=-1)
        weights = F.dropout(weights, self.dropout, not self.inference, key=key)

        out = (weights @ v).transpose(0, 2, 1, 3).reshape(bsz, tgt_len, self.embed_dim)
        out = self.out_proj(out)

        if not batched:
            out = out[0]
        elif not self.batch_first:
            out = jnp.swapaxes(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return out, (weights if batched else weights[0])
