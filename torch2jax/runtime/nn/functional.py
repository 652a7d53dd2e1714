"""torch.nn.functional in pure JAX: the same names, argument names and argument order as torch.

Translated `torch.nn.functional.<name>(...)` calls map here, and the layers in torch2jax.runtime.nn call these
functions for their math. Layouts are torch's (batch-first, channels-first: NCL, NCHW, NCDHW).

Differences that JAX forces:
- Nothing is in place: `inplace=` is accepted and ignored, and `batch_norm`/`instance_norm` in training mode do not
  update `running_mean`/`running_var` (the BatchNorm/InstanceNorm layers return updated statistics in their state).
- Random functions (`dropout` and friends) take a keyword-only `key`; training mode without one is an error.
"""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np


def _ntuple(value, n):
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"expected {n} values, got {tuple(value)}")
        return tuple(value)
    return (value,) * n


def _spatial_names(n):
    return "DHW"[3 - n :]


# ---------------------------------------------------------------- linear


def linear(input, weight, bias=None):
    out = input @ weight.T
    return out if bias is None else out + bias


def bilinear(input1, input2, weight, bias=None):
    out = jnp.einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    # max_norm renormalises rows of `weight` in place in torch; a pure function cannot reproduce that side effect.
    if max_norm is not None:
        raise NotImplementedError("embedding(max_norm=...) renormalises the weight in place; not supported")
    if scale_grad_by_freq:
        raise NotImplementedError("embedding(scale_grad_by_freq=True) is not supported")
    out = jnp.take(weight, input, axis=0)
    if padding_idx is None:
        return out
    # torch never sends gradient to the padding row
    is_pad = (input == padding_idx % weight.shape[0])[..., None]
    return jnp.where(is_pad, jax.lax.stop_gradient(out), out)


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """torch's embedding_bag: each bag (a row of a 2-D input, or input[offsets[i]:offsets[i + 1]] of a 1-D one)
    reduced by `mode`; `padding_idx` entries are left out (and not counted by the mean); an empty bag gives zeros."""
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding_bag(max_norm=..., scale_grad_by_freq=True) is not supported")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError("embedding_bag: per_sample_weights is only supported for mode='sum' (as in torch)")
    input = jnp.asarray(input)
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None")
        bags, size = input.shape
        segments = jnp.repeat(jnp.arange(bags), size)
        flat = input.reshape(-1)
        weights = None if per_sample_weights is None else jnp.asarray(per_sample_weights).reshape(-1)
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        offsets = jnp.asarray(offsets)
        starts = offsets[:-1] if include_last_offset else offsets
        bags = starts.shape[0]
        position = jnp.arange(input.shape[0])
        # include_last_offset: offsets[-1] is len(input) (torch reads the last bag to the end of input regardless)
        segments = jnp.searchsorted(starts, position, side="right") - 1
        flat = input
        weights = None if per_sample_weights is None else jnp.asarray(per_sample_weights)
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    rows = jnp.take(weight, flat, axis=0)
    keep = jnp.ones(flat.shape, bool) if padding_idx is None else flat != padding_idx % weight.shape[0]
    if mode == "max":
        # torch's gradient goes to one position per bag and feature (the first maximum), not split among ties as
        # segment_max's would be: find that position, then sum only it
        masked = jnp.where(keep[:, None], rows, -jnp.inf)
        best = jax.lax.stop_gradient(jax.ops.segment_max(masked, segments, num_segments=bags + 1))
        position = jnp.broadcast_to(jnp.arange(flat.shape[0])[:, None], rows.shape)
        candidate = jnp.where((masked == best[segments]) & keep[:, None], position, flat.shape[0])
        first = jax.ops.segment_min(candidate, segments, num_segments=bags + 1)
        chosen = position == first[segments]
        return jax.ops.segment_sum(jnp.where(chosen, rows, 0), segments, num_segments=bags + 1)[:bags]
    if weights is not None:
        rows = rows * weights[:, None].astype(rows.dtype)
    rows = jnp.where(keep[:, None], rows, 0)
    out = jax.ops.segment_sum(rows, segments, num_segments=bags)
    if mode == "mean":
        count = jax.ops.segment_sum(keep.astype(rows.dtype), segments, num_segments=bags)
        out = out / jnp.maximum(count, 1)[:, None]
    return out


