"""torch.optim optimizers with torch's exact update rules, as optax transformations.

Translated code::

    optimizer = t2j.optim.AdamW(lr=1e-3, weight_decay=0.01)   # torch.optim.AdamW(model.parameters(), ...)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    ...  # inside the jitted step:
    updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)

Optimizers: ``SGD``, ``Adam``, ``AdamW``, ``RMSprop``, ``Adagrad``, ``Adadelta``. Each constructor takes torch's
keyword names, defaults and positional order with torch's first ``params`` argument optional: a leading positional
argument that is not a number is taken as ``params``: a list of dicts there is torch's parameter groups, a list of
arrays one group of those arrays (see below), and anything else (None, a generator, a model) is ignored: every
parameter forms one group. torch-only switches (``foreach``, ``fused``, ``capturable``, ``differentiable``) are
accepted and change nothing.

Each optimizer *is* an ``optax.GradientTransformation`` (it chains and wraps like any other) and keeps torch's
Python-side view of its settings:

- ``optimizer.defaults`` and ``optimizer.param_groups``: lists/dicts of Python values, as in torch. Schedulers
  change ``param_groups[i]["lr"]`` (and ``momentum`` / ``betas``) here, like torch's.
- ``opt_state`` is an ``OptState(count, hyperparams, per_param)``: ``hyperparams[i]`` holds group ``i``'s numeric
  settings (``lr``, ``momentum``, ``betas``, ``weight_decay``, ``eps``, ...) as arrays, so changing them does not
  recompile the jitted step; ``per_param`` maps each parameter's torch-style name to torch's per-parameter state
  (``exp_avg``, ``momentum_buffer``, ...); ``count`` is torch's ``state["step"]``.
- ``opt_state = optimizer.sync(opt_state)`` writes ``param_groups``' current numbers into ``opt_state`` (schedulers'
  ``step`` does this for you; call it after editing ``param_groups`` by hand). Booleans (``nesterov``,
  ``maximize``, ``amsgrad``, ``centered``) are read when the step is traced and stay fixed.
- ``optimizer.find_state(opt_state)`` finds the ``OptState`` inside a chained/wrapped state;
  ``optimizer.group_labels(params)`` gives each parameter's group index (``optax.multi_transform`` labels).
- An optimizer is a static pytree: it may be passed to a jitted function as an argument.

Parameters, names and groups: the parameters are torch's: for Equinox models, what ``t2j.named_parameters(model)``
lists (buffers declared in ``_t2j_buffers`` are not trained, and names are torch's ``state_dict`` keys, e.g.
``blocks.0.attn.weight``); for plain pytrees (dicts, lists of arrays), every floating leaf, named by its dotted path
(``{"w": ..., "layers": [...]}`` gives ``w``, ``layers.0``...). Other leaves get zero updates. A group's
``"params"`` is one of

- a name or a collection of names; a name also selects everything under it (``"head"`` selects ``head.weight`` and
  ``head.bias``, as ``model.head.parameters()`` would);
- a predicate ``(name, leaf) -> bool``;
- the parameter arrays themselves (``[p for n, p in t2j.named_parameters(model) if p.ndim >= 2]``,
  ``t2j.parameters(model.head)``): ``init`` finds them among its ``params`` by identity and keeps their names,
  so they must be leaves of the very model given to ``init``.

::

    t2j.optim.AdamW([{"params": lambda name, p: p.ndim >= 2, "weight_decay": 0.1},
                     {"params": lambda name, p: p.ndim < 2, "weight_decay": 0.0}], lr=1e-3)

A parameter in two groups is an error (as in torch); one in no group is not optimized (its update is zero).

Differences from torch: every parameter in a group takes a step at every update (torch skips parameters whose
``.grad`` is None; JAX gives unused parameters zero gradients instead, so weight decay and momentum still move
them); momentum buffers exist for the groups whose ``momentum`` is non-zero when ``init`` runs, so turning
momentum on later (e.g. a ``OneCycleLR`` created after ``init`` on ``SGD(momentum=0)``) raises in ``sync``: create
that scheduler before ``init`` (and setting a group's momentum back to 0 keeps the buffer running, which differs
from torch only with dampening); complex parameters and sparse gradients are not supported. The update rules are
torch's single-tensor algorithms written per leaf (not optax's ``sgd``/``adam``/``rmsprop``...: those differ in
dampening, eps placement, accumulator init, first momentum step and decay masks).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from torch2jax.runtime import params as torch_params
from torch2jax.runtime.ties import tied_all

__all__ = [
    "OptState",
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "Adagrad",
    "Adadelta",
]


class OptState(NamedTuple):
    """State of a torch2jax optimizer (see the module docstring)."""

    count: jax.Array  # steps taken so far: torch's state[p]["step"]
    hyperparams: tuple[dict[str, Any], ...]  # per param group: its numeric settings as arrays
    per_param: dict[str, dict[str, jax.Array]]  # per parameter name: torch's optimizer.state[p]


def _key_name(key) -> str:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return str(key.idx)
    if isinstance(key, jax.tree_util.DictKey):
        return str(key.key)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        return str(key.key)
    return str(key)


def _is_module(x) -> bool:
    return isinstance(x, eqx.Module)


def _named_parameters(tree) -> list[tuple[str, Any]]:
    """(torch name, leaf) of every parameter of ``tree`` (see the module docstring)."""
    if any(_is_module(x) for x in jax.tree_util.tree_leaves(tree, is_leaf=_is_module)):
        return torch_params.named_parameters(tree)
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(".".join(_key_name(k) for k in path), leaf) for path, leaf in flat if eqx.is_inexact_array(leaf)]


def _leaf_names(tree):
    """The torch name of every leaf of ``tree`` (None: not a parameter), in flattening order, and the treedef."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    # Distinct stand-ins tell leaves apart even where `tree` holds one array object twice.
    probes = [np.zeros((0,), np.float32) if eqx.is_inexact_array(x) else x for x in leaves]
    name_of = {id(probe): name for name, probe in _named_parameters(jax.tree_util.tree_unflatten(treedef, probes))}
    return [name_of.get(id(probe)) for probe in probes], leaves, treedef


