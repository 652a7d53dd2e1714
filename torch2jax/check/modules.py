"""Stage 2 for nn.Module classes (runs in the worker).

Modules whose eval-mode forward draws random numbers (a VAE) go to check_random_module: torch's draws replayed in
JAX (replay.py) for exact outputs and gradients, statistics over many draws, key checks. Modules with dropout are
also run in train mode with dropout on, to see that no two masks come from one key.

Build the torch module (seeded; constructor arguments from the config or none), build the translation with
`eqx.nn.make_with_state(Net)(*args, key=key)`, copy torch's state_dict in with `load_state_dict`, find an input
(given, or probed from the first layers), then compare:

1. eval mode: torch `.eval()` under no_grad vs `eqx.nn.inference_mode(model)`;
2. train mode with dropout off on both sides (torch: `.eval()` on the Dropout modules only; JAX: inference_mode on
   the t2j.nn.Dropout* / eqx.nn.Dropout instances only): outputs, the buffers after the step (BatchNorm running
   statistics), and the gradients of a random projection sum(out * c) with respect to every parameter (by
   state_dict key) and every floating input.

A module whose train-mode forward is still random with its Dropout modules off (F.dropout inside forward) is
compared in eval mode only, and says so.
"""
from __future__ import annotations

import ast
import contextlib
import copy
import inspect

import numpy as np

from torch2jax.check import compare as cmp
from torch2jax.check import inputs as inp
from torch2jax.check.functions import result, to_jax, to_torch, user_error
from torch2jax.check.interface import accepts_key, method_signature, required_positional

DROPOUT_TORCH = ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout")


def parse_ctor(value) -> tuple[tuple, dict]:
    """Constructor arguments: (args, kwargs); a list/tuple; a dict ({"args": [...], "kwargs": {...}} or kwargs);
    or text: "(10, 3)", "10, 3, p=0.1", "dict(d=4)"."""
    if value is None:
        return (), {}
    if isinstance(value, dict):
        if set(value) <= {"args", "kwargs", "inputs"}:
            return tuple(value.get("args", ())), dict(value.get("kwargs", {}))
        return (), dict(value)
    if isinstance(value, (list, tuple)):
        return tuple(value), {}
    text = str(value).strip()
    try:
        v = ast.literal_eval(text)
        if isinstance(v, tuple):
            return v, {}
        if isinstance(v, dict):
            return (), v
        return (v,), {}
    except (ValueError, SyntaxError):
        pass
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    try:
        node = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        raise ValueError(f"constructor arguments {value!r}: not Python literals") from None
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Call):
        node = node.args[0]  # dict(d=4)
    args = tuple(ast.literal_eval(a) for a in node.args)
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return args, kwargs


def key_kwargs(tcls, seed: int) -> dict:
    """`{"key": ...}` for the translation's constructor, or `{}` when its `__init__` takes no key (a module without
    parameters that draws nothing, e.g. a loss: whether torch's constructor draws is checked in `build` and in the
    interface stage)."""
    import jax

    return {"key": jax.random.key(seed)} if accepts_key(method_signature(tcls, "__init__")) else {}


def torch_init_draws(ocls, ctor) -> bool:
    """Builds the torch module and says whether its constructor drew from torch's global generator (initial
    weights): then its translation needs a `key`."""
    import torch

    args, kwargs = ctor
    before = torch.random.get_rng_state()
    ocls(*args, **kwargs)
    return not torch.equal(before, torch.random.get_rng_state())


def no_key_problem(name, ocls, tcls, ctor) -> str:
    """The interface failure of a translation whose `__init__` takes no key although torch's constructor draws
    random numbers ("" when it takes one, or needs none). Raises what torch's constructor raises."""
    if accepts_key(method_signature(tcls, "__init__")):
        return ""
    if not torch_init_draws(ocls, ctor):
        return ""
    return (f"{name}.__init__: takes no keyword-only key, but torch's constructor draws random numbers "
            f"(initial weights)")


