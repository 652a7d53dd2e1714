"""Mixed precision as an explicit compute-dtype policy (what torch.autocast + GradScaler become).

torch's autocast picks a dtype per op inside a `with` block; JAX has no ambient mode, so the translation makes the
policy explicit at the boundary of each module call inside the block:

    with torch.autocast("cuda", dtype=torch.bfloat16):        out = t2j.amp.autocast(model, jnp.bfloat16)(x)
        out = model(x)                               ->        loss = F.cross_entropy(out, y)
        loss = F.cross_entropy(out, y)

`autocast(module, dtype)(*args)`:

- parameters stay float32 (the optimizer's master copy); a low-precision copy is made for the call, inside the
  differentiated function, so gradients come back float32;
- floating inputs are cast to `dtype`, floating outputs back to float32 (losses, softmax and reductions written
  after the module call run in float32, as autocast runs them);
- `loss_scale` (float16 only: what GradScaler does): the cotangent entering the low-precision region is
  multiplied by `loss_scale` and the gradients leaving it are divided by it, so small float16 gradients do not
  underflow; the loss, the gradients the optimizer sees and the update are unchanged. The scale is static:
  GradScaler's dynamic adjustment (halve and skip the step on inf/NaN, grow every 2000 steps) is not done; pick a
  scale for which `loss * scale` stays below float16's max (65504). bfloat16 has float32's range and needs no scale.

Differences from torch: torch decides per op (matmuls and convolutions in low precision, most others in float32
inside the block); here everything inside a wrapped module call runs in `dtype`, including its normalisation
layers and softmaxes. Code inside the `with` block that is not a module call runs in float32.
"""
from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["autocast", "cast_floating", "scale_gradient"]


def cast_floating(tree, dtype):
    """`tree` with every floating-point array cast to `dtype` (integer arrays, keys and non-arrays untouched)."""
    def cast(x):
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def scale_gradient(tree, scale):
    """The identity on `tree`; the gradients of its floating arrays are multiplied by `scale`."""
    dynamic, static = eqx.partition(tree, eqx.is_inexact_array)
    return eqx.combine(_scale_gradient(dynamic, jnp.asarray(scale, jnp.float32)), static)


@jax.custom_vjp
def _scale_gradient(x, scale):
    return x


def _scale_fwd(x, scale):
    return x, scale


def _scale_bwd(scale, g):
    return jax.tree.map(lambda t: t * scale.astype(t.dtype) if jnp.issubdtype(t.dtype, jnp.floating) else t, g), \
        jnp.zeros_like(scale)


_scale_gradient.defvjp(_scale_fwd, _scale_bwd)


def autocast(fn, dtype=jnp.bfloat16, *, enabled=True, loss_scale=None, output_dtype=jnp.float32):
    """`fn` (a module or any function) computed in `dtype`: parameters and floating inputs cast on the way in,
    floating outputs cast to `output_dtype` on the way out. See the module docstring."""
    if not enabled or dtype is None:
        return fn

    @functools.wraps(fn if callable(fn) and not isinstance(fn, eqx.Module) else autocast)
    def call(*args, **kwargs):
        inputs = (fn, args, kwargs)
        if loss_scale is not None:
            inputs = scale_gradient(inputs, 1.0 / loss_scale)
        low_fn, low_args, low_kwargs = cast_floating(inputs, dtype)
        out = cast_floating(low_fn(*low_args, **low_kwargs), output_dtype)
        if loss_scale is not None:
            out = scale_gradient(out, loss_scale)
        return out

    return call