def _float_dtype():
    return jnp.result_type(float)  # float32, or float64 under jax_enable_x64


def _as_array(value):
    # Never weakly typed, so that new values written by a scheduler keep the traced step's signature.
    if isinstance(value, (tuple, list)):
        return tuple(_as_array(v) for v in value)
    return jnp.asarray(float(value), dtype=_float_dtype())


def _as_float(value):
    if isinstance(value, (tuple, list)):
        return tuple(_as_float(v) for v in value)
    return float(value)


def _is_number(x) -> bool:
    if isinstance(x, bool):
        return False
    if isinstance(x, (int, float)):
        return True
    return hasattr(x, "shape") and hasattr(x, "dtype") and x.shape == ()


class _Arrays(tuple):
    """A param group given as the parameter arrays themselves; ``init`` turns it into their names."""


def _selector(params):
    """Normalizes a group's "params" entry: None (everything), a predicate, a tuple of names, or _Arrays."""
    if params is None or callable(params):
        return params
    items = (params,) if isinstance(params, str) else tuple(params)
    if all(isinstance(n, str) for n in items):
        return items
    if all(hasattr(x, "shape") and hasattr(x, "dtype") for x in items):
        return _Arrays(items)
    raise TypeError(
        "a param group's 'params' must be a parameter name, a collection of names, a predicate "
        f"(name, leaf) -> bool, or a list of the parameter arrays themselves; got {type(params).__name__}"
    )


def _selects(selector, name: str, leaf) -> bool:
    if selector is None:
        return True
    if isinstance(selector, _Arrays):
        raise RuntimeError("param groups given as arrays are matched in optimizer.init: call it first")
    if callable(selector):
        return bool(selector(name, leaf))
    return any(name == s or name.startswith(s + ".") for s in selector)


