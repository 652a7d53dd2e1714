"""torch.nn's Transformer family as pure-JAX Equinox layers, with torch's submodule names (so pytree paths spell
torch's state_dict keys: `layers.0.self_attn.in_proj_weight`, `layers.0.linear1.weight`, `norm1.bias`, ...).

`is_causal` / `tgt_is_causal` / `memory_is_causal` are torch's hints that the given mask is causal; as in torch,
a hint needs its mask. Where torch would guess the hint by comparing the mask with a causal one (the `None`
default of the stacks), no guess is made here: the mask is used as given, which computes the same numbers.

One torch behaviour is not reproduced: TransformerEncoder's nested-tensor fast path (eval mode, no autograd,
batch_first, a src_key_padding_mask) returns zeros (before the final norm) at padded positions, where the
ordinary path, used here and by torch whenever gradients are tracked, returns their attention output.
"""
import equinox as eqx
import jax
import jax.numpy as jnp

from torch2jax.runtime import init
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype, split_key
from torch2jax.runtime.nn.attention import MultiheadAttention
from torch2jax.runtime.nn.dropout import Dropout
from torch2jax.runtime.nn.linear import Linear
from torch2jax.runtime.nn.normalization import LayerNorm


def _activation(activation):
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu  # torch's F.gelu: the exact erf form
    if isinstance(activation, str):
        raise ValueError(f"activation should be relu/gelu, not {activation}")
    return activation


def _keys(key, n):
    """n subkeys, or n Nones without a key (then any dropout in training mode raises, asking for one)."""
    return [None] * n if key is None else list(jax.random.split(key, n))


class TransformerEncoderLayer(eqx.Module):
    """torch.nn.TransformerEncoderLayer: self-attention then a feed-forward block, post-norm or pre-norm.

    `TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=F.relu,
    layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, device=None, dtype=None, *, key)`;
    activation is "relu", "gelu" or a callable. Call `layer(src, src_mask=None, src_key_padding_mask=None,
    is_causal=False, *, key=None)`; the key is needed in training mode when dropout > 0.
    """

    self_attn: MultiheadAttention
    linear1: Linear
    dropout: Dropout
    linear2: Linear
    norm1: LayerNorm
    norm2: LayerNorm
    dropout1: Dropout
    dropout2: Dropout
    activation: object
    norm_first: bool = eqx.field(static=True)

    def __init__(
        self,
        d_model,
        nhead,
        dim_feedforward=2048,
        dropout=0.1,
        activation=F.relu,
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
        bias=True,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        k_attn, k1, k2 = split_key(key, 3, "TransformerEncoderLayer")
        dtype = param_dtype(dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype, key=k_attn)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, key=k1)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, key=k2)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(activation)

    def __call__(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False, *, key=None):
        k_attn, k_ff, k1, k2 = _keys(key, 4)

        def self_attention(x):
            x = self.self_attn(x, x, x, attn_mask=src_mask, key_padding_mask=src_key_padding_mask,
                               need_weights=False, is_causal=is_causal, key=k_attn)[0]
            return self.dropout1(x, key=k1)

        def feed_forward(x):
            x = self.linear2(self.dropout(self.activation(self.linear1(x)), key=k_ff))
            return self.dropout2(x, key=k2)

        x = src
        if self.norm_first:
            x = x + self_attention(self.norm1(x))
            return x + feed_forward(self.norm2(x))
        x = self.norm1(x + self_attention(x))
        return self.norm2(x + feed_forward(x))


class TransformerDecoderLayer(eqx.Module):
    """torch.nn.TransformerDecoderLayer: self-attention, attention over `memory`, then a feed-forward block.

    Constructor as TransformerEncoderLayer's. Call `layer(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False, *,
    key=None)`.
    """

    self_attn: MultiheadAttention
    multihead_attn: MultiheadAttention
    linear1: Linear
    dropout: Dropout
    linear2: Linear
    norm1: LayerNorm
    norm2: LayerNorm
    norm3: LayerNorm
    dropout1: Dropout
    dropout2: Dropout
    dropout3: Dropout
    activation: object
    norm_first: bool = eqx.field(static=True)

    def __init__(
        self,
        d_model,
        nhead,
        dim_feedforward=2048,
        dropout=0.1,
        activation=F.relu,
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
        bias=True,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        k_self, k_cross, k1, k2 = split_key(key, 4, "TransformerDecoderLayer")
        dtype = param_dtype(dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first, bias=bias,
                                            dtype=dtype, key=k_self)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=batch_first,
                                                 bias=bias, dtype=dtype, key=k_cross)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype, key=k1)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype, key=k2)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(activation)

    def __call__(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal=False,
        memory_is_causal=False,
        *,
        key=None,
    ):
        k_self, k_cross, k_ff, k1, k2, k3 = _keys(key, 6)

        def self_attention(x):
            x = self.self_attn(x, x, x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,
                               is_causal=tgt_is_causal, need_weights=False, key=k_self)[0]
            return self.dropout1(x, key=k1)

        def cross_attention(x):
            x = self.multihead_attn(x, memory, memory, attn_mask=memory_mask,
                                    key_padding_mask=memory_key_padding_mask, is_causal=memory_is_causal,
                                    need_weights=False, key=k_cross)[0]
            return self.dropout2(x, key=k2)

        def feed_forward(x):
            x = self.linear2(self.dropout(self.activation(self.linear1(x)), key=k_ff))
            return self.dropout3(x, key=k3)

        x = tgt
        if self.norm_first:
            x = x + self_attention(self.norm1(x))
            x = x + cross_attention(self.norm2(x))
            return x + feed_forward(self.norm3(x))
        x = self.norm1(x + self_attention(x))
        x = self.norm2(x + cross_attention(x))
        return self.norm3(x + feed_forward(x))


