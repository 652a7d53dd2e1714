"""Convolutions: torch's weight layouts (out, in/groups, *kernel) and (in, out/groups, *kernel) for transposed,
NC* inputs, and torch's default init (kaiming_uniform(a=sqrt(5)) weights, U(-1/sqrt(fan_in), +) biases)."""
import math

import equinox as eqx
from jax import Array

from torch2jax.runtime import init
from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype, split_key

_PAD_MODES = {"zeros": None, "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _init_conv_params(key, weight_shape, out_channels, bias, dtype, layer):
    wkey, bkey = split_key(key, 2, layer)
    dtype = param_dtype(dtype)
    weight = init.kaiming_uniform(wkey, weight_shape, a=math.sqrt(5), dtype=dtype)
    if not bias:
        return weight, None
    # torch bounds the bias by the weight's fan_in (for transposed convs that is out_channels/groups * kernel)
    fan_in, _ = init.fan_in_and_fan_out(weight_shape)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return weight, init.uniform(bkey, (out_channels,), -bound, bound, dtype)


class _ConvNd(eqx.Module):
    num_spatial_dims = 0  # set by subclasses

    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    kernel_size: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple | str = eqx.field(static=True)
    dilation: tuple = eqx.field(static=True)
    groups: int = eqx.field(static=True)
    padding_mode: str = eqx.field(static=True)
    weight: Array
    bias: Array | None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None, *, key=None):
        n = self.num_spatial_dims
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        if padding_mode not in _PAD_MODES:
            raise ValueError(f"padding_mode must be one of {sorted(_PAD_MODES)}, got {padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.groups, self.padding_mode = groups, padding_mode
        self.kernel_size = F._ntuple(kernel_size, n)
        self.stride, self.dilation = F._ntuple(stride, n), F._ntuple(dilation, n)
        if padding == "same" and any(s != 1 for s in self.stride):
            raise ValueError("padding='same' is not supported for strided convolutions")
        self.padding = padding if isinstance(padding, str) else F._ntuple(padding, n)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight, self.bias = _init_conv_params(key, shape, out_channels, bias, dtype, type(self).__name__)

    def __call__(self, x, *, key=None):
        n = self.num_spatial_dims
        padding = self.padding
        if self.padding_mode != "zeros":
            # torch pads the input with the mode first, then convolves without padding
            pairs = F._conv_pads(padding, self.kernel_size, self.dilation, n)
            x = F.pad(x, [p for pair in reversed(pairs) for p in pair], mode=_PAD_MODES[self.padding_mode])
            padding = 0
        return F._conv(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups, n)


class Conv1d(_ConvNd):
    num_spatial_dims = 1


class Conv2d(_ConvNd):
    num_spatial_dims = 2


class Conv3d(_ConvNd):
    num_spatial_dims = 3


class _ConvTransposeNd(eqx.Module):
    num_spatial_dims = 0  # set by subclasses

    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    kernel_size: tuple = eqx.field(static=True)
    stride: tuple = eqx.field(static=True)
    padding: tuple = eqx.field(static=True)
    output_padding: tuple = eqx.field(static=True)
    groups: int = eqx.field(static=True)
    dilation: tuple = eqx.field(static=True)
    weight: Array
    bias: Array | None

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None, *, key=None):
        n = self.num_spatial_dims
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
        if in_channels % groups or out_channels % groups:
            raise ValueError("in_channels and out_channels must be divisible by groups")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = F._ntuple(kernel_size, n), F._ntuple(stride, n)
        self.padding, self.output_padding = F._ntuple(padding, n), F._ntuple(output_padding, n)
        self.dilation = F._ntuple(dilation, n)
        shape = (in_channels, out_channels // groups) + self.kernel_size
        self.weight, self.bias = _init_conv_params(key, shape, out_channels, bias, dtype, type(self).__name__)

    def __call__(self, x, *, key=None):
        return F._conv_transpose(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                 self.groups, self.dilation, self.num_spatial_dims)


class ConvTranspose1d(_ConvTransposeNd):
    num_spatial_dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    num_spatial_dims = 2


class ConvTranspose3d(_ConvTransposeNd):
    num_spatial_dims = 3