class Optimizer(optax.GradientTransformation):
    """Base of the torch2jax optimizers: an ``optax.GradientTransformation`` with torch's ``param_groups``.

    Subclasses declare torch's constructor (``_POSITIONAL``, ``_DEFAULTS``), which settings live in the state
    (``_HYPER``), and the per-parameter rule (``_init_leaf``, ``_step_leaf``).

    torch's implementation switches ``foreach``, ``fused``, ``capturable`` and ``differentiable`` are taken and
    ignored: they choose how torch runs the same update (multi-tensor or fused CUDA kernels, CUDA-graph capture,
    autograd through the step), not what it computes, and XLA compiles the whole jitted step anyway. Taking them
    lets translated code pass torch's keywords through unchanged, e.g. ``AdamW(groups, lr=lr, **dict(fused=True))``.
    """

    _POSITIONAL: tuple[str, ...] = ()  # torch's positional order after `params`
    _DEFAULTS: dict[str, Any] = {}
    _HYPER: tuple[str, ...] = ()  # numeric settings kept as arrays in OptState.hyperparams
    _FIXED: dict[str, Any] = {}  # group entries the constructor sets and does not take (AdamW's decoupled decay)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Static pytree: jit arguments and tree maps treat an optimizer as a constant, never rebuild it from leaves.
        jax.tree_util.register_static(cls)
        positional, keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
        params = [inspect.Parameter("params", positional, default=None)]
        params += [inspect.Parameter(k, positional, default=cls._DEFAULTS[k]) for k in cls._POSITIONAL]
        params += [inspect.Parameter(k, keyword, default=v)
                   for k, v in cls._DEFAULTS.items() if k not in cls._POSITIONAL]
        cls.__signature__ = inspect.Signature(params)

    def __new__(cls, *args, **kwargs):
        self = None

        def init(params):
            return self._init(params)

        def update(updates, state, params=None):
            return self._update(updates, state, params)

        self = super().__new__(cls, init, update)
        self._configure(args, kwargs)
        return self

    # -- construction -------------------------------------------------------------------------------------------

    def _configure(self, args, kwargs):
        name = type(self).__name__
        params = kwargs.pop("params", None)
        if args and not _is_number(args[0]):
            params, args = args[0], args[1:]
        if len(args) > len(self._POSITIONAL):
            raise TypeError(f"{name}() takes at most {len(self._POSITIONAL) + 1} positional arguments")
        settings = dict(zip(self._POSITIONAL, args))
        for key, value in kwargs.items():
            if key not in self._DEFAULTS:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            if key in settings:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            settings[key] = value
        defaults = {**self._DEFAULTS, **settings, **self._FIXED}
        for key in self._HYPER:
            defaults[key] = _as_float(defaults[key])
        self._validate(defaults)
        self.defaults = defaults

        if isinstance(params, dict):
            params = [params]
        if isinstance(params, (list, tuple)) and params and all(isinstance(g, dict) for g in params):
            groups = []
            for g in params:
                if "params" not in g:
                    raise ValueError("each param group must have a 'params' entry")
                group = {**defaults, **g, **self._FIXED}
                for key in self._HYPER:
                    group[key] = _as_float(group[key])
                group["params"] = _selector(g["params"])
                groups.append(group)
        elif isinstance(params, (list, tuple)) and not params:
            raise ValueError("optimizer got an empty parameter list")
        elif isinstance(params, (list, tuple)) and all(hasattr(x, "shape") and hasattr(x, "dtype") for x in params):
            groups = [{"params": _Arrays(params), **defaults}]  # only these arrays, as torch's SGD([w, b])
        else:
            groups = [{"params": None, **defaults}]
        self.param_groups = groups

    def _validate(self, s):
        if s["lr"] < 0.0:
            raise ValueError(f"Invalid learning rate: {s['lr']}")
        if s.get("eps", 0.0) < 0.0:
            raise ValueError(f"Invalid epsilon value: {s['eps']}")
        if s["weight_decay"] < 0.0:
            raise ValueError(f"Invalid weight_decay value: {s['weight_decay']}")

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])

    # -- groups -------------------------------------------------------------------------------------------------

    def _resolve_arrays(self, params) -> None:
        """Turns groups given as arrays into the names of the leaves of ``params`` that are those arrays."""
        names_of: dict[int, list[str]] = {}
        for name, leaf in _named_parameters(params):
            names_of.setdefault(id(leaf), []).append(name)
        for i, group in enumerate(self.param_groups):
            if isinstance(group["params"], _Arrays):
                missing = [x for x in group["params"] if id(x) not in names_of]
                if missing:
                    raise ValueError(
                        f"param group {i} lists {len(missing)} array(s) that are not leaves of the parameters given "
                        "to init (build the group from the same model, e.g. t2j.optim.parameters(model.head))"
                    )
                group["params"] = tuple(n for x in group["params"] for n in names_of[id(x)])

    def _group_of(self, name: str, leaf) -> int | None:
        hits = [i for i, g in enumerate(self.param_groups) if _selects(g["params"], name, leaf)]
        if len(hits) > 1:
            raise ValueError(f"some parameters appear in more than one parameter group: {name!r} is in groups {hits}")
        return hits[0] if hits else None

    def group_labels(self, params):
        """The group index of every parameter of ``params`` (-1: in no group, or not a parameter), as a pytree like
        ``params``: ``optax.multi_transform`` labels, and a way to see which group each parameter landed in."""
        self._resolve_arrays(params)
        param_of = dict(_named_parameters(params))
        names, leaves, treedef = _leaf_names(params)
        labels = []
        for name, leaf in zip(names, leaves):
            if name is not None:
                group = self._group_of(name, param_of[name])
                leaf = -1 if group is None else group
            elif eqx.is_inexact_array(leaf):
                leaf = -1
            labels.append(leaf)
        return jax.tree_util.tree_unflatten(treedef, labels)

    def _hyperparams(self):
        return tuple({k: _as_array(g[k]) for k in self._HYPER} for g in self.param_groups)

    # -- optax interface ----------------------------------------------------------------------------------------

    def _init(self, params) -> OptState:
        self._resolve_arrays(params)
        per_param = {}
        for name, leaf in _named_parameters(params):
            group = self._group_of(name, leaf)
            if group is None:
                continue
            if name in per_param:
                raise ValueError(f"two parameters have the same name {name!r}")
            per_param[name] = self._init_leaf(jnp.asarray(leaf), self.param_groups[group])
        self._momentum_at_init = [g.get("momentum", 0.0) != 0 for g in self.param_groups]
        # a group without weight decay when init runs leaves the decay term out of the traced step (two fewer
        # operations per parameter to compile); sync refuses to turn it on later
        self._decay_at_init = [g["weight_decay"] != 0 for g in self.param_groups]
        return OptState(count=jnp.zeros((), jnp.int32), hyperparams=self._hyperparams(), per_param=per_param)

    def _update(self, grads, state: OptState, params):
        if params is None:
            raise ValueError(
                f"{type(self).__name__}.update needs the parameters: optimizer.update(grads, opt_state, params)"
            )
        count = state.count + 1
        decays = getattr(self, "_decay_at_init", None)
        # each group's scalars (bias corrections, 1 - beta...) once, not once per parameter: less to compile
        scalars = [self._scalars(hp, count) for hp in state.hyperparams]
        param_of = dict(_named_parameters(params))
        per_param = dict(state.per_param)
        names, leaves, treedef = _leaf_names(grads)
        updates = []
        for name, grad in zip(names, leaves):
            if name not in state.per_param:  # not a parameter, or in no param group: torch never touches it
                updates.append(jnp.zeros_like(grad))
                continue
            p = param_of[name]
            group = self._group_of(name, p)
            settings = {**self.param_groups[group], "_decays": decays[group] if decays is not None else True}
            delta, new = self._step_leaf(grad, p, state.per_param[name], scalars[group], settings, count)
            per_param[name] = {k: v.astype(state.per_param[name][k].dtype) for k, v in new.items()}
            updates.append(delta.astype(p.dtype))
        # a tied weight's other members take its update: they stay equal to it (runtime/ties.py)
        updates = tied_all(jax.tree_util.tree_unflatten(treedef, updates))
        return updates, OptState(count, state.hyperparams, per_param)

    def sync(self, opt_state):
        """Returns ``opt_state`` with the current numbers of ``param_groups`` (lr, momentum, betas...) in it.

        ``opt_state`` may be this optimizer's ``OptState`` or any pytree holding it (an ``optax.chain`` state)."""
        for i, (group, decays) in enumerate(zip(self.param_groups, getattr(self, "_decay_at_init", ()))):
            if group["weight_decay"] != 0 and not decays:
                raise ValueError(
                    f"param group {i}'s weight_decay became {group['weight_decay']} after optimizer.init ran with "
                    "weight_decay 0, which the step left out; give the group a weight_decay before calling "
                    "optimizer.init (and set it to 0.0 there if it must start without decay)"
                )
        at_init = getattr(self, "_momentum_at_init", None)
        if at_init is not None:
            for i, group in enumerate(self.param_groups):
                if group.get("momentum", 0.0) != 0 and not at_init[i]:
                    raise ValueError(
                        f"param group {i}'s momentum became {group['momentum']} after optimizer.init ran with "
                        "momentum 0, so its state has no momentum buffers; give the optimizer a non-zero momentum, "
                        "or create the scheduler that sets momentum (OneCycleLR) before calling optimizer.init"
                    )
        hyperparams = self._hyperparams()
        if len(self.find_state(opt_state).hyperparams) != len(hyperparams):
            raise ValueError(f"opt_state's param groups are not the optimizer's {len(hyperparams)}")
        return jax.tree_util.tree_map(
            lambda x: x._replace(hyperparams=hyperparams) if isinstance(x, OptState) else x,
            opt_state,
            is_leaf=lambda x: isinstance(x, OptState),
        )

    def find_state(self, opt_state) -> OptState:
        """This optimizer's ``OptState`` inside ``opt_state`` (itself, or an ``optax.chain``/wrapper state)."""
        found = [x for x in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, OptState))
                 if isinstance(x, OptState)]
        if len(found) != 1:
            raise ValueError(f"expected opt_state to hold one torch2jax optimizer state, found {len(found)}")
        return found[0]

    # -- the rule, per parameter --------------------------------------------------------------------------------

    def _init_leaf(self, p, group) -> dict[str, jax.Array]:
        raise NotImplementedError

    def _scalars(self, hp, count) -> dict:
        """A group's hyperparameters (arrays) with the scalars its rule derives from them and the step count,
        computed once per update."""
        return hp

    def _step_leaf(self, g, p, s, hp, group, count):
        """One torch step for one parameter: returns (update to add to p, new per-parameter state)."""
        raise NotImplementedError


