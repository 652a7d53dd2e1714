"""Load a torch state_dict into an Equinox model, and write one back out.

A model's pytree path spells its torch key: field names are torch's attribute names, lists/tuples contribute their
index and dicts their key, so `model.blocks[0].fc.weight` is `blocks.0.fc.weight`. Every array leaf is a parameter
or buffer; every `eqx.nn.StateIndex` leaf is a buffer kept in Equinox state (BatchNorm's `running_mean`, ...).

Two class attributes let a module adjust its keys (used by the runtime's own layers and by translated modules):

- `_t2j_transparent = "field"`: that field's name is left out of the keys. Sequential keeps its children in
  `layers` but torch keys them `seq.0.weight`; a layer may likewise group torch attributes in a sub-structure
  without changing its keys. If the module also has `_t2j_item_names` (a tuple of str, one per item of the
  transparent sequence), items are keyed by those names instead of their index (Sequential built from an
  OrderedDict).
- `_t2j_nonpersistent = ("name", ...)`: those fields are torch's non-persistent buffers, absent from state_dict.

Values may be torch tensors (read by duck typing: `.detach().cpu().numpy()`, torch is never imported) or numpy
arrays. Loaded values take the dtype of the model's array they replace.
"""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import DictKey, GetAttrKey, SequenceKey
from torch2jax.runtime.ties import tied_all


class StateDictError(ValueError):
    """Every key problem of one load at once: missing keys, unexpected keys, shape mismatches."""

    def __init__(self, message, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing, self.unexpected, self.mismatched = list(missing), list(unexpected), list(mismatched)


def _is_state_index(node):
    return isinstance(node, eqx.nn.StateIndex)


def _torch_key(model, path):
    """The torch key of the leaf at `path`, or None when a `_t2j_nonpersistent` field is on the way."""
    parts, node, item_names = [], model, None
    for entry in path:
        names, item_names = item_names, None
        if isinstance(entry, GetAttrKey):
            if entry.name in getattr(type(node), "_t2j_nonpersistent", ()):
                return None
            if entry.name == getattr(type(node), "_t2j_transparent", None):
                item_names = getattr(node, "_t2j_item_names", None)
            else:
                parts.append(entry.name)
            node = getattr(node, entry.name)
        elif isinstance(entry, SequenceKey):
            parts.append(names[entry.idx] if names is not None else str(entry.idx))
            node = node[entry.idx]
        elif isinstance(entry, DictKey):
            parts.append(str(entry.key))
            node = node[entry.key]
        else:
            raise TypeError(f"cannot name a state_dict key through pytree node {entry!r} (path {path})")
    return ".".join(parts)


def _named_leaves(model):
    """(torch key, leaf) for every parameter/buffer leaf of `model`, plus the flattening to rebuild it."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(model, is_leaf=_is_state_index)
    named = []
    for path, leaf in leaves:
        is_param = eqx.is_array(leaf) and not jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        key = _torch_key(model, path) if is_param or _is_state_index(leaf) else None
        named.append((key, leaf))
    return named, treedef


def _to_numpy(value):
    """A copy: jnp.asarray of a numpy array may share its memory on CPU, and torch updates buffers in place (a
    BatchNorm forward would otherwise change the loaded model's running statistics)."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        # numpy has no bfloat16: go through float32, the model's dtype is restored on load
        value = value.float().numpy() if str(value.dtype) == "torch.bfloat16" else value.numpy()
    return np.array(value, copy=True)


def load_state_dict(model, state_dict, *, state=None, strict=True):
    """Return `model` with its parameters replaced by `state_dict`'s (and `(model, state)` when `state` is given,
    with the buffers held in Equinox state replaced too).

    Raises StateDictError listing every missing key, unexpected key and shape mismatch. With strict=False missing
    and unexpected keys are allowed, shape mismatches are not (as torch).
    """
    named, treedef = _named_leaves(model)
    new_leaves, missing, mismatched, stateless = [], [], [], []
    for key, leaf in named:
        if key is None or key not in state_dict:
            if key is not None:
                missing.append(key)
            new_leaves.append(leaf)
            continue
        value = _to_numpy(state_dict[key])
        if _is_state_index(leaf):
            if state is None:
                stateless.append(key)
            else:
                current = state.get(leaf)
                if value.shape != current.shape:
                    mismatched.append((key, value.shape, current.shape))
                else:
                    state = state.set(leaf, jnp.asarray(value, current.dtype))
            new_leaves.append(leaf)
        elif value.shape != leaf.shape:
            mismatched.append((key, value.shape, leaf.shape))
            new_leaves.append(leaf)
        else:
            new_leaves.append(jnp.asarray(value, leaf.dtype))
    known = {key for key, _ in named if key is not None}
    unexpected = [key for key in state_dict if key not in known]
    if not strict:
        missing, unexpected = [], []
    if missing or unexpected or mismatched or stateless:
        lines = [f"Error(s) in loading state_dict for {type(model).__name__}:"]
        if missing:
            lines.append("  Missing key(s): " + ", ".join(missing))
        if unexpected:
            lines.append("  Unexpected key(s): " + ", ".join(unexpected))
        lines += [
            f"  Size mismatch for {key}: the checkpoint has shape {tuple(got)}, the model has {tuple(want)}"
            for key, got, want in mismatched
        ]
        if stateless:
            lines.append(
                "  These buffers live in Equinox state, pass state= (from eqx.nn.make_with_state): "
                + ", ".join(stateless)
            )
        raise StateDictError("\n".join(lines), missing, unexpected, mismatched)
    model = jax.tree_util.tree_unflatten(treedef, new_leaves)
    return model if state is None else (model, state)


def to_state_dict(model, state=None):
    """torch's `module.state_dict()` for `model`: {torch key: numpy array}, buffers in state read from `state`."""
    out = {}
    for key, leaf in _named_leaves(tied_all(model))[0]:  # tied weights: every member holds the parameter's value
        if key is None:
            continue
        if _is_state_index(leaf):
            if state is None:
                raise ValueError(f"{key} lives in Equinox state: pass state= to to_state_dict")
            leaf = state.get(leaf)
        out[key] = np.array(leaf)  # a writable copy, as torch.as_tensor / in-place edits expect
    return out
