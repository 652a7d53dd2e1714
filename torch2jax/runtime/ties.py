"""Weight tying: `self.head.weight = self.embed.weight` makes two torch modules share one Parameter.

A JAX pytree cannot hold one array in two places (every leaf is differentiated and updated on its own), so a
module that ties keeps both leaves, names the members of each tie in its static field ``_t2j_ties`` (torch names
relative to it, e.g. ``("embed.weight", "head.weight")``), and treats the member that comes first in torch's
parameter order as the parameter:

- ``t2j.tied(self)``, the first statement of each of its methods, copies that parameter into the other members,
  so the forward pass uses one array in both places and its gradient is the sum of both uses (the others get
  zero gradients);
- ``t2j.parameters`` / ``named_parameters`` list the parameter once, under torch's name (runtime/params.py), so
  optimizers decay and step it once, clipping counts it once, and the other members are never updated: their
  stored values are stale until the next ``tied``;
- ``to_state_dict`` holds every member (as torch's state_dict does), with the parameter's value.

In ``__init__``: ``tie_in_init`` copies the source into the alias and records the tie; writes to either member
(torch writes the one shared tensor) are settled after ``apply_in_init`` and ``replace_parameters_in_init`` and by
``finish_ties_in_init``, the last statement of ``__init__``: the member written last in parameter order
(``apply``'s order) gives the value.
"""
from __future__ import annotations

import equinox as eqx
import jax

from torch2jax.runtime.params import _get, _own_and_children

__all__ = ["tie_in_init", "share_in_init", "settle_ties_in_init", "finish_ties_in_init", "tied", "tied_all"]

# id(module being built) -> {member name: its array when the tie was last settled}: tells settle_ties_in_init
# which members __init__ wrote since
_AT_TIE: dict[int, dict[str, object]] = {}


def _paths(module) -> dict[str, tuple]:
    """Every parameter's torch name -> path, tied members included, in torch's order."""
    return dict(_own_and_children(module, "", dedupe=False))


def _set_in_init(module, path, value) -> None:
    (kind, first), rest = path[0], path[1:]
    assert kind == "attr", path
    field = getattr(module, first)
    setattr(module, first, eqx.tree_at(lambda m: _get(m, rest), field, value) if rest else value)


def tie_in_init(module, alias: str, source: str) -> None:
    """`self.<alias> = self.<source>` inside `__init__`, both parameters of submodules (torch names)."""
    paths = _paths(module)
    for name in (alias, source):
        if name not in paths:
            raise ValueError(f"weight tying: {name!r} is not a parameter of {type(module).__name__}")
    value = _get(module, paths[source])
    _set_in_init(module, paths[alias], value)
    _join(module, {alias, source}, value, list(paths))


def share_in_init(module, field: str) -> None:
    """`self.net = nn.Sequential(self.conv1, ...)` inside `__init__`: torch holds one conv1 in both places, so
    `self.conv1.weight` and `self.net[0].weight` are one Parameter. Every parameter under `field` that is the very
    array of another place in the module is tied to it, as `tie_in_init` ties weights."""
    paths = _paths(module)
    places: dict[int, list[str]] = {}
    for name, path in paths.items():
        places.setdefault(id(_get(module, path)), []).append(name)
    for names in places.values():
        if len(names) > 1 and any(n.startswith(field + ".") for n in names):
            _join(module, set(names), _get(module, paths[names[0]]), list(paths))


def _join(module, members: set[str], value, order: list[str]) -> None:
    """Record `members` as one tie group (merged with the groups they are already in), their value `value`."""
    groups = [set(g) for g in getattr(module, "_t2j_ties", ())]
    joined = members.union(*[g for g in groups if g & members])
    groups = [g for g in groups if not g & members] + [joined]
    setattr(module, "_t2j_ties", tuple(tuple(sorted(g, key=order.index)) for g in groups))
    _AT_TIE.setdefault(id(module), {}).update({name: value for name in joined})


def settle_ties_in_init(module) -> None:
    """Inside `__init__`, after writes to tied members (`apply`, a loop over parameters): every member takes the
    value torch's one shared tensor has now, the member written last in torch's order (apply's order). A no-op for a
    module that is not being built with ties."""
    at_tie = _AT_TIE.get(id(module))
    if at_tie is None:
        return
    paths = _paths(module)
    for group in getattr(module, "_t2j_ties", ()):
        written = [n for n in group if _get(module, paths[n]) is not at_tie.get(n)]
        value = _get(module, paths[written[-1] if written else group[0]])
        for name in group:
            _set_in_init(module, paths[name], value)
            at_tie[name] = value


def finish_ties_in_init(module) -> None:
    """End of `__init__`: the ties settled (settle_ties_in_init), and the module no longer being built."""
    settle_ties_in_init(module)
    _AT_TIE.pop(id(module), None)


def tied(module):
    """`module` with each tie's later members set to its parameter (the member first in torch's order)."""
    groups = getattr(module, "_t2j_ties", ())
    if not groups or id(module) in _AT_TIE:  # no ties, or still in __init__ (a helper it calls): the module itself
        return module
    paths = _paths(module)
    others = [(paths[n], paths[g[0]]) for g in groups for n in g[1:]]
    return eqx.tree_at(lambda m: [_get(m, p) for p, _ in others], module,
                       [_get(module, src) for _, src in others])


def tied_all(tree):
    """`tied` applied to every module in `tree` (before reading all of its leaves, as to_state_dict does)."""
    def visit(node):
        if isinstance(node, eqx.Module):
            inner = jax.tree_util.tree_map(visit, node, is_leaf=lambda x: x is not node and isinstance(x, eqx.Module))
            return tied(inner)
        return node

    return jax.tree_util.tree_map(visit, tree, is_leaf=lambda x: isinstance(x, eqx.Module))