def jit_or_eager(fn):
    """`fn` compiled once (eqx.filter_jit: one XLA program instead of one per operation); run eagerly when it
    cannot be traced (Python control flow on values) or when the compiled version raised, so that an error is the
    code's own."""
    import equinox as eqx

    from torch2jax.check.replay import ACTIVE

    jitted = eqx.filter_jit(fn)

    def run(*args, **kwargs):
        if ACTIVE[0]:  # replaying torch's draws: a compiled function would keep the first ones
            return fn(*args, **kwargs)
        try:
            return jitted(*args, **kwargs)
        except Exception:  # noqa: BLE001
            return fn(*args, **kwargs)

    return run


class Pair:
    """The torch module and its translation with the same weights."""

    def __init__(self, name, ocls, tcls, ctor, seed: int = 0):
        import equinox as eqx
        import torch

        import torch2jax.runtime as t2j

        args, kwargs = ctor
        self.ctor = ctor
        torch.manual_seed(seed)
        self.torch = ocls(*args, **kwargs)
        self.tcls = tcls
        model, state = eqx.nn.make_with_state(tcls)(*args, **kwargs, **key_kwargs(tcls, seed))
        call_sig = method_signature(tcls, "__call__")
        self.stateful = t2j.nn.is_stateful(model) or (call_sig is not None and "state" in call_sig.parameters)
        sd = self.torch.state_dict()
        if self.stateful:
            self.model, self.state = t2j.load_state_dict(model, sd, state=state)
        else:
            self.model, self.state = t2j.load_state_dict(model, sd), None
        self.initial = copy.deepcopy(self.torch.state_dict())

    def call(self, model, specs, values, state=None, key=None):
        """(output, new state) of the JAX model."""
        args = [values[s.name] for s in specs if not s.keyword]
        kwargs = {s.name: values[s.name] for s in specs if s.keyword}
        if self.stateful:
            out, new_state = model(*args, state if state is not None else self.state, **kwargs, key=key)
            return out, new_state
        return model(*args, **kwargs, key=key), None

    def torch_call(self, module, specs, values):
        args = [values[s.name] for s in specs if not s.keyword]
        kwargs = {s.name: values[s.name] for s in specs if s.keyword}
        return module(*args, **kwargs)


def torch_train_no_dropout(module):
    module.train()
    for m in module.modules():
        if type(m).__name__ in DROPOUT_TORCH or any(c.__name__ == "_DropoutNd" for c in type(m).__mro__):
            m.eval()
    return module


def jax_train_no_dropout(model):
    import equinox as eqx
    import jax

    from torch2jax.runtime.nn.dropout import _DropoutNd

    kinds = (_DropoutNd, eqx.nn.Dropout)
    model = eqx.nn.inference_mode(model, value=False)
    is_dropout = lambda node: isinstance(node, kinds)  # noqa: E731
    return jax.tree.map(lambda n: eqx.nn.inference_mode(n, value=True) if is_dropout(n) else n, model,
                        is_leaf=is_dropout)


def module_inputs(name, pair: Pair, ocls, config):
    """(specs, how) for the module's forward, or (None, why not)."""
    import torch

    sig = method_signature(ocls, "forward")
    if sig is None:
        return None, "no forward"
    P = inspect.Parameter
    keyword = {p.name for p in sig.parameters.values() if p.kind == P.KEYWORD_ONLY}
    given = inp.specs_for(name, list(sig.parameters), inp.parse_specs(config.get("inputs") or {}))
    for n, s in given.items():
        if n in keyword:
            given[n] = inp.ArgSpec(**{**s.__dict__, "keyword": True})
    required = [p.name for p in required_positional(sig, skip=())]
    missing = [p for p in required if p not in given]
    order = {p: i for i, p in enumerate(sig.parameters)}

    def runs(specs):
        pair.torch.eval()
        with torch.no_grad():
            pair.torch_call(pair.torch, specs, to_torch(inp.draw_values(specs, "random", 0)))

    if not missing:
        specs = sorted(given.values(), key=lambda s: order[s.name])
        try:
            runs(specs)
        except BaseException as e:  # noqa: BLE001
            return None, f"torch rejects the given inputs: {user_error(e)}"
        return specs, "given"
    first, tried = "", 0
    for cand, how in inp.module_candidates(pair.torch, missing):
        cand = [inp.ArgSpec(**{**s.__dict__, "keyword": s.name in keyword}) for s in cand]
        specs = sorted(list(given.values()) + cand, key=lambda s: order[s.name])
        tried += 1
        try:
            runs(specs)
            return specs, how
        except BaseException as e:  # noqa: BLE001
            first = first or f"{inp.format_specs(specs)}: {user_error(e)}"
    return None, (f"no probed input shape runs the torch module ({tried} tried; the first: {first}); "
                  f"give one with --input")