def _grad_with_decay(g, p, hp, group):
    """The gradient after torch's `maximize` and coupled (L2) weight decay."""
    if group["maximize"]:
        g = -g
    return g + hp["weight_decay"] * p if group.get("_decays", True) else g


class SGD(Optimizer):
    """torch.optim.SGD: ``SGD(params=None, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)``. The first step copies the gradient into the momentum buffer (no dampening), as torch."""

    _POSITIONAL = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    _DEFAULTS = dict(lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
                     foreach=None, differentiable=False, fused=None)
    _HYPER = ("lr", "momentum", "dampening", "weight_decay")

    def _validate(self, s):
        super()._validate(s)
        if s["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {s['momentum']}")
        if s["nesterov"] and (s["momentum"] <= 0 or s["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _init_leaf(self, p, group):
        return {"momentum_buffer": jnp.zeros_like(p)} if group["momentum"] != 0 else {}

    def _scalars(self, hp, count):
        return {**hp, "neg_lr": -hp["lr"], "keep": 1 - hp["dampening"], "first": count == 1}

    def _step_leaf(self, g, p, s, hp, group, count):
        g = _grad_with_decay(g, p, hp, group)
        if "momentum_buffer" not in s:
            return hp["neg_lr"] * g, s
        momentum = hp["momentum"]
        buf = jnp.where(hp["first"], g, momentum * s["momentum_buffer"] + hp["keep"] * g)
        g = g + momentum * buf if group["nesterov"] else buf
        return hp["neg_lr"] * g, {"momentum_buffer": buf}


class Adam(Optimizer):
    """torch.optim.Adam: ``Adam(params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
    amsgrad=False, *, maximize=False, decoupled_weight_decay=False)``. Weight decay is L2 (added to the gradient)
    unless ``decoupled_weight_decay``; eps is added after dividing sqrt(v) by sqrt(1 - beta2**t), as torch."""

    _POSITIONAL = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    _DEFAULTS = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, foreach=None,
                     maximize=False, capturable=False, differentiable=False, fused=None,
                     decoupled_weight_decay=False)
    _HYPER = ("lr", "betas", "eps", "weight_decay")

    def _validate(self, s):
        super()._validate(s)
        for i, beta in enumerate(s["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")

    def _init_leaf(self, p, group):
        s = {"exp_avg": jnp.zeros_like(p), "exp_avg_sq": jnp.zeros_like(p)}
        if group["amsgrad"]:
            s["max_exp_avg_sq"] = jnp.zeros_like(p)
        return s

    def _scalars(self, hp, count):
        lr, (beta1, beta2), wd = hp["lr"], hp["betas"], hp["weight_decay"]
        t = count.astype(lr.dtype)
        return {**hp, "neg_lr_wd": -(lr * wd), "one_minus_beta1": 1 - beta1, "one_minus_beta2": 1 - beta2,
                "step_size": lr / (1 - beta1**t), "bias_correction2_sqrt": jnp.sqrt(1 - beta2**t)}

    def _step_leaf(self, g, p, s, hp, group, count):
        beta2, eps, wd = hp["betas"][1], hp["eps"], hp["weight_decay"]
        if group["maximize"]:
            g = -g
        decay = 0.0
        if not group.get("_decays", True):
            pass  # no weight decay in this group (at init): the term is left out
        elif group["decoupled_weight_decay"]:
            decay = hp["neg_lr_wd"] * p  # torch: p *= 1 - lr * wd, before the Adam step
        else:
            g = g + wd * p
        exp_avg = s["exp_avg"] + hp["one_minus_beta1"] * (g - s["exp_avg"])  # torch's lerp
        exp_avg_sq = beta2 * s["exp_avg_sq"] + hp["one_minus_beta2"] * (g * g)
        new = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        if group["amsgrad"]:
            exp_avg_sq = new["max_exp_avg_sq"] = jnp.maximum(s["max_exp_avg_sq"], exp_avg_sq)
        denom = jnp.sqrt(exp_avg_sq) / hp["bias_correction2_sqrt"] + eps
        return decay - hp["step_size"] * (exp_avg / denom), new


class AdamW(Adam):
    """torch.optim.AdamW: ``AdamW(params=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
    amsgrad=False, *, maximize=False)``: decoupled decay ``p *= 1 - lr * weight_decay`` on every parameter of the
    group (torch has no decay mask: exempt biases/norms with a param group of weight_decay 0)."""

    _DEFAULTS = {k: v for k, v in Adam._DEFAULTS.items() if k != "decoupled_weight_decay"} | {"weight_decay": 1e-2}
    _FIXED = {"decoupled_weight_decay": True}


class RMSprop(Optimizer):
    """torch.optim.RMSprop: ``RMSprop(params=None, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
    centered=False, capturable=False, foreach=None, maximize=False, differentiable=False)``. eps is added outside
    the square root: ``g / (sqrt(v) + eps)``, as torch (optax's rmsprop adds it inside)."""

    _POSITIONAL = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "capturable", "foreach",
                   "maximize", "differentiable")
    _DEFAULTS = dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                     capturable=False, foreach=None, maximize=False, differentiable=False)
    _HYPER = ("lr", "alpha", "eps", "weight_decay", "momentum")

    def _validate(self, s):
        super()._validate(s)
        if s["momentum"] < 0.0:
            raise ValueError(f"Invalid momentum value: {s['momentum']}")
        if s["alpha"] < 0.0:
            raise ValueError(f"Invalid alpha value: {s['alpha']}")

    def _init_leaf(self, p, group):
        s = {"square_avg": jnp.zeros_like(p)}
        if group["momentum"] > 0:
            s["momentum_buffer"] = jnp.zeros_like(p)
        if group["centered"]:
            s["grad_avg"] = jnp.zeros_like(p)
        return s

    def _scalars(self, hp, count):
        return {**hp, "neg_lr": -hp["lr"], "one_minus_alpha": 1 - hp["alpha"]}

    def _step_leaf(self, g, p, s, hp, group, count):
        alpha = hp["alpha"]
        g = _grad_with_decay(g, p, hp, group)
        square_avg = alpha * s["square_avg"] + hp["one_minus_alpha"] * (g * g)
        new = {"square_avg": square_avg}
        if group["centered"]:
            grad_avg = new["grad_avg"] = s["grad_avg"] + hp["one_minus_alpha"] * (g - s["grad_avg"])
            avg = jnp.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = jnp.sqrt(square_avg)
        avg = avg + hp["eps"]
        if "momentum_buffer" in s:
            buf = new["momentum_buffer"] = hp["momentum"] * s["momentum_buffer"] + g / avg
            return hp["neg_lr"] * buf, new
        return hp["neg_lr"] * (g / avg), new