# ---------------------------------------------------------------- convolution


def _conv_pads(padding, kernel, dilation, n):
    """torch's `padding` argument (int, tuple, 'same', 'valid') as explicit (low, high) pairs per spatial dim."""
    if padding == "valid":
        return [(0, 0)] * n
    if padding == "same":
        # torch puts the odd extra element on the high side
        totals = [d * (k - 1) for d, k in zip(_ntuple(dilation, n), kernel)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in _ntuple(padding, n)]


def _conv(input, weight, bias, stride, padding, dilation, groups, n):
    unbatched = input.ndim == n + 1
    if unbatched:
        input = input[None]
    names = "NC" + _spatial_names(n)
    out = jax.lax.conv_general_dilated(
        input,
        weight,
        window_strides=_ntuple(stride, n),
        padding=_conv_pads(padding, weight.shape[2:], dilation, n),
        rhs_dilation=_ntuple(dilation, n),
        feature_group_count=groups,
        dimension_numbers=(names, "OI" + _spatial_names(n), names),
    )
    if bias is not None:
        out = out + bias.reshape((-1,) + (1,) * n)
    return out[0] if unbatched else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3)


def _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, n):
    # A transposed convolution is the forward convolution of the stride-dilated input with the spatially flipped
    # kernel, whose (in, out/groups) axes are swapped group by group into a forward kernel (out, in/groups).
    unbatched = input.ndim == n + 1
    if unbatched:
        input = input[None]
    in_channels, out_per_group, *kernel = weight.shape
    w = weight.reshape(groups, in_channels // groups, out_per_group, *kernel)
    w = jnp.swapaxes(w, 1, 2).reshape(groups * out_per_group, in_channels // groups, *kernel)
    w = jnp.flip(w, axis=tuple(range(2, 2 + n)))
    dilation = _ntuple(dilation, n)
    pads = [
        (d * (k - 1) - p, d * (k - 1) - p + op)
        for d, k, p, op in zip(dilation, kernel, _ntuple(padding, n), _ntuple(output_padding, n))
    ]
    names = "NC" + _spatial_names(n)
    out = jax.lax.conv_general_dilated(
        input,
        w,
        window_strides=(1,) * n,
        padding=pads,
        lhs_dilation=_ntuple(stride, n),
        rhs_dilation=dilation,
        feature_group_count=groups,
        dimension_numbers=(names, "OI" + _spatial_names(n), names),
    )
    if bias is not None:
        out = out + bias.reshape((-1,) + (1,) * n)
    return out[0] if unbatched else out


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 1)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 2)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, 3)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """im2col: (N, C, H, W) -> (N, C * kh * kw, L), channel-major like torch."""
    kernel = _ntuple(kernel_size, 2)
    patches = jax.lax.conv_general_dilated_patches(
        input,
        filter_shape=kernel,
        window_strides=_ntuple(stride, 2),
        padding=_conv_pads(padding, kernel, dilation, 2),
        rhs_dilation=_ntuple(dilation, 2),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )
    return patches.reshape(patches.shape[0], patches.shape[1], -1)


# ---------------------------------------------------------------- pooling


