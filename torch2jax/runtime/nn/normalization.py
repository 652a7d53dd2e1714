"""Normalisation layers. BatchNorm and InstanceNorm keep torch's running statistics as Equinox state.

A layer tracking running statistics has StateIndex fields named like torch's buffers (`running_mean`,
`running_var`, `num_batches_tracked`), so `load_state_dict` finds them by torch's keys, and is called
`out, state = layer(x, state)`. In train mode (the default, like a fresh torch module) it normalises with the
batch's statistics and returns the updated running statistics; under `eqx.nn.inference_mode` (torch's eval())
it normalises with the running statistics. Without running statistics it is called `out = layer(x)`.
"""
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from torch2jax.runtime.nn import functional as F
from torch2jax.runtime.nn._common import param_dtype


class _RunningStatsNorm(eqx.Module):
    expected_ndims = ()  # set by subclasses: the input ranks torch accepts
    counts_batches = True  # torch's InstanceNorm never updates num_batches_tracked, and momentum=None freezes it

    num_features: int = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    momentum: float | None = eqx.field(static=True)
    affine: bool = eqx.field(static=True)
    track_running_stats: bool = eqx.field(static=True)
    weight: Array | None
    bias: Array | None
    running_mean: eqx.nn.StateIndex | None
    running_var: eqx.nn.StateIndex | None
    num_batches_tracked: eqx.nn.StateIndex | None
    inference: bool

    def __init__(self, num_features, eps, momentum, affine, track_running_stats, dtype):
        dtype = param_dtype(dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = jnp.ones(num_features, dtype) if affine else None
        self.bias = jnp.zeros(num_features, dtype) if affine else None
        if track_running_stats:
            self.running_mean = eqx.nn.StateIndex(jnp.zeros(num_features, dtype))
            self.running_var = eqx.nn.StateIndex(jnp.ones(num_features, dtype))
            self.num_batches_tracked = eqx.nn.StateIndex(jnp.zeros((), jnp.int32))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self.inference = False  # set here, not as a class default: eqx.nn.inference_mode flips it

    def __call__(self, x, state=None, *, key=None):
        if x.ndim not in self.expected_ndims:
            raise ValueError(f"{type(self).__name__} expected a {' or '.join(map(str, self.expected_ndims))}D input, "
                             f"got {x.ndim}D")
        if self.running_mean is None:
            out = self._normalize(x, None, None)
            return out if state is None else (out, state)
        if state is None:
            raise ValueError(f"{type(self).__name__} tracks running statistics: call it as `out, state = layer(x, "
                             "state)` with the state from eqx.nn.make_with_state")
        if self.inference:
            return self._normalize(x, state.get(self.running_mean), state.get(self.running_var)), state
        return self._normalize(x, None, None), self._update_running_stats(x, state)

    def _update_running_stats(self, x, state):
        mean, var = self._observed_stats(jax.lax.stop_gradient(x))
        count = state.get(self.num_batches_tracked)
        if self.counts_batches:
            count = count + 1
            # momentum=None means a cumulative average over all batches seen
            factor = 1.0 / count if self.momentum is None else self.momentum
        else:
            factor = 0.0 if self.momentum is None else self.momentum
        old_mean, old_var = state.get(self.running_mean), state.get(self.running_var)
        state = state.set(self.running_mean, ((1 - factor) * old_mean + factor * mean).astype(old_mean.dtype))
        state = state.set(self.running_var, ((1 - factor) * old_var + factor * var).astype(old_var.dtype))
        return state.set(self.num_batches_tracked, count)


class _BatchNorm(_RunningStatsNorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, device=None,
                 dtype=None, *, key=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)

    def _normalize(self, x, running_mean, running_var):
        return F.batch_norm(x, running_mean, running_var, self.weight, self.bias, running_mean is None, eps=self.eps)

    def _observed_stats(self, x):
        axes = (0,) + tuple(range(2, x.ndim))
        if x.size // x.shape[1] == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {x.shape}")
        # the running variance is the unbiased one, although normalisation uses the biased one
        return x.mean(axes), x.var(axes, ddof=1)


class BatchNorm1d(_BatchNorm):
    expected_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    expected_ndims = (4,)


class BatchNorm3d(_BatchNorm):
    expected_ndims = (5,)


class _InstanceNorm(_RunningStatsNorm):
    counts_batches = False
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, key=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)

    def _normalize(self, x, running_mean, running_var):
        # unbatched input (C, *spatial) is normalised as a batch of one
        unbatched = x.ndim == min(self.expected_ndims)
        x = x[None] if unbatched else x
        out = F.instance_norm(x, running_mean, running_var, self.weight, self.bias, running_mean is None, eps=self.eps)
        return out[0] if unbatched else out

    def _observed_stats(self, x):
        x = x[None] if x.ndim == min(self.expected_ndims) else x
        axes = tuple(range(2, x.ndim))
        # torch averages the per-instance statistics over the batch
        return x.mean(axes).mean(0), x.var(axes, ddof=1).mean(0)


class InstanceNorm1d(_InstanceNorm):
    expected_ndims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    expected_ndims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    expected_ndims = (4, 5)


class LayerNorm(eqx.Module):
    normalized_shape: tuple = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    weight: Array | None
    bias: Array | None

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None, dtype=None, *,
                 key=None):
        dtype = param_dtype(dtype)
        self.normalized_shape = F._ntuple_shape(normalized_shape)
        self.eps = eps
        self.weight = jnp.ones(self.normalized_shape, dtype) if elementwise_affine else None
        self.bias = jnp.zeros(self.normalized_shape, dtype) if elementwise_affine and bias else None

    def __call__(self, x, *, key=None):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class GroupNorm(eqx.Module):
    num_groups: int = eqx.field(static=True)
    num_channels: int = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    weight: Array | None
    bias: Array | None

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None, *, key=None):
        if num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        dtype = param_dtype(dtype)
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = jnp.ones(num_channels, dtype) if affine else None
        self.bias = jnp.zeros(num_channels, dtype) if affine else None

    def __call__(self, x, *, key=None):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class RMSNorm(eqx.Module):
    normalized_shape: tuple = eqx.field(static=True)
    eps: float | None = eqx.field(static=True)
    weight: Array | None

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None, *, key=None):
        self.normalized_shape = F._ntuple_shape(normalized_shape)
        self.eps = eps
        self.weight = jnp.ones(self.normalized_shape, param_dtype(dtype)) if elementwise_affine else None

    def __call__(self, x, *, key=None):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)