class Adagrad(Optimizer):
    """torch.optim.Adagrad: ``Adagrad(params=None, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
    eps=1e-10, foreach=None, *, maximize=False)``: the step is ``lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) +
    eps)`` with the accumulator starting at ``initial_accumulator_value``."""

    _POSITIONAL = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "foreach")
    _DEFAULTS = dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                     foreach=None, maximize=False, differentiable=False, fused=None)
    _HYPER = ("lr", "lr_decay", "weight_decay", "eps")

    def _validate(self, s):
        super()._validate(s)
        if s["lr_decay"] < 0.0:
            raise ValueError(f"Invalid lr_decay value: {s['lr_decay']}")
        if s["initial_accumulator_value"] < 0.0:
            raise ValueError(f"Invalid initial_accumulator_value value: {s['initial_accumulator_value']}")

    def _init_leaf(self, p, group):
        return {"sum": jnp.full_like(p, group["initial_accumulator_value"])}

    def _scalars(self, hp, count):
        return {**hp, "neg_clr": -(hp["lr"] / (1 + (count - 1).astype(hp["lr"].dtype) * hp["lr_decay"]))}

    def _step_leaf(self, g, p, s, hp, group, count):
        g = _grad_with_decay(g, p, hp, group)
        state_sum = s["sum"] + g * g
        return hp["neg_clr"] * (g / (jnp.sqrt(state_sum) + hp["eps"])), {"sum": state_sum}