def _pool_pads(sizes, kernel, stride, padding, dilation, ceil_mode):
    """(low, high) padding per dim so that reduce_window yields torch's output size.

    torch: out = floor_or_ceil((size + 2 * pad - dilation * (k - 1) - 1) / stride) + 1, and in ceil mode a last
    window that would start in the right padding is dropped.
    """
    pads = []
    for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        span = size + 2 * p - d * (k - 1) - 1
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= size + p:
            out -= 1
        pads.append((p, max((out - 1) * s + d * (k - 1) + 1 - size - p, 0)))
    return pads


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, n):
    if return_indices:
        raise NotImplementedError("max_pool(return_indices=True) is not supported")
    kernel = _ntuple(kernel_size, n)
    stride = kernel if stride is None or stride == [] else _ntuple(stride, n)
    dilation = _ntuple(dilation, n)
    lead = input.ndim - n
    pads = [(0, 0)] * lead + _pool_pads(input.shape[lead:], kernel, stride, _ntuple(padding, n), dilation, ceil_mode)
    # a numpy (not jax) init value: JAX differentiates reduce_window only when it can see the init is the identity
    low = np.array(-np.inf if jnp.issubdtype(input.dtype, jnp.floating) else jnp.iinfo(input.dtype).min, input.dtype)
    if all(d == 1 for d in dilation):
        return jax.lax.reduce_window(input, low, jax.lax.max, (1,) * lead + kernel, (1,) * lead + stride, pads)
    # JAX cannot differentiate a window-dilated reduce_window: take the max over one strided slice per kernel tap
    padded = jax.lax.pad(input, low, [(lo, hi, 0) for lo, hi in pads])
    spatial = padded.shape[lead:]
    out_sizes = [(size - d * (k - 1) - 1) // s + 1 for size, k, s, d in zip(spatial, kernel, stride, dilation)]
    out = None
    for tap in itertools.product(*(range(k) for k in kernel)):
        starts = [t * d for t, d in zip(tap, dilation)]
        limits = [start + (o - 1) * s + 1 for start, o, s in zip(starts, out_sizes, stride)]
        window = jax.lax.slice(padded, [0] * lead + starts, list(padded.shape[:lead]) + limits, (1,) * lead + stride)
        # torch's scan keeps the first maximum, or the last NaN: the gradient goes there (jnp.maximum splits ties)
        out = window if out is None else jnp.where((window > out) | jnp.isnan(window), window, out)
    return out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 1)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 2)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, 3)


def _avg_pool_counts(size, k, s, p, low, high, count_include_pad):
    """torch's divisor for each output position along one dim: the window's overlap with the input, or with the
    input widened by the explicit padding when count_include_pad (never the extra ceil_mode overhang)."""
    positions = np.arange(size + low + high) - low
    counted = (positions >= -p) & (positions < size + p) if count_include_pad else (positions >= 0) & (positions < size)
    n_out = (size + low + high - k) // s + 1
    return np.array([counted[o * s : o * s + k].sum() for o in range(n_out)])


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, n):
    kernel = _ntuple(kernel_size, n)
    stride = kernel if stride is None or stride == [] else _ntuple(stride, n)
    padding = _ntuple(padding, n)
    lead = input.ndim - n
    sizes = input.shape[lead:]
    pads = _pool_pads(sizes, kernel, stride, padding, (1,) * n, ceil_mode)
    total = jax.lax.reduce_window(
        input, np.array(0, input.dtype), jax.lax.add, (1,) * lead + kernel, (1,) * lead + stride, [(0, 0)] * lead + pads
    )
    if divisor_override:
        return total / divisor_override
    divisor = np.ones((), np.int64)
    for dim in range(n):
        counts = _avg_pool_counts(sizes[dim], kernel[dim], stride[dim], padding[dim], *pads[dim], count_include_pad)
        divisor = np.multiply.outer(divisor, counts)
    return total / divisor.astype(input.dtype)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, None, 1)


def avg_pool2d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 2)


def avg_pool3d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, 3)


