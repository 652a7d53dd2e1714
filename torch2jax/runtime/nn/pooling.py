"""Pooling layers with torch's arguments (stride defaults to kernel_size, ceil_mode, count_include_pad, adaptive
bins); the math lives in functional.py."""
import equinox as eqx

from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import hashable


def _no_indices(return_indices, layer):
    if return_indices:
        raise NotImplementedError(f"{layer}(return_indices=True) is not supported")


class _MaxPoolNd(eqx.Module):
    pool = None  # the functional form, set by subclasses

    kernel_size: int | tuple = eqx.field(static=True)
    stride: int | tuple | None = eqx.field(static=True)
    padding: int | tuple = eqx.field(static=True)
    dilation: int | tuple = eqx.field(static=True)
    ceil_mode: bool = eqx.field(static=True)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False, *,
                 key=None):
        _no_indices(return_indices, type(self).__name__)
        self.kernel_size, self.stride, self.padding = hashable(kernel_size), hashable(stride), hashable(padding)
        self.dilation, self.ceil_mode = hashable(dilation), ceil_mode

    def __call__(self, x, *, key=None):
        return type(self).pool(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class MaxPool1d(_MaxPoolNd):
    pool = F.max_pool1d


class MaxPool2d(_MaxPoolNd):
    pool = F.max_pool2d


class MaxPool3d(_MaxPoolNd):
    pool = F.max_pool3d


class AvgPool1d(eqx.Module):
    kernel_size: int | tuple = eqx.field(static=True)
    stride: int | tuple | None = eqx.field(static=True)
    padding: int | tuple = eqx.field(static=True)
    ceil_mode: bool = eqx.field(static=True)
    count_include_pad: bool = eqx.field(static=True)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *, key=None):
        self.kernel_size, self.stride, self.padding = hashable(kernel_size), hashable(stride), hashable(padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def __call__(self, x, *, key=None):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class _AvgPoolNd(eqx.Module):
    pool = None  # the functional form, set by subclasses

    kernel_size: int | tuple = eqx.field(static=True)
    stride: int | tuple | None = eqx.field(static=True)
    padding: int | tuple = eqx.field(static=True)
    ceil_mode: bool = eqx.field(static=True)
    count_include_pad: bool = eqx.field(static=True)
    divisor_override: int | None = eqx.field(static=True)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None, *, key=None):
        self.kernel_size, self.stride, self.padding = hashable(kernel_size), hashable(stride), hashable(padding)
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def __call__(self, x, *, key=None):
        return type(self).pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                               self.divisor_override)


class AvgPool2d(_AvgPoolNd):
    pool = F.avg_pool2d


class AvgPool3d(_AvgPoolNd):
    pool = F.avg_pool3d


class _AdaptivePoolNd(eqx.Module):
    pool = None  # the functional form, set by subclasses

    output_size: int | tuple = eqx.field(static=True)

    def __init__(self, output_size, *, key=None):
        self.output_size = hashable(output_size)

    def __call__(self, x, *, key=None):
        return type(self).pool(x, self.output_size)


class AdaptiveAvgPool1d(_AdaptivePoolNd):
    pool = F.adaptive_avg_pool1d


class AdaptiveAvgPool2d(_AdaptivePoolNd):
    pool = F.adaptive_avg_pool2d


class AdaptiveAvgPool3d(_AdaptivePoolNd):
    pool = F.adaptive_avg_pool3d


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    def __init__(self, output_size, return_indices=False, *, key=None):
        _no_indices(return_indices, type(self).__name__)
        self.output_size = hashable(output_size)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    pool = F.adaptive_max_pool1d


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    pool = F.adaptive_max_pool2d