def build(name, ocls, tcls, config, cache):
    """(pair, specs, how) or a result dict explaining why not."""
    sig = method_signature(ocls, "__init__")
    ctor_value = (config.get("args") or {}).get(name)
    if ctor_value is None and sig is not None and required_positional(sig, skip=()):
        need = ", ".join(p.name for p in required_positional(sig, skip=()))
        return result("SKIP", f"the constructor needs arguments ({need}): give them with --args '{name}=(...)'")
    try:
        ctor = parse_ctor(ctor_value)
    except ValueError as e:
        return result("ERROR", str(e))
    try:
        no_key = no_key_problem(name, ocls, tcls, ctor)
    except BaseException as e:  # noqa: BLE001
        return result("ERROR", f"the torch module does not build: {user_error(e)}")
    if no_key:  # the interface stage could not build the torch module (no constructor arguments there)
        return result("FAIL", f"interface: {no_key}")
    try:
        pair = Pair(name, ocls, tcls, ctor)
    except BaseException as e:  # noqa: BLE001
        return result("FAIL", f"the translation does not build or load torch's state_dict: {user_error(e)}",
                      details=str(e).splitlines()[1:6])
    if "specs" in cache:
        return pair, cache["specs"], cache["how"]
    specs, how = module_inputs(name, pair, ocls, config)
    if specs is None:
        return result("SKIP", how)
    cache.update(specs=specs, how=how)
    return pair, specs, how


def _deterministic(pair: Pair, specs, values, train: bool = True) -> bool:
    """Whether torch's forward (train mode with dropout off, or eval mode) gives the same output under two seeds."""
    import torch

    module = copy.deepcopy(pair.torch)
    module = torch_train_no_dropout(module) if train else module.eval()
    outs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(pair.torch_call(module, specs, to_torch(values)))
    return cmp.compare_trees(outs[0], outs[1]).ok


def check_module(name, ocls, tcls, config, cache) -> dict:
    import equinox as eqx
    import torch

    built = build(name, ocls, tcls, config, cache)
    if isinstance(built, dict):
        return built
    pair, specs, how = built
    inputs = f"{inp.format_specs(specs)} ({how})"
    values = inp.draw_values(specs, "random", 0)
    if not _deterministic(pair, specs, values, train=False):
        return check_random_module(pair, ocls, tcls, specs, values, inputs, config, cache)
    # 1. eval mode
    pair.torch.eval()
    with torch.no_grad():
        t_out = pair.torch_call(pair.torch, specs, to_torch(values))
    try:
        j_out, _ = jit_or_eager(lambda m, v: pair.call(m, specs, v))(eqx.nn.inference_mode(pair.model),
                                                                      to_jax(values))
    except BaseException as e:  # noqa: BLE001
        return result("FAIL", f"eval mode: JAX raised where torch ran: {user_error(e)}", inputs=inputs)
    c = cmp.compare_trees(t_out, j_out, "eval output", loose=True)
    if not c.ok:
        return result("FAIL", c.message, c, inputs)
    # 2. train mode, dropout off
    deterministic = _deterministic(pair, specs, values, train=True)
    cache["train_mode"] = deterministic
    c2 = train_and_gradients(pair, specs, values, train=deterministic)
    c.merge(c2)
    if not c.ok:
        return result("FAIL", c.message, c, inputs)
    reused = _dropout_keys(pair, specs, values)
    if reused:
        return result("FAIL", f"train mode with dropout on: {reused}", c, inputs)
    note = ("eval and train mode (dropout off) outputs, buffers and gradients match" if deterministic else
            "eval outputs and eval-mode gradients match; train mode is random with its Dropout modules off "
            "(F.dropout in forward?): not compared")
    return result("PASS", note, c, inputs)