def _adaptive_pool(input, output_size, n, reduce):
    # torch's bins: output i covers [floor(i * size / out), ceil((i + 1) * size / out)). Rectangular bins are
    # separable, so each spatial dim is reduced in turn: gather every bin padded to the longest, then mask. The last
    # dim goes first, so that a max picking the first of ties per dim picks the first in row-major order, like torch.
    out_sizes = _ntuple(output_size, n)
    for dim in reversed(range(n)):
        axis = input.ndim - n + dim
        size = input.shape[axis]
        out = size if out_sizes[dim] is None else out_sizes[dim]
        starts = (np.arange(out) * size) // out
        ends = -(-(np.arange(1, out + 1) * size) // out)
        index = starts[:, None] + np.arange((ends - starts).max())
        valid = index < ends[:, None]
        windows = jnp.take(input, np.minimum(index, size - 1), axis=axis)  # (..., out, longest, *rest)
        trailing = input.ndim - axis - 1
        input = reduce(windows, valid.reshape(valid.shape + (1,) * trailing), -1 - trailing)
    return input


def _masked_mean(windows, mask, axis):
    return jnp.where(mask, windows, 0).sum(axis) / mask.sum(axis).astype(windows.dtype)


def _masked_max(windows, mask, axis):
    # torch's gradient goes to one element of the bin, the one its scan keeps: the first maximum, or the last NaN
    # (a NaN replaces the max, and so does any later NaN); jnp.max would share it among ties
    windows = jnp.where(mask, windows, -jnp.inf)
    nan = jnp.isnan(windows)
    last_nan = windows.shape[axis] - 1 - jnp.argmax(jnp.flip(nan, axis), axis)
    index = jnp.where(nan.any(axis), last_nan, jnp.argmax(windows, axis))
    return jnp.take_along_axis(windows, jnp.expand_dims(index, axis), axis).squeeze(axis)


def adaptive_avg_pool1d(input, output_size):
    return _adaptive_pool(input, output_size, 1, _masked_mean)


def adaptive_avg_pool2d(input, output_size):
    return _adaptive_pool(input, output_size, 2, _masked_mean)


def adaptive_avg_pool3d(input, output_size):
    return _adaptive_pool(input, output_size, 3, _masked_mean)


def adaptive_max_pool1d(input, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool(return_indices=True) is not supported")
    return _adaptive_pool(input, output_size, 1, _masked_max)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    if return_indices:
        raise NotImplementedError("adaptive_max_pool(return_indices=True) is not supported")
    return _adaptive_pool(input, output_size, 2, _masked_max)


# ---------------------------------------------------------------- normalisation


def _channel_shape(input):
    return (1, -1) + (1,) * (input.ndim - 2)


def _affine(out, weight, bias, shape):
    if weight is not None:
        out = out * weight.reshape(shape)
    return out if bias is None else out + bias.reshape(shape)


def _normalize(input, mean, var, weight, bias, eps, shape):
    out = (input - mean.reshape(shape)) * jax.lax.rsqrt(var.reshape(shape) + eps)
    return _affine(out, weight, bias, shape)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Training mode normalises with the batch's statistics (biased variance). The running statistics are not
    updated here (no in-place updates in JAX): the BatchNorm layers return the updated ones in their state."""
    if training or running_mean is None:
        axes = (0,) + tuple(range(2, input.ndim))
        mean, var = input.mean(axes), input.var(axes)
    else:
        mean, var = running_mean, running_var
    return _normalize(input, mean, var, weight, bias, eps, _channel_shape(input))


def instance_norm(
    input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True, momentum=0.1, eps=1e-5
):
    """Normalises each (sample, channel) over its spatial dims; with use_input_stats=False uses the running stats."""
    if not use_input_stats:
        return _normalize(input, running_mean, running_var, weight, bias, eps, _channel_shape(input))
    axes = tuple(range(2, input.ndim))
    out = (input - input.mean(axes, keepdims=True)) * jax.lax.rsqrt(input.var(axes, keepdims=True) + eps)
    return _affine(out, weight, bias, _channel_shape(input))


def _ntuple_shape(shape):
    return (shape,) if isinstance(shape, int) else tuple(shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    axes = tuple(range(input.ndim - len(_ntuple_shape(normalized_shape)), input.ndim))
    mean, var = input.mean(axes, keepdims=True), input.var(axes, keepdims=True)
    out = (input - mean) * jax.lax.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    grouped = input.reshape(input.shape[0], num_groups, -1)
    mean, var = grouped.mean(-1, keepdims=True), grouped.var(-1, keepdims=True)
    out = ((grouped - mean) * jax.lax.rsqrt(var + eps)).reshape(input.shape)
    return _affine(out, weight, bias, _channel_shape(input))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """eps=None means the machine epsilon of the input's dtype, like torch."""
    eps = jnp.finfo(input.dtype).eps if eps is None else eps
    axes = tuple(range(input.ndim - len(_ntuple_shape(normalized_shape)), input.ndim))
    out = input * jax.lax.rsqrt(jnp.mean(jnp.square(input), axes, keepdims=True) + eps)
    return out if weight is None else out * weight


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    norm = jnp.linalg.vector_norm(input, ord=p, axis=dim, keepdims=True)
    return input / jnp.maximum(norm, eps)


# ---------------------------------------------------------------- dropout


def _check_dropout(p, key):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if key is None:
        raise ValueError(
            "dropout in training mode needs a PRNG key: pass key=... (or use eqx.nn.inference_mode(model), "
            "torch's model.eval(), to turn dropout off)"
        )


def _dropout_with_mask_shape(input, p, key, mask_shape):
    _check_dropout(p, key)
    if p == 1:
        return jnp.zeros_like(input)
    keep = jax.random.bernoulli(key, 1 - p, mask_shape)
    return jnp.where(keep, input / (1 - p), 0).astype(input.dtype)


def dropout(input, p=0.5, training=True, inplace=False, *, key=None):
    if not training or p == 0:
        return input
    return _dropout_with_mask_shape(input, p, key, input.shape)


def _feature_dropout(input, p, training, key, n):
    # zeroes whole channels: one draw per (sample, channel), or per channel for unbatched input
    if not training or p == 0:
        return input
    channel_dims = 1 if input.ndim == n + 1 else 2
    return _dropout_with_mask_shape(input, p, key, input.shape[:channel_dims] + (1,) * (input.ndim - channel_dims))


def dropout1d(input, p=0.5, training=True, inplace=False, *, key=None):
    return _feature_dropout(input, p, training, key, 1)


def dropout2d(input, p=0.5, training=True, inplace=False, *, key=None):
    return _feature_dropout(input, p, training, key, 2)


def dropout3d(input, p=0.5, training=True, inplace=False, *, key=None):
    return _feature_dropout(input, p, training, key, 3)


# ---------------------------------------------------------------- activations


def relu(input, inplace=False):
    return jax.nn.relu(input)


def relu6(input, inplace=False):
    return jax.nn.relu6(input)  # gradient 0 at 0 and 6 like torch's (jnp.clip's is 0.5)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return jnp.where(input > 0, input, input * negative_slope)


def elu(input, alpha=1.0, inplace=False):
    return jax.nn.elu(input, alpha)


def selu(input, inplace=False):
    return jax.nn.selu(input)


def celu(input, alpha=1.0, inplace=False):
    return jax.nn.celu(input, alpha)


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return jax.nn.gelu(input, approximate=approximate == "tanh")


def silu(input, inplace=False):
    return jax.nn.silu(input)


def mish(input, inplace=False):
    return input * jnp.tanh(softplus(input))


def sigmoid(input):
    return jax.nn.sigmoid(input)


def tanh(input):
    return jnp.tanh(input)


def softplus(input, beta=1.0, threshold=20.0):
    # torch switches to the identity where beta * x > threshold; clamping keeps exp finite in the other branch
    scaled = input * beta
    return jnp.where(scaled > threshold, input, jnp.log1p(jnp.exp(jnp.minimum(scaled, threshold))) / beta)


def softsign(input):
    return input / (1 + jnp.abs(input))


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    # torch's gradient is 0 at and beyond the bounds (jnp.clip's is 0.5 at a bound); lax.clamp would do, but wants
    # bounds of the input's dtype and nn.Hardtanh(-2, 2) passes ints
    inside = (input > min_val) & (input < max_val)
    return jnp.where(inside, input, jax.lax.stop_gradient(jnp.clip(input, min_val, max_val)))


def hardsigmoid(input, inplace=False):
    # torch's gradient: 1/6 strictly inside (-3, 3), 0 at and beyond the kinks (jnp.clip's is not 0 at a bound)
    inside = (input > -3) & (input < 3)
    return jnp.where(inside, input / 6 + 0.5, jnp.where(input >= 3, 1.0, 0.0).astype(input.dtype))


def hardswish(input, inplace=False):
    # torch's gradient: 0 up to -3, x / 3 + 0.5 strictly between, 1 from 3 on
    middle = input * (input + 3) / 6
    return jnp.where(input <= -3, jnp.zeros_like(input), jnp.where(input < 3, middle, input))


def logsigmoid(input):
    return jax.nn.log_sigmoid(input)


def prelu(input, weight):
    # one slope per channel (dim 1), or a single shared slope
    shape = (-1,) + (1,) * (input.ndim - 2) if input.ndim >= 2 else (-1,)
    return jnp.where(input > 0, input, input * weight.reshape(shape))


def _softmax_dim(input, dim):
    # torch's legacy choice when dim is omitted
    if dim is None:
        return 0 if input.ndim in (0, 1, 3) else 1
    return dim


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    input = input if dtype is None else input.astype(dtype)
    return jax.nn.softmax(input, axis=_softmax_dim(input, dim))


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    input = input if dtype is None else input.astype(dtype)
    return jax.nn.log_softmax(input, axis=_softmax_dim(input, dim))


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    input = input if dtype is None else input.astype(dtype)
    return jax.nn.softmax(-input, axis=_softmax_dim(input, dim))


def threshold(input, threshold, value, inplace=False):
    return jnp.where(input > threshold, input, value)


def glu(input, dim=-1):
    a, b = jnp.split(input, 2, axis=dim)
    return a * jax.nn.sigmoid(b)


def tanhshrink(input):
    return input - jnp.tanh(input)


def softshrink(input, lambd=0.5):
    return jnp.where(input > lambd, input - lambd, jnp.where(input < -lambd, input + lambd, 0))


def hardshrink(input, lambd=0.5):
    return jnp.where(jnp.abs(input) > lambd, input, 0)


# ---------------------------------------------------------------- padding, resampling, reshuffling


def pad(input, pad, mode="constant", value=None):
    """torch's pad order: (last_low, last_high, second_last_low, second_last_high, ...)."""
    pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)][::-1]
    widths = [(0, 0)] * (input.ndim - len(pairs)) + pairs
    if mode == "constant":
        # lax.pad accepts negative widths, which crop like torch's
        fill = jnp.array(0 if value is None else value, input.dtype)
        return jax.lax.pad(input, fill, [(low, high, 0) for low, high in widths])
    numpy_modes = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    if mode not in numpy_modes:
        raise ValueError(f"unsupported padding mode {mode!r}")
    return jnp.pad(input, widths, mode=numpy_modes[mode])


