"""Upsampling and pixel (un)shuffling layers; the math lives in functional.py."""
import equinox as eqx

from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import hashable


class Upsample(eqx.Module):
    size: int | tuple | None = eqx.field(static=True)
    scale_factor: float | tuple | None = eqx.field(static=True)
    mode: str = eqx.field(static=True)
    align_corners: bool | None = eqx.field(static=True)
    recompute_scale_factor: bool | None = eqx.field(static=True)

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                 *, key=None):
        self.size, self.scale_factor, self.mode = hashable(size), hashable(scale_factor), mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def __call__(self, x, *, key=None):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None, *, key=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    def __init__(self, size=None, scale_factor=None, *, key=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class PixelShuffle(eqx.Module):
    upscale_factor: int = eqx.field(static=True)

    def __init__(self, upscale_factor, *, key=None):
        self.upscale_factor = upscale_factor

    def __call__(self, x, *, key=None):
        return F.pixel_shuffle(x, self.upscale_factor)


class PixelUnshuffle(eqx.Module):
    downscale_factor: int = eqx.field(static=True)

    def __init__(self, downscale_factor, *, key=None):
        self.downscale_factor = downscale_factor

    def __call__(self, x, *, key=None):
        return F.pixel_unshuffle(x, self.downscale_factor)