class TransformerEncoder(eqx.Module):
    """torch.nn.TransformerEncoder: `num_layers` copies of `encoder_layer` (identical initial weights, as torch's
    deep copies are), then `norm` if given.

    `TransformerEncoder(encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True)`
    (the last two only steer torch's fast paths); call `encoder(src, mask=None, src_key_padding_mask=None,
    is_causal=None, *, key=None)`.
    """

    layers: list
    norm: object
    num_layers: int = eqx.field(static=True)

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True, *,
                 key=None):
        # Arrays are immutable, so one layer object per slot is a copy; the slots diverge when trained.
        self.layers = [encoder_layer] * num_layers
        self.num_layers = num_layers
        self.norm = norm

    def __call__(self, src, mask=None, src_key_padding_mask=None, is_causal=None, *, key=None):
        output = src
        for layer, k in zip(self.layers, _keys(key, self.num_layers)):
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=bool(is_causal), key=k)
        return output if self.norm is None else self.norm(output)


class TransformerDecoder(eqx.Module):
    """torch.nn.TransformerDecoder: `num_layers` copies of `decoder_layer`, then `norm` if given.

    `TransformerDecoder(decoder_layer, num_layers, norm=None)`; call `decoder(tgt, memory, tgt_mask=None,
    memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None,
    memory_is_causal=False, *, key=None)`.
    """

    layers: list
    norm: object
    num_layers: int = eqx.field(static=True)

    def __init__(self, decoder_layer, num_layers, norm=None, *, key=None):
        self.layers = [decoder_layer] * num_layers
        self.num_layers = num_layers
        self.norm = norm

    def __call__(
        self,
        tgt,
        memory,
        tgt_mask=None,
        memory_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        tgt_is_causal=None,
        memory_is_causal=False,
        *,
        key=None,
    ):
        output = tgt
        for layer, k in zip(self.layers, _keys(key, self.num_layers)):
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask,
                           memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=bool(tgt_is_causal),
                           memory_is_causal=memory_is_causal, key=k)
        return output if self.norm is None else self.norm(output)


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """torch's causal float mask: 0 on and below the diagonal, -inf above."""
    dtype = param_dtype(dtype)
    return jnp.where(jnp.triu(jnp.ones((sz, sz), bool), 1), -jnp.inf, 0.0).astype(dtype)


class Transformer(eqx.Module):
    """torch.nn.Transformer: encoder and decoder stacks with final LayerNorms; every parameter with more than one
    dimension re-drawn xavier-uniform, as torch's _reset_parameters does (custom encoder/decoder included).

    `Transformer(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
    dropout=0.1, activation=F.relu, custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
    batch_first=False, norm_first=False, bias=True, device=None, dtype=None, *, key)`; call
    `model(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
    memory_is_causal=False, *, key=None)`.
    """

    encoder: object
    decoder: object
    d_model: int = eqx.field(static=True)
    nhead: int = eqx.field(static=True)
    batch_first: bool = eqx.field(static=True)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def __init__(
        self,
        d_model=512,
        nhead=8,
        num_encoder_layers=6,
        num_decoder_layers=6,
        dim_feedforward=2048,
        dropout=0.1,
        activation=F.relu,
        custom_encoder=None,
        custom_decoder=None,
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
        bias=True,
        device=None,
        dtype=None,
        *,
        key=None,
    ):
        k_enc, k_dec, k_reset = split_key(key, 3, "Transformer")
        dtype = param_dtype(dtype)
        layer_args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps, batch_first, norm_first,
                      bias)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(
                TransformerEncoderLayer(*layer_args, dtype=dtype, key=k_enc), num_encoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype),
            )
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(
                TransformerDecoderLayer(*layer_args, dtype=dtype, key=k_dec), num_decoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype),
            )
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first
        self.encoder, self.decoder = self._reset_parameters((self.encoder, self.decoder), k_reset)

    @staticmethod
    def _reset_parameters(tree, key):
        leaves, treedef = jax.tree.flatten(tree)
        keys = iter(jax.random.split(key, len(leaves)))
        leaves = [
            init.xavier_uniform(next(keys), x.shape, dtype=x.dtype) if eqx.is_inexact_array(x) and x.ndim > 1 else x
            for x in leaves
        ]
        return jax.tree.unflatten(treedef, leaves)

    def __call__(
        self,
        src,
        tgt,
        src_mask=None,
        tgt_mask=None,
        memory_mask=None,
        src_key_padding_mask=None,
        tgt_key_padding_mask=None,
        memory_key_padding_mask=None,
        src_is_causal=None,
        tgt_is_causal=None,
        memory_is_causal=False,
        *,
        key=None,
    ):
        batch_axis = 0 if self.batch_first else 1
        if src.ndim == 3 and tgt.ndim == 3 and src.shape[batch_axis] != tgt.shape[batch_axis]:
            raise ValueError("the batch number of src and tgt must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError("the feature number of src and tgt must be equal to d_model")
        k_enc, k_dec = _keys(key, 2)
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal, key=k_enc)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal, key=k_dec)