def _source_scale(size, out, scale_factor, align_corners):
    """torch's input/output coordinate ratio (area_pixel_compute_scale), in float32 like torch's CPU kernels."""
    if align_corners:
        return np.float32((size - 1) / (out - 1)) if out > 1 else np.float32(0)
    if scale_factor is not None and scale_factor > 0:
        return np.float32(1.0 / scale_factor)
    return np.float32(size) / np.float32(out)


def _resize_axis(input, axis, out, scale_factor, mode, align_corners):
    size = input.shape[axis]
    dst = np.arange(out, dtype=np.float32)
    scale = _source_scale(size, out, scale_factor, align_corners and mode == "linear")
    if mode in ("nearest", "nearest-exact"):
        offset = np.float32(0.5 if mode == "nearest-exact" else 0)
        index = np.minimum(np.floor((dst + offset) * scale).astype(np.int64), size - 1)
        return jnp.take(input, index, axis=axis)
    src = dst * scale if align_corners else np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), 0)
    low = src.astype(np.int64)
    high = np.minimum(low + 1, size - 1)
    frac = (src - low).astype(np.float32).reshape((-1,) + (1,) * (input.ndim - axis - 1))
    frac = jnp.asarray(frac, input.dtype)
    return jnp.take(input, low, axis=axis) * (1 - frac) + jnp.take(input, high, axis=axis) * frac