def _dropout_keys(pair: Pair, specs, values) -> str:
    """With dropout on (train mode, a key given), whether the translation draws two masks from one key (torch's are
    independent): the comparisons above turn dropout off, so they cannot see it."""
    import equinox as eqx
    import jax

    from torch2jax.check.replay import key_tracker

    if not any(type(m).__name__ in DROPOUT_TORCH for m in pair.torch.modules()):
        return ""
    try:
        with key_tracker() as tracker:
            state = None
            if pair.stateful:  # an unused State (the values do not matter here; eager calls retire a used one)
                state = eqx.nn.make_with_state(pair.tcls)(*pair.ctor[0], **pair.ctor[1], **key_kwargs(pair.tcls, 0))[1]
            pair.call(eqx.nn.inference_mode(pair.model, value=False), specs, to_jax(values), state=state,
                      key=jax.random.key(3))
    except BaseException as e:  # noqa: BLE001
        return f"JAX raised where torch ran: {user_error(e)}"
    return f"{tracker.reused}: a reused key?" if tracker.reused else ""


def random_paths(t_samples) -> set:
    """The output paths whose values change from draw to draw in torch (_stack samples)."""
    return {p for p, s in t_samples if s.size and bool(np.any(s.std(axis=0) > 0))}


def check_random_module(pair: Pair, ocls, tcls, specs, values, inputs, config, cache) -> dict:
    """A module whose forward draws random numbers in eval mode too (torch.randn_like in forward: a VAE).

    1. eval mode, values: torch's draws replayed in JAX (replay.py), outputs compared exactly; when they cannot be
       replayed, the outputs that do not change from draw to draw (a VAE's mu and logvar) are compared;
    2. eval mode, statistics: K draws under torch seeds against K JAX keys (shapes, dtypes, moments; the same key
       repeats, another differs, no key reused), as for random functions;
    3. gradients (train mode with dropout off when its draws replay too, else eval mode) of a random projection of
       the outputs, every output with the draws replayed, else the unchanging outputs only.
    """
    import equinox as eqx
    import jax
    import torch

    from torch2jax.check.functions import _stack, random_behaviour
    from torch2jax.check.replay import Replay, user_modules

    K = int(config.get("samples", 200))
    mods = user_modules(ocls, tcls)
    eval_model = eqx.nn.inference_mode(pair.model)
    j_vals = to_jax(values)
    pair.torch.eval()

    def run_torch():
        with torch.no_grad():
            return pair.torch_call(pair.torch, specs, to_torch(values))

    def run_jax(key):
        return pair.call(eval_model, specs, j_vals, key=key)[0]

    # the draws (compared in 2.)
    torch.manual_seed(0)
    t_samples = _stack([run_torch() for _ in range(K)])
    torch.manual_seed(0)
    t_first = run_torch()
    try:
        first, again, other = run_jax(jax.random.key(0)), run_jax(jax.random.key(0)), run_jax(jax.random.key(1))
        keys = jax.random.split(jax.random.key(2), K)
        try:
            out = jax.vmap(run_jax)(keys)
            j_samples = [(p, np.asarray(leaf, np.float64)) for p, leaf in cmp.flatten(out) if cmp.is_numeric(leaf)]
        except Exception:  # noqa: BLE001  (not vmappable: one draw at a time)
            j_samples = _stack([run_jax(k) for k in keys])
    except BaseException as e:  # noqa: BLE001
        return result("FAIL", f"eval mode (random forward): JAX raised where torch ran: {user_error(e)}",
                      inputs=inputs)
    varying = random_paths(t_samples)
    # 1. values: replayed, or the outputs that do not vary
    rep = Replay(mods)
    torch.manual_seed(0)
    with rep.torch():
        t_out = run_torch()
    j_out = None
    if rep.torch_covers(run_torch, t_out):
        try:
            with rep.jax():
                j_out = run_jax(jax.random.key(0))
        except BaseException as e:  # noqa: BLE001
            if rep.ok:
                return result("FAIL", f"eval mode: JAX raised with torch's draws replayed: {user_error(e)}",
                              inputs=inputs)
    if rep.reused:
        return result("FAIL", f"eval mode (random forward): {rep.reused}: a reused key?", inputs=inputs)
    replayed = rep.ok and j_out is not None
    if not replayed:
        from torch2jax.check.replay import key_tracker

        with key_tracker() as keys:  # two draws from one key, whatever their shapes
            run_jax(jax.random.key(0))
        if keys.reused:
            return result("FAIL", f"eval mode (random forward): {keys.reused}: a reused key?", inputs=inputs)
    if replayed:
        c = cmp.compare_trees(t_out, j_out, "eval output", loose=True)
        if not c.ok:
            return result("FAIL", "with torch's draws replayed: " + c.message, c, inputs)
    else:
        c = cmp.Comparison()
        t_leaves, j_leaves = cmp.flatten(t_first), cmp.flatten(first)
        for (p, t), (_, j) in zip(t_leaves, j_leaves):
            if p not in varying and cmp.is_numeric(t) and cmp.is_numeric(j):
                c.merge(cmp.compare_arrays(t, j, f"eval output{p}", loose=True))
    if not c.ok:
        return result("FAIL", c.message, c, inputs)
    problems, stats = random_behaviour(t_first, t_samples, first, again, other, j_samples, K)
    if problems:
        return result("FAIL", "eval mode (random forward): " + cmp.Comparison(ok=False, problems=problems).message,
                      inputs=inputs)
    # 3. gradients
    mode = {"replay": replayed, "varying": sorted(varying)}
    train = replayed and _replay_covers_train(pair, specs, values, mods)
    c2 = train_and_gradients(pair, specs, values, train=train, replay=Replay(mods) if replayed else None,
                             skip_paths=None if replayed else varying)
    cache["train_mode"], cache["random"] = train, mode
    c.merge(c2)
    if not c.ok:
        return result("FAIL", c.message, c, inputs)
    how = (f"with torch's draws replayed: {'eval and train mode (dropout off)' if train else 'eval mode'} outputs"
           f"{', buffers' if train else ''} and gradients match" if replayed else
           f"torch's draws cannot be replayed ({rep.why}): the outputs that do not vary from draw to draw "
           f"and their gradients match (eval mode); " + ", ".join(sorted(varying)) + " compared by statistics")
    return result("PASS", f"random forward: {how}; means (worst {stats.max_abs:.1f} standard errors) and spreads "
                          f"(worst {100 * stats.max_rel:.0f}% apart) over {K} draws match, the same key repeats, "
                          f"another differs, no reused key", c, inputs)


