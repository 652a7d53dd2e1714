"""Padding layers. `padding` is an int (every side) or torch's tuple (last dim first: left, right, top, bottom...)."""
import equinox as eqx

from torch2jax.runtime.nn import functional as F


class _PadNd(eqx.Module):
    num_spatial_dims = 0  # set by subclasses
    mode = "constant"  # set by subclasses

    padding: tuple = eqx.field(static=True)
    value: float = eqx.field(static=True)

    def __init__(self, padding, value=0.0, *, key=None):
        self.padding = F._ntuple(padding, 2 * self.num_spatial_dims)
        self.value = value

    def __call__(self, x, *, key=None):
        return F.pad(x, self.padding, self.mode, self.value if self.mode == "constant" else None)


class ConstantPad1d(_PadNd):
    num_spatial_dims = 1


class ConstantPad2d(_PadNd):
    num_spatial_dims = 2


class ConstantPad3d(_PadNd):
    num_spatial_dims = 3


class _FixedPadNd(_PadNd):
    """Layers whose only argument is `padding` (zero, reflection, replication, circular)."""

    def __init__(self, padding, *, key=None):
        super().__init__(padding, 0.0)


class ZeroPad1d(_FixedPadNd):
    num_spatial_dims = 1


class ZeroPad2d(_FixedPadNd):
    num_spatial_dims = 2


class ZeroPad3d(_FixedPadNd):
    num_spatial_dims = 3


class ReflectionPad1d(_FixedPadNd):
    num_spatial_dims, mode = 1, "reflect"


class ReflectionPad2d(_FixedPadNd):
    num_spatial_dims, mode = 2, "reflect"


class ReflectionPad3d(_FixedPadNd):
    num_spatial_dims, mode = 3, "reflect"


class ReplicationPad1d(_FixedPadNd):
    num_spatial_dims, mode = 1, "replicate"


class ReplicationPad2d(_FixedPadNd):
    num_spatial_dims, mode = 2, "replicate"


class ReplicationPad3d(_FixedPadNd):
    num_spatial_dims, mode = 3, "replicate"


class CircularPad1d(_FixedPadNd):
    num_spatial_dims, mode = 1, "circular"


class CircularPad2d(_FixedPadNd):
    num_spatial_dims, mode = 2, "circular"


class CircularPad3d(_FixedPadNd):
    num_spatial_dims, mode = 3, "circular"
