"""torch.nn.utils gradient clipping on gradient pytrees, with torch's exact formulas; all work inside jit.

torch clips ``p.grad`` in place and returns the total norm; here gradients are values, so::

    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        ->  grads = t2j.clip_grad_norm(grads, 1.0)
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        ->  grads, norm = t2j.clip_grad_norm_with_norm(grads, 1.0)
    torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)
        ->  grads = t2j.clip_grad_value(grads, 0.5)

``grads`` is any pytree (``None`` leaves, as ``eqx.filter_grad`` gives, are kept as ``None``). The total norm is
the ``norm_type``-norm of the per-leaf norms (``inf`` gives the largest absolute value); gradients are multiplied
by ``min(max_norm / (total_norm + 1e-6), 1.0)``, always, as torch does. ``error_if_nonfinite=True`` raises through
``equinox.error_if`` (at run time, also under jit). ``max_norm`` and ``clip_value`` may be traced values;
``norm_type`` must be a Python number (or ``"inf"``). ``foreach`` is accepted and ignored.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["get_total_norm", "clip_grads_with_norm", "clip_grad_norm", "clip_grad_norm_with_norm", "clip_grad_value"]


def get_total_norm(grads, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None) -> jax.Array:
    """torch.nn.utils.get_total_norm: the norm of the per-leaf norms (0.0 for no leaves)."""
    norm_type = float(norm_type)
    leaves = jax.tree_util.tree_leaves(grads)
    if not leaves:
        return jnp.zeros(())
    norms = [jnp.linalg.vector_norm(g, ord=norm_type) for g in leaves]
    total_norm = jnp.linalg.vector_norm(jnp.stack(norms), ord=norm_type)
    if error_if_nonfinite:
        total_norm = eqx.error_if(
            total_norm,
            ~jnp.isfinite(total_norm),
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`",
        )
    return total_norm


def clip_grads_with_norm(grads, max_norm: float, total_norm, foreach=None):
    """torch.nn.utils.clip_grads_with_norm_: scales ``grads`` by ``min(max_norm / (total_norm + 1e-6), 1)``."""
    clip_coef = max_norm / (total_norm + 1e-6)
    clip_coef_clamped = jnp.minimum(clip_coef, 1.0)
    return jax.tree_util.tree_map(lambda g: g * clip_coef_clamped.astype(g.dtype), grads)


def clip_grad_norm_with_norm(grads, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                             foreach=None):
    """torch.nn.utils.clip_grad_norm_, returning ``(clipped grads, total norm before clipping)``."""
    total_norm = get_total_norm(grads, norm_type, error_if_nonfinite)
    return clip_grads_with_norm(grads, max_norm, total_norm), total_norm


def clip_grad_norm(grads, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False, foreach=None):
    """torch.nn.utils.clip_grad_norm_, returning the clipped grads (see ``clip_grad_norm_with_norm`` for the norm)."""
    return clip_grad_norm_with_norm(grads, max_norm, norm_type, error_if_nonfinite)[0]


def clip_grad_value(grads, clip_value: float, foreach=None):
    """torch.nn.utils.clip_grad_value_: clamps every gradient entry to ``[-clip_value, clip_value]``."""
    return jax.tree_util.tree_map(lambda g: jnp.minimum(jnp.maximum(g, -clip_value), clip_value), grads)