class Adadelta(Optimizer):
    """torch.optim.Adadelta: ``Adadelta(params=None, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
    capturable=False, maximize=False, differentiable=False)``."""

    _POSITIONAL = ("lr", "rho", "eps", "weight_decay", "foreach")
    _DEFAULTS = dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, foreach=None, capturable=False, maximize=False,
                     differentiable=False)
    _HYPER = ("lr", "rho", "eps", "weight_decay")

    def _validate(self, s):
        super()._validate(s)
        if not 0.0 <= s["rho"] <= 1.0:
            raise ValueError(f"Invalid rho value: {s['rho']}")

    def _init_leaf(self, p, group):
        return {"square_avg": jnp.zeros_like(p), "acc_delta": jnp.zeros_like(p)}

    def _scalars(self, hp, count):
        return {**hp, "neg_lr": -hp["lr"], "one_minus_rho": 1 - hp["rho"]}

    def _step_leaf(self, g, p, s, hp, group, count):
        rho, eps = hp["rho"], hp["eps"]
        g = _grad_with_decay(g, p, hp, group)
        square_avg = rho * s["square_avg"] + hp["one_minus_rho"] * (g * g)
        delta = jnp.sqrt(s["acc_delta"] + eps) / jnp.sqrt(square_avg + eps) * g
        acc_delta = rho * s["acc_delta"] + hp["one_minus_rho"] * (delta * delta)
        return hp["neg_lr"] * delta, {"square_avg": square_avg, "acc_delta": acc_delta}


# Imported last: lr_scheduler needs Optimizer, and translated code reaches it as t2j.optim.lr_scheduler.
from torch2jax.runtime import lr_scheduler  # noqa: E402
