"""Stage 2 for functions (runs in the worker).

Deterministic functions: the inputs (given, or probed: candidate shapes/dtypes until torch runs), then the probed
example with normal values, then hypothesis-drawn examples (shape variants: a dimension set to 1 or 0; values:
normal, hypothesis' own floats, zeros, negatives, x1e3). An example torch rejects is no evidence either way; one
torch runs and JAX does not (or computes differently) fails, and hypothesis shrinks it. On normal values the
gradients are compared too: torch.autograd.grad against jax.vjp with the same random cotangent, for every floating
input.

Random functions (the translation takes `key`): shapes and dtypes as torch's; per-element mean and standard
deviation over many draws (z-score and ratio tests); the same key repeats; another key changes the result;
outputs torch draws independently are not equal (or correlated) in JAX: a reused key.
"""
from __future__ import annotations

import inspect
import math
import time
import warnings

import numpy as np

from torch2jax.check import compare as cmp
from torch2jax.check import inputs as inp
from torch2jax.check.interface import required_positional

PROBE_LIMIT = 120  # candidate argument lists tried at most
PROBE_SECONDS = 20.0


def result(status, message="", comparison=None, inputs="", details=()):
    out = {"status": status, "message": message, "inputs": inputs, "details": list(details)}
    if comparison is not None:
        out["max_abs"], out["max_rel"] = comparison.max_abs, comparison.max_rel
    return out


