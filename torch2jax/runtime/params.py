"""torch's parameter iteration for Equinox models: the same parameters, in torch's order, and a way to put new
values back (Equinox modules are immutable, so `p.copy_(v)` in a loop becomes "collect, then replace").

torch orders `module.parameters()` by module, pre-order: a module's own parameters first (in field order), then
each submodule's. Buffers (`_t2j_buffers`), Equinox state and non-floating arrays are not parameters.
"""
from __future__ import annotations

import equinox as eqx
import jax


def _own_and_children(node, prefix: str, buffers_wanted: bool = False, dedupe: bool = True):
    """(name, getter path) for the parameters (or the buffers) under `node`, in torch's order. A module's tied
    weights (`_t2j_ties`, runtime/ties.py) are listed once, under the first name, as torch lists a shared
    Parameter once; `dedupe=False` lists every member."""
    own, children = [], []
    if isinstance(node, eqx.nn.StateIndex):
        return []  # state (BatchNorm's statistics): its initial arrays sit here until make_with_state takes them
    if isinstance(node, eqx.Module):
        buffers = set(getattr(type(node), "_t2j_buffers", ()))
        transparent = getattr(type(node), "_t2j_transparent", None)
        for name in node.__dataclass_fields__:
            value = getattr(node, name, None)
            key = prefix if name == transparent else f"{prefix}{name}."
            path = (("attr", name),)
            if eqx.is_array(value):
                if (name in buffers) == buffers_wanted and (buffers_wanted or eqx.is_inexact_array(value)):
                    own.append((f"{prefix}{name}", path))
            elif value is not None:
                children.append((key, path, value))
    elif isinstance(node, (list, tuple)):
        children = [(f"{prefix}{i}.", (("item", i),), v) for i, v in enumerate(node)]
    elif isinstance(node, dict):
        children = [(f"{prefix}{k}.", (("item", k),), v) for k, v in node.items()]
    out = list(own)
    for key, path, value in children:
        out += [(n, path + p) for n, p in _own_and_children(value, key, buffers_wanted, dedupe)]
    ties = getattr(node, "_t2j_ties", ()) if dedupe and isinstance(node, eqx.Module) else ()
    if ties:
        later = {prefix + n for group in ties for n in group[1:]}
        out = [(n, p) for n, p in out if n not in later]
    return out


def _get(node, path):
    for kind, k in path:
        node = getattr(node, k) if kind == "attr" else node[k]
    return node


def named_parameters(model) -> list[tuple[str, jax.Array]]:
    """torch's `model.named_parameters()`: (dotted name, array) in torch's order."""
    return [(name, _get(model, path)) for name, path in _own_and_children(model, "")]


def named_buffers(model) -> list[tuple[str, jax.Array]]:
    """torch's `model.named_buffers()` for buffers held as fields (register_buffer); BatchNorm's running
    statistics live in Equinox state and are not listed."""
    return [(name, _get(model, path)) for name, path in _own_and_children(model, "", buffers_wanted=True)]


def parameters(model) -> list[jax.Array]:
    """torch's `model.parameters()`, in torch's order."""
    return [array for _, array in named_parameters(model)]


def replace_parameters(model, values, *, sync_ties: bool = True):
    """`model` with its parameters (in `parameters(model)` order) replaced by `values` (same shapes); the other
    members of tied weights take the new values (`sync_ties`)."""
    paths = [path for _, path in _own_and_children(model, "")]
    values = list(values)
    if len(values) != len(paths):
        raise ValueError(f"replace_parameters: the model has {len(paths)} parameters, got {len(values)} values")
    for path, value in zip(paths, values):
        old = _get(model, path)
        if tuple(value.shape) != tuple(old.shape):
            raise ValueError(f"replace_parameters: shape {tuple(value.shape)} for a parameter of shape {old.shape}")
    new = eqx.tree_at(lambda m: [_get(m, p) for p in paths], model,
                      [jax.numpy.asarray(v, dtype=_get(model, p).dtype) for p, v in zip(paths, values)])
    if not sync_ties:
        return new
    from torch2jax.runtime.ties import tied_all  # ties.py builds on this module

    return tied_all(new)


def replace_parameters_in_init(module, values) -> None:
    """`for p in self.parameters(): p.copy_(...)` inside `__init__`: the module being built takes the fields of
    `replace_parameters(module, values)` (an Equinox module can still set its fields during __init__; rebinding
    `self` would leave the module that is returned untouched)."""
    new = replace_parameters(module, values, sync_ties=False)
    for name, value in vars(new).items():
        setattr(module, name, value)
    from torch2jax.runtime.ties import settle_ties_in_init  # ties.py builds on this module

    settle_ties_in_init(module)
