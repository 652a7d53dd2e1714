"""torch's `Module.apply(fn)` for immutable Equinox modules: fn returns the (rebuilt) module it was given, and the
model is rebuilt from what it returns. torch's order: a module's children first (in registration order), then
the module itself."""
from __future__ import annotations

import copy
import itertools

import equinox as eqx
import jax

from torch2jax.runtime.ties import settle_ties_in_init


def apply(module, fn, *, key=None, pre_order=False):
    """`module` with `fn` applied to every submodule, children first (torch's Module.apply), or the module before
    its children with pre_order=True (the order of torch's `for m in model.modules()`). When `key` is given, each
    call of fn gets its own `key=` (fn draws random numbers)."""
    counter = itertools.count()
    return _apply(module, _caller(fn, key, counter), pre_order)


def apply_in_init(module, fn, *, key=None, pre_order=False) -> None:
    """`self.apply(fn)` inside `__init__`: every submodule built so far is rebuilt in place (an Equinox module
    can still set its fields during __init__). fn is not called on the half-built module itself."""
    call = _caller(fn, key, itertools.count())
    for name, value in list(vars(module).items()):
        if _holds_modules(value):
            setattr(module, name, _apply(value, call, pre_order))
    settle_ties_in_init(module)  # tied weights written through either member: torch wrote one tensor


def _caller(fn, key, counter):
    if key is None:
        return fn
    return lambda m: fn(m, key=jax.random.fold_in(key, next(counter)))


def _holds_modules(value) -> bool:
    if isinstance(value, eqx.Module):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_modules(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_modules(v) for v in value.values())
    return False


def _apply(node, call, pre_order=False):
    if isinstance(node, (list, tuple)):
        items = [_apply(v, call, pre_order) if _holds_modules(v) else v for v in node]
        return type(node)(items) if isinstance(node, list) else tuple(items)
    if isinstance(node, dict):
        return {k: _apply(v, call, pre_order) if _holds_modules(v) else v for k, v in node.items()}
    if not isinstance(node, eqx.Module):
        return node
    if pre_order:
        node = _call(call, node)
    for name in node.__dataclass_fields__:
        child = getattr(node, name, None)
        if _holds_modules(child):
            new = _apply(child, call, pre_order)
            if new is not child:
                node = _replace_field(node, name, new)
    return node if pre_order else _call(call, node)


def _replace_field(node, name: str, value):
    """A copy of the (frozen) module with one field replaced. Not eqx.tree_at: it finds the old subtree by
    identity and refuses when one array is shared by two places (a tied weight, an aliased submodule)."""
    new = copy.copy(node)
    object.__setattr__(new, name, value)
    return new


def _call(call, node):
    result = call(node)
    return node if result is None else result