def user_error(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    text = text.splitlines()[0] if text else type(e).__name__
    return text if len(text) < 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------------- calling
def to_torch(values: dict, grad: bool = False, leaves: dict | None = None) -> dict:
    """Torch arguments for `values`. With grad, each floating array becomes a leaf that requires grad (stored in
    `leaves`) and the argument is a clone of it, so that code updating its argument in place still runs."""
    import torch

    out = {}
    for k, v in values.items():
        if isinstance(v, np.ndarray):
            t = torch.from_numpy(np.array(v, copy=True))
            if grad and v.dtype.kind == "f":
                t.requires_grad_(True)
                if leaves is not None:
                    leaves[k] = t
                t = t.clone()
            out[k] = t
        else:
            out[k] = v
    return out


def to_jax(values: dict) -> dict:
    import jax.numpy as jnp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # int64 -> int32 without x64
        return {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}


def call(fn, specs, values: dict, **extra):
    args = [values[s.name] for s in specs if not s.keyword]
    kwargs = {s.name: values[s.name] for s in specs if s.keyword}
    return fn(*args, **kwargs, **extra)


# ---------------------------------------------------------------------------------------------- inputs
def resolve_inputs(name, fn, config, run_torch):
    """(specs, how) for `fn`, or (None, why not). `run_torch(specs)` raises when torch rejects them."""
    sig = inspect.signature(fn)
    given = inp.specs_for(name, list(sig.parameters), inp.parse_specs(config.get("inputs") or {}))
    P = inspect.Parameter
    keyword = {p.name for p in sig.parameters.values() if p.kind == P.KEYWORD_ONLY}
    required = [p.name for p in required_positional(sig, skip=())]
    fixed = [inp.ArgSpec(**{**s.__dict__, "keyword": s.name in keyword}) for s in given.values()]
    missing = [p for p in required if p not in given]
    if not missing:
        order = {p: i for i, p in enumerate(sig.parameters)}
        specs = sorted(fixed, key=lambda s: order[s.name])
        try:
            run_torch(specs)
        except BaseException as e:  # noqa: BLE001
            return None, f"torch rejects the given inputs: {user_error(e)}"
        return specs, "given" if given else "no arguments"
    order = {p: i for i, p in enumerate(sig.parameters)}
    last_error, tried, start = "", 0, time.monotonic()
    for cand in inp.function_candidates(missing, keyword):
        tried += 1
        specs = sorted(fixed + cand, key=lambda s: order[s.name])
        try:
            run_torch(specs)
            return inp.settle(specs), "probed"
        except BaseException as e:  # noqa: BLE001
            last_error = user_error(e)
        if tried >= PROBE_LIMIT or time.monotonic() - start > PROBE_SECONDS:
            break
    return None, f"no probed input runs in torch ({tried} candidates; last error: {last_error})"


# ---------------------------------------------------------------------------------------------- deterministic
class Runner:
    """Runs one example on both sides and compares outputs (and gradients on normal values)."""

    def __init__(self, tfn, jfn, specs):
        self.tfn, self.jfn, self.specs = tfn, jfn, specs
        self.stats = cmp.Comparison()
        self.grad_checked = 0
        self.grad_note = ""

    def run(self, ex: inp.Example):
        """A Comparison, or None when torch rejects the example."""
        import torch

        grads = ex.mode == "random"
        t_leaves: dict = {}
        t_vals = to_torch(ex.values, grad=grads, leaves=t_leaves)
        try:
            with torch.set_grad_enabled(grads):
                t_out = call(self.tfn, self.specs, t_vals)
        except BaseException:  # noqa: BLE001
            return None
        try:
            j_out = call(self.jfn, self.specs, to_jax(ex.values))
        except BaseException as e:  # noqa: BLE001
            c = cmp.Comparison(ok=False)
            c.problems.append(f"JAX raised where torch ran: {user_error(e)}")
            return c
        c = cmp.compare_trees(t_out, j_out, "output")
        if c.ok and grads:
            c.merge(self.gradients(t_leaves, t_out, ex))
        if c.ok:
            self.stats.max_abs = max(self.stats.max_abs, c.max_abs)
            self.stats.max_rel = max(self.stats.max_rel, c.max_rel)
        return c

    def gradients(self, t_inputs, t_out, ex) -> cmp.Comparison:
        import jax
        import jax.numpy as jnp
        import torch

        c = cmp.Comparison()
        float_in = [s.name for s in self.specs if s.is_float]
        t_leaves = cmp.float_leaves(t_out)
        # (a numpy array among the outputs carries no gradient)
        used = [i for i, (_, leaf) in enumerate(t_leaves) if getattr(leaf, "requires_grad", False)]
        if not float_in or not used:
            self.grad_note = "no gradients (no floating input reaches a floating output)"
            return c
        rng = np.random.default_rng(ex.seed + 7)
        cots = [rng.standard_normal(tuple(t_leaves[i][1].shape)).astype(np.float32) for i in used]
        t_grads = torch.autograd.grad([t_leaves[i][1] for i in used], [t_inputs[n] for n in float_in],
                                      grad_outputs=[torch.from_numpy(g).to(t_leaves[i][1].dtype)
                                                    for g, i in zip(cots, used)], allow_unused=True)
        j_vals = to_jax(ex.values)

        def f(*xs):
            vals = dict(j_vals, **dict(zip(float_in, xs)))
            leaves = cmp.float_leaves(call(self.jfn, self.specs, vals))
            return [leaves[i][1] for i in used]

        try:
            outs, vjp = jax.vjp(f, *[j_vals[n] for n in float_in])
            j_grads = vjp([jnp.asarray(g, o.dtype) for g, o in zip(cots, outs)])
        except BaseException as e:  # noqa: BLE001
            c.ok = False
            c.problems.append(f"jax.vjp failed where torch.autograd ran: {user_error(e)}")
            return c
        for name, tg, jg in zip(float_in, t_grads, j_grads):
            expected = tg if tg is not None else np.zeros(j_vals[name].shape, np.float32)
            e = cmp.to_numpy(expected)
            if not np.all(np.isfinite(e)):
                continue  # torch's gradient is not finite here: nothing to hold JAX to
            c.merge(cmp.compare_arrays(expected, jg, f"gradient of {name}", loose=True))
        self.grad_checked += 1
        return c


def check_function(name, tfn, jfn, config, cache) -> dict:
    sig = inspect.signature(jfn)
    if "key" in sig.parameters and "key" not in inspect.signature(tfn).parameters:
        return check_random(name, tfn, jfn, config, cache)

    def run_torch(specs):
        import torch

        with torch.no_grad():
            call(tfn, specs, to_torch(inp.draw_values(specs, "random", 0)))

    specs, how = resolve_inputs(name, tfn, config, run_torch)
    if specs is None:
        return result("SKIP", how)
    inputs = f"{inp.format_specs(specs)} ({how})" if specs else "(none)"
    runner = Runner(tfn, jfn, specs)
    base = inp.Example(None, "random", 0, inp.draw_values(specs, "random", 0))
    if _returns_nothing(tfn, specs, base.values):
        return result("SKIP", NOTHING, inputs=inputs)
    c = runner.run(base)
    if c is None:
        # (the probe ran torch without gradients; this run records them): the inputs are the checker's guess, so
        # nothing is known about the translation
        return result("SKIP", "torch rejects the probed example: give the inputs with -i", inputs=inputs)
    if not c.ok:
        return result("FAIL", c.message, c, inputs, ["failing example: " + base.describe(), *base.show()])
    if not specs:
        return result("PASS", "no arguments: outputs compared once", c, inputs)
    sweep = [inp.Example(None, mode, 0, inp.draw_values(specs, mode, 0)) for mode in inp.MODES if mode != "hypothesis"]
    sweep += [inp.Example(v, "random", 0, inp.draw_values(specs, "random", 0, v))
              for v in inp.shape_variants(specs)[1:]]
    for ex in sweep[1:]:  # every kind of value and every shape variant once, then hypothesis' own search
        c = runner.run(ex)
        if c is not None and not c.ok:
            return result("FAIL", c.message, c, inputs, ["failing example: " + ex.describe(), *ex.show()])
    minimal = _search(runner, specs, int(config.get("examples", 20)))
    if minimal is not None:
        c = runner.run(minimal)
        if c is not None and not c.ok:
            return result("FAIL", c.message, c, inputs,
                          ["shrunk failing example: " + minimal.describe(), *minimal.show()])
    notes = (f"outputs and gradients match on {len(sweep)} edge examples and {int(config.get('examples', 20))} "
             f"drawn by hypothesis")
    if runner.grad_note and not runner.grad_checked:
        notes = f"outputs match; {runner.grad_note}"
    return result("PASS", notes, runner.stats, inputs)


NOTHING = "returns no tensor or number: nothing to compare (updates of its arguments in place are not compared)"


def _returns_nothing(tfn, specs, values) -> bool:
    import torch

    try:
        with torch.no_grad():
            out = call(tfn, specs, to_torch(values))
    except BaseException:  # noqa: BLE001
        return False
    return not any(cmp.is_numeric(leaf) for _, leaf in cmp.flatten(out))


def _search(runner: Runner, specs, examples: int):
    """The shrunk failing example hypothesis finds, or None."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis.errors import NoSuchExample, Unsatisfiable

    def fails(ex):
        c = runner.run(ex)
        return c is not None and not c.ok

    try:
        return find(inp.example_strategy(specs), fails,
                    settings=settings(max_examples=max(1, examples), deadline=None, database=None, derandomize=True,
                                      phases=[Phase.generate, Phase.shrink], report_multiple_bugs=False,
                                      suppress_health_check=list(HealthCheck)))
    except (NoSuchExample, Unsatisfiable):
        return None
    except Exception:  # noqa: BLE001  (Flaky and friends: the code under test is not deterministic)
        return None


# ---------------------------------------------------------------------------------------------- random
def _stack(samples):
    """[K samples of a result] -> list of (path, array [K, ...]) for the numeric leaves."""
    paths = [p for p, leaf in cmp.flatten(samples[0]) if cmp.is_numeric(leaf)]
    leaves = [[cmp.to_numpy(leaf) for p, leaf in cmp.flatten(s) if cmp.is_numeric(leaf)] for s in samples]
    return [(p, np.stack([row[i] for row in leaves]).astype(np.float64)) for i, p in enumerate(paths)]


def _jax_samples(jfn, specs, j_vals, keys):
    import jax

    try:
        out = jax.vmap(lambda k: call(jfn, specs, j_vals, key=k))(keys)
        return [(p, np.asarray(leaf, np.float64)) for p, leaf in cmp.flatten(out) if cmp.is_numeric(leaf)]
    except Exception:  # noqa: BLE001  (not vmappable: draw one at a time)
        return _stack([call(jfn, specs, j_vals, key=k) for k in keys])


def check_random(name, tfn, jfn, config, cache) -> dict:
    import jax
    import torch

    def run_torch(specs):
        with torch.no_grad():
            call(tfn, specs, to_torch(inp.draw_values(specs, "random", 0)))

    specs, how = resolve_inputs(name, tfn, config, run_torch)
    if specs is None:
        return result("SKIP", how)
    inputs = f"{inp.format_specs(specs)} ({how})" if specs else "(none)"
    K = int(config.get("samples", 200))
    values = inp.draw_values(specs, "random", 0)
    if _returns_nothing(tfn, specs, values):
        return result("SKIP", NOTHING, inputs=inputs)
    torch.manual_seed(0)
    try:
        with torch.no_grad():
            t_samples = _stack([call(tfn, specs, to_torch(values)) for _ in range(K)])
    except BaseException as e:  # noqa: BLE001
        return result("ERROR", f"torch raised on repeated draws: {user_error(e)}", inputs=inputs)
    j_vals = to_jax(values)
    key0, key1 = jax.random.key(0), jax.random.key(1)
    problems = []
    try:
        first = call(jfn, specs, j_vals, key=key0)
        again = call(jfn, specs, j_vals, key=key0)
        other = call(jfn, specs, j_vals, key=key1)
        j_samples = _jax_samples(jfn, specs, j_vals, jax.random.split(jax.random.key(2), K))
    except BaseException as e:  # noqa: BLE001
        return result("FAIL", f"JAX raised where torch ran: {user_error(e)}", inputs=inputs)
    with torch.no_grad():
        torch.manual_seed(0)
        t_first = call(tfn, specs, to_torch(values))
    problems, stats = random_behaviour(t_first, t_samples, first, again, other, j_samples, K)
    if problems:
        return result("FAIL", cmp.Comparison(ok=False, problems=problems).message, inputs=inputs)
    from torch2jax.check.replay import key_tracker

    with key_tracker() as keys:  # two draws from one key, whatever their shapes
        call(jfn, specs, j_vals, key=key0)
    if keys.reused:
        return result("FAIL", f"{keys.reused}: a reused key?", inputs=inputs)
    replayed, why = replayed_example(tfn, jfn, specs, values)
    if replayed is not None and not replayed.ok:
        return result("FAIL", replayed.message, replayed, inputs, ["with torch's random draws replayed in JAX"])
    exact = ("outputs and gradients match with torch's draws replayed" if replayed is not None else
             f"torch's draws cannot be replayed ({why}): values compared by their statistics only")
    return result("PASS", f"random: {exact}; shapes, dtypes, means (worst {stats.max_abs:.1f} standard errors) and "
                          f"spreads (worst {100 * stats.max_rel:.0f}% apart) over {K} draws match; the same key "
                          f"repeats, another differs, no reused key", replayed, inputs)


def replayed_example(tfn, jfn, specs, values):
    """(Comparison, "") of outputs and gradients with torch's draws replayed in JAX, or (None, why not)."""
    import jax
    import torch

    from torch2jax.check.replay import Replay, user_modules

    rep = Replay(user_modules(tfn, jfn))
    t_inputs: dict = {}
    torch.manual_seed(0)
    try:
        with rep.torch():
            t_out = call(tfn, specs, to_torch(values, grad=True, leaves=t_inputs))

        def again():
            with torch.no_grad():
                return call(tfn, specs, to_torch(values))

        if not rep.torch_covers(again, t_out):
            return None, rep.why
    except BaseException as e:  # noqa: BLE001
        return None, f"torch raised under the recorder: {user_error(e)}"
    key = jax.random.key(0)
    jfn_keyed = lambda *a, **k: jfn(*a, **k, key=key)  # noqa: E731
    try:
        with rep.jax():
            j_out = call(jfn, specs, to_jax(values), key=key)
    except BaseException as e:  # noqa: BLE001
        if not rep.ok:
            return None, rep.why
        c = cmp.Comparison(ok=False, problems=[f"JAX raised with torch's draws replayed: {user_error(e)}"])
        return c, ""
    if rep.reused:
        return cmp.Comparison(ok=False, problems=[rep.reused + ": a reused key?"]), ""
    if not rep.ok:
        return None, rep.why
    c = cmp.compare_trees(t_out, j_out, "output")
    if c.ok:
        runner = Runner(tfn, jfn_keyed, specs)
        with rep.jax():
            c.merge(runner.gradients(t_inputs, t_out, inp.Example(None, "random", 0, values)))
        if not rep.ok:
            return None, rep.why
    return c, ""



def random_behaviour(t_first, t_samples, first, again, other, j_samples, K):
    """(problems, stats) for random code: torch's first result and K draws (_stack) against JAX's results for key 0
    (twice), key 1, and K draws under split keys. stats.max_abs: the largest mean z-score, max_rel: the largest
    relative spread difference."""
    problems = []
    stats = cmp.Comparison()
    # shapes and dtypes
    t_leaves = [(p, leaf) for p, leaf in cmp.flatten(t_first) if cmp.is_numeric(leaf)]
    j_leaves = [(p, leaf) for p, leaf in cmp.flatten(first) if cmp.is_numeric(leaf)]
    if len(t_leaves) != len(j_leaves):
        return [f"torch returns {len(t_leaves)} value(s), JAX {len(j_leaves)}"], stats
    for (p, t), (_, j) in zip(t_leaves, j_leaves):
        te, je = cmp.to_numpy(t), cmp.to_numpy(j)
        if te.shape != je.shape:
            problems.append(f"output{p}: shape torch {te.shape} vs JAX {je.shape}")
        elif cmp._kind(te.dtype) != cmp._kind(je.dtype):
            problems.append(f"output{p}: dtype torch {te.dtype} vs JAX {je.dtype}")
    if problems:
        return problems, stats
    # the same key repeats, another key changes the draw
    same = cmp.compare_trees(first, again, "same key")
    if not same.ok or any(not np.array_equal(cmp.to_numpy(a), cmp.to_numpy(b), equal_nan=True)
                          for (_, a), (_, b) in zip(cmp.flatten(first), cmp.flatten(again)) if cmp.is_numeric(a)):
        problems.append("the same key gives different results")
    t_varies = [bool(np.any(s.std(axis=0) > 0)) for _, s in t_samples]
    for i, ((p, a), (_, b)) in enumerate(zip(j_leaves, [(q, x) for q, x in cmp.flatten(other) if cmp.is_numeric(x)])):
        if t_varies[i] and np.array_equal(cmp.to_numpy(a), cmp.to_numpy(b), equal_nan=True):
            problems.append(f"output{p}: another key gives the same values (the key is not used)")
    # draws torch makes independently must not coincide in JAX
    for i in range(len(j_leaves)):
        for k in range(i + 1, len(j_leaves)):
            ji, jk = cmp.to_numpy(j_leaves[i][1]), cmp.to_numpy(j_leaves[k][1])
            ti, tk = t_samples[i][1][0], t_samples[k][1][0]
            if ji.shape == jk.shape and ji.size and np.array_equal(ji, jk) and not np.array_equal(ti, tk):
                problems.append(f"outputs {j_leaves[i][0]} and {j_leaves[k][0]} are identical in JAX and differ in "
                                f"torch: a reused key?")
    if not problems:
        problems += _moments(t_samples, j_samples, K, stats)
    if not problems:
        problems += _dependence(t_samples, j_samples)
    return problems, stats


def _moments(t_samples, j_samples, K, stats) -> list[str]:
    problems = []
    for (p, t), (_, j) in zip(t_samples, j_samples):
        if t.shape != j.shape:
            problems.append(f"output{p}: {t.shape[1:]} vs {j.shape[1:]} per draw")
            continue
        if t[0].size == 0:
            continue
        if np.issubdtype(t.dtype, np.floating) or np.issubdtype(j.dtype, np.floating):
            t_nan, j_nan = np.isnan(t).any(0), np.isnan(j).any(0)
            if not np.array_equal(t_nan, j_nan):
                problems.append(f"output{p}: NaN at {int((t_nan != j_nan).sum())} elements where the other side has "
                                "numbers")
                continue
            if t_nan.any():  # NaN in the same places on both sides (a std of one element): compare the rest
                t, j = t[:, ~t_nan], j[:, ~j_nan]
                if t[0].size == 0:
                    continue
        tm, jm = t.mean(0), j.mean(0)
        tv, jv = t.var(0, ddof=1), j.var(0, ddof=1)
        se = np.sqrt((tv + jv) / K)
        scale = max(1.0, float(np.abs(tm).max()))
        z = np.abs(tm - jm) / np.maximum(se, 1e-6 * scale)
        worst = int(np.argmax(z))
        stats.max_abs = max(stats.max_abs, float(z.flat[worst]))
        if z.flat[worst] > 6.0:
            idx = tuple(int(i) for i in np.unravel_index(worst, tm.shape))
            problems.append(f"output{p}: mean over {K} draws differs at {idx}: torch {tm.flat[worst]:.4g} vs JAX "
                            f"{jm.flat[worst]:.4g} ({z.flat[worst]:.1f} standard errors)")
            continue
        ts, js = np.sqrt(tv.mean()), np.sqrt(jv.mean())  # the typical spread, pooled over elements
        rel = abs(ts - js) / max(ts, 1e-12) if ts > 0 else (0.0 if js == 0 else np.inf)
        stats.max_rel = max(stats.max_rel, float(rel))
        if rel > 0.15 + 3.0 / np.sqrt(K * max(1, t[0].size)):
            problems.append(f"output{p}: standard deviation over {K} draws torch {ts:.4g} vs JAX {js:.4g}")
    return problems


def _spread(cols, share: float = 0.1) -> np.ndarray:
    """Per column: at least `share` of the draws differ from the column's most common value. (A value held by m
    or more draws spans m places of the sorted column: one comparison over all columns at once, not a count per
    column, which a function drawing images has hundreds of thousands of.)"""
    n = cols.shape[0]
    m = math.floor(n - share * n) + 1  # a most common value held this often leaves too few other draws
    if m > n:
        return np.ones(cols.shape[1], bool)
    ordered = np.sort(cols, axis=0)
    return ~np.any(ordered[:n - m + 1] == ordered[m - 1:], axis=0)


def _dependence(t_samples, j_samples, limit: int = 400) -> list[str]:
    """Elements torch draws independently must not be correlated in JAX (a key reused inside one call)."""
    t_cols = np.concatenate([s.reshape(s.shape[0], -1) for _, s in t_samples], axis=1) if t_samples else None
    j_cols = np.concatenate([s.reshape(s.shape[0], -1) for _, s in j_samples], axis=1) if j_samples else None
    if t_cols is None or t_cols.shape != j_cols.shape or t_cols.shape[0] < 50:
        return []
    names = [f"output{p}{[int(j) for j in np.unravel_index(i, s.shape[1:])]}" for p, s in t_samples
             for i in range(int(np.prod(s.shape[1:])))]
    # elements that vary in a good share of the draws on both sides: an element that is nearly always one value (a
    # mask's edge pixel) has a correlation with another made of a few draws, which means nothing
    keep = np.where(_spread(t_cols) & _spread(j_cols))[0]
    if len(keep) > limit:
        keep = keep[np.linspace(0, len(keep) - 1, limit).astype(int)]
    if len(keep) < 2:
        return []
    ct, cj = np.corrcoef(t_cols[:, keep].T), np.corrcoef(j_cols[:, keep].T)
    diff = np.abs(np.nan_to_num(cj) - np.nan_to_num(ct))
    np.fill_diagonal(diff, 0)
    i, k = np.unravel_index(int(np.argmax(diff)), diff.shape)
    # a key used twice makes two draws equal or near it (correlation near 1 where torch's is near 0); the largest
    # of many chance differences between sample correlations stays well below that
    if diff[i, k] > 0.7:
        return [f"{names[keep[i]]} and {names[keep[k]]} have correlation {cj[i, k]:.2f} over the draws in JAX, "
                f"{ct[i, k]:.2f} in torch: one key used for two draws?"]
    return []
