"""Gradient accumulation: torch adds each backward()'s gradients into `.grad` until zero_grad; here gradients are
values, so the translation keeps their running sum in a variable (None after zero_grad, like `.grad`)::

    loss.backward()                          ->  loss, grads = grad_step(model, x, y, key=subkey)
                                                 grads_acc = t2j.accumulate_grads(grads_acc, grads)
"""
from __future__ import annotations

import equinox as eqx
import jax

__all__ = ["accumulate_grads"]


@eqx.filter_jit
def _add(total, grads):
    return jax.tree.map(lambda a, b: a + b, total, grads)


def accumulate_grads(total, grads):
    """`total + grads` leaf by leaf (one compiled add for the whole tree), or `grads` when `total` is None."""
    return grads if total is None else _add(total, grads)