def _replay_covers_train(pair: Pair, specs, values, mods) -> bool:
    """Whether torch's train-mode forward (dropout off) draws only what a replay covers."""
    import torch

    from torch2jax.check.replay import Replay

    module = torch_train_no_dropout(copy.deepcopy(pair.torch))

    def run():
        with torch.no_grad():
            return pair.torch_call(module, specs, to_torch(values))

    rep = Replay(mods)
    saved = copy.deepcopy(module.state_dict())
    torch.manual_seed(0)
    with rep.torch():
        out = run()
    module.load_state_dict(saved)  # the same BatchNorm statistics for the second run
    return rep.torch_covers(run, out)


def train_and_gradients(pair: Pair, specs, values, train: bool = True, replay=None,
                        skip_paths=None) -> cmp.Comparison:
    """Outputs, buffers and gradients of sum(out * c) after one forward in train mode (dropout off) or eval mode.
    replay: a Replay (replay.py) that hands torch's draws to JAX; skip_paths: output paths left out of the
    comparison and the projection (they vary from draw to draw)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import torch

    import torch2jax.runtime as t2j

    c = cmp.Comparison()
    what = "train" if train else "eval"
    module = torch_train_no_dropout(pair.torch) if train else pair.torch.eval()
    module.zero_grad(set_to_none=True)
    t_inputs: dict = {}
    t_vals = to_torch(values, grad=True, leaves=t_inputs)
    torch.manual_seed(1)
    with replay.torch() if replay is not None else contextlib.nullcontext():
        t_out = pair.torch_call(module, specs, t_vals)
    t_leaves = cmp.float_leaves(t_out)
    skip = skip_paths or set()
    used = [i for i, (p, leaf) in enumerate(t_leaves) if leaf.requires_grad and p not in skip]
    rng = np.random.default_rng(3)
    cots = {i: rng.standard_normal(tuple(t_leaves[i][1].shape)).astype(np.float32) for i in used}
    if used:
        sum(torch.sum(t_leaves[i][1] * torch.from_numpy(cots[i])) for i in used).backward()
    model = jax_train_no_dropout(pair.model) if train else eqx.nn.inference_mode(pair.model)
    float_in = [s.name for s in specs if s.is_float]
    j_vals = to_jax(values)

    def projection(diff, key):
        model_, xs = diff
        vals = dict(j_vals, **dict(zip(float_in, xs)))
        out, new_state = pair.call(model_, specs, vals, key=key)
        leaves = cmp.float_leaves(out)
        total = sum((jnp.sum(leaves[i][1] * cots[i]) for i in used if i < len(leaves)), jnp.zeros(()))
        return total, (out, new_state)

    try:
        with replay.jax() if replay is not None else contextlib.nullcontext():
            (_, (j_out, new_state)), grads = jit_or_eager(eqx.filter_value_and_grad(projection, has_aux=True))(
                (model, [j_vals[n] for n in float_in]), jax.random.key(1))
    except BaseException as e:  # noqa: BLE001
        c.ok = False
        c.problems.append(f"{what} mode: JAX raised where torch ran: {user_error(e)}")
        return c
    if replay is not None and replay.reused:
        c.ok = False
        c.problems.append(f"{what} mode: {replay.reused}: a reused key?")
        return c
    if replay is not None and not replay.ok:
        c.ok = False
        c.problems.append(f"{what} mode with torch's draws replayed: {replay.why}")
        return c
    if skip:
        for (p, t), (_, j) in zip(cmp.flatten(t_out), cmp.flatten(j_out)):
            if p not in skip and cmp.is_numeric(t) and cmp.is_numeric(j):
                c.merge(cmp.compare_arrays(t, j, f"{what} output{p}", loose=True))
    else:
        c.merge(cmp.compare_trees(t_out, j_out, f"{what} output", loose=True))
    if not c.ok:
        return c
    # buffers after the step (BatchNorm running statistics)
    t_sd = module.state_dict()
    buffers = [k for k, _ in module.named_buffers() if k in t_sd]
    if buffers:
        try:
            j_sd = t2j.to_state_dict(pair.model, new_state) if pair.stateful else t2j.to_state_dict(model)
        except BaseException as e:  # noqa: BLE001
            j_sd = {}
            c.problems.append(f"buffers: {user_error(e)}")
            c.ok = False
        for k in buffers:
            if k not in j_sd:
                c.ok = False
                c.problems.append(f"buffer {k} is missing from the translation's state")
                continue
            c.merge(cmp.compare_arrays(t_sd[k], j_sd[k], f"buffer {k} after a {what}-mode step", loose=True))
    # gradients by state_dict key, then the inputs'
    g_model, g_inputs = grads
    j_grads = dict(t2j.named_parameters(g_model))
    for k, p in module.named_parameters():
        expected = p.grad if p.grad is not None else torch.zeros_like(p)
        if k not in j_grads:
            if bool(torch.any(expected != 0)):
                c.ok = False
                c.problems.append(f"gradient of {k}: the translation has no such parameter")
            continue
        c.merge(cmp.compare_arrays(expected, j_grads[k], f"gradient of {k}", loose=True))
    for n, g in zip(float_in, g_inputs):
        expected = t_inputs[n].grad if t_inputs[n].grad is not None else torch.zeros_like(t_inputs[n])
        c.merge(cmp.compare_arrays(expected, g, f"gradient of input {n}", loose=True))
    return c
