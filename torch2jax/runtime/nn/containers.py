"""Sequential, and how containers spell torch's state_dict keys.

ModuleList and ModuleDict need no class: translated modules hold plain lists and dicts of layers, whose pytree
paths already give torch's keys (`blocks.0.weight`, `heads.cls.bias`). Sequential needs one, because torch calls its
children in order; it keeps them in a field `layers` that torch's keys leave out (`seq.0.weight`, not
`seq.layers.0.weight`) by declaring `_t2j_transparent = "layers"`, the convention state_dict.py documents.
"""
from collections import OrderedDict

import equinox as eqx
import jax


def is_stateful(module):
    """Whether `module` holds Equinox state anywhere (BatchNorm running statistics...), and so is called
    `out, state = module(x, state)`."""
    is_index = lambda node: isinstance(node, eqx.nn.StateIndex)  # noqa: E731
    return any(is_index(leaf) for leaf in jax.tree.leaves(module, is_leaf=is_index))


def call_with_state(module, *args, state, **kwargs):
    """`out, state = call_with_state(self.block, x, state=state)`: a submodule whose kind the translator could not
    tell (one passed to the constructor, built by a helper method, or made by a layer class given as an argument
    such as `norm_layer=nn.BatchNorm2d`). It threads `state` when the module holds state and hands it back
    unchanged when it does not; which one is fixed by the module's structure, so the choice is made at trace time.
    """
    if is_stateful(module):
        if state is None:
            raise ValueError(f"{type(module).__name__} holds state (BatchNorm running statistics): call the model "
                             "as `out, state = model(x, state)` with the state from eqx.nn.make_with_state")
        return module(*args, state=state, **kwargs)
    return module(*args, **kwargs), state


def with_state(out, state):
    """What a translated module returns when it holds state only for some constructor arguments (a norm_layer
    argument that defaults to BatchNorm2d): `(out, state)` when called with a state, `out` when called without,
    the convention of the runtime layers (BatchNorm2d, Sequential)."""
    return out if state is None else (out, state)


class Sequential(eqx.Module):
    """torch.nn.Sequential: `Sequential(a, b, c)` or `Sequential(OrderedDict(name=layer, ...))`.

    Called `seq(x, key=key)`, or `x, state = seq(x, state, key=key)` when it holds stateful layers; the key is split
    into one subkey per layer. Plain functions (jax.nn.relu) may be layers too; they get no key.
    """

    _t2j_transparent = "layers"

    layers: tuple
    names: tuple = eqx.field(static=True)  # torch's child names: "0", "1"... or the OrderedDict's keys

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            self.names, self.layers = tuple(args[0].keys()), tuple(args[0].values())
        else:
            self.names, self.layers = tuple(str(i) for i in range(len(args))), tuple(args)

    @property
    def _t2j_item_names(self):
        return self.names

    def __call__(self, x, state=None, *, key=None):
        keys = [None] * len(self.layers) if key is None else jax.random.split(key, len(self.layers))
        for name, layer, subkey in zip(self.names, self.layers, keys):
            if not isinstance(layer, eqx.Module):
                x = layer(x)
            elif is_stateful(layer):
                if state is None:
                    raise ValueError(f"Sequential layer {name} holds state: call `x, state = seq(x, state)`")
                x, state = layer(x, state, key=subkey)
            else:
                x = layer(x, key=subkey)
        return x if state is None else (x, state)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Sequential(OrderedDict(zip(self.names[index], self.layers[index])))
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def __getattr__(self, name):
        # torch exposes named children as attributes: Sequential(OrderedDict(conv=...)).conv
        names = self.__dict__.get("names", ())
        if name in names:
            return self.layers[names.index(name)]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