def interpolate(
    input,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    """Modes nearest, nearest-exact, linear, bilinear, trilinear (separable, one spatial dim at a time) and area."""
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not supported")
    n = input.ndim - 2
    if size is not None:
        out_sizes, factors = _ntuple(size, n), (None,) * n
    else:
        factors = _ntuple(scale_factor, n)
        out_sizes = tuple(math.floor(s * f) for s, f in zip(input.shape[2:], factors))
        if recompute_scale_factor:
            factors = (None,) * n
    if mode == "area":
        return _adaptive_pool(input, out_sizes, n, _masked_mean)
    if mode in ("linear", "bilinear", "trilinear"):
        kind = "linear"
    elif mode in ("nearest", "nearest-exact"):
        kind = mode
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes")
    else:
        raise NotImplementedError(f"interpolate mode {mode!r} is not supported")
    for i in range(n):
        input = _resize_axis(input, 2 + i, out_sizes[i], factors[i], kind, bool(align_corners))
    return input


def pixel_shuffle(input, upscale_factor):
    r = upscale_factor
    *lead, c, h, w = input.shape
    out = input.reshape(*lead, c // (r * r), r, r, h, w)
    out = jnp.moveaxis(out, (-4, -3), (-3, -1))  # (..., c, h, r, w, r)
    return out.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    r = downscale_factor
    *lead, c, h, w = input.shape
    out = input.reshape(*lead, c, h // r, r, w // r, r)
    out = jnp.moveaxis(out, (-3, -1), (-4, -3))  # (..., c, r, r, h/r, w/r)
    return out.reshape(*lead, c * r * r, h // r, w // r)
