"""Every mapping record, run through the translator and compared with torch: outputs and gradients.

One test per (record, test expression): the expression is written into a torch function, translated with
torch2jax.translate, and both versions run on the same hypothesis-drawn inputs. A new record is tested the
moment it is added; a record without tests fails test_every_record_is_tested.
"""
from __future__ import annotations

import ast
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from table_inputs import array_strategy, assert_close, flatten, to_numpy_tree
from torch2jax import translate
from torch2jax.mappings import load_tables

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
TABLES = load_tables()
RECORDS = sorted(TABLES.all_records(), key=lambda r: r.name)
CASES = [pytest.param(r, expr, id=f"{r.name}::{expr}") for r in RECORDS
         if not r.random and not r.layer for expr in r.tests]
LAYER_CASES = [pytest.param(r, expr, id=f"{r.name}::{expr}") for r in RECORDS if r.layer for expr in r.tests]


def _function_source(expr: str, names: list[str]) -> str:
    return HEADER + f"def f({', '.join(names)}):\n    return {expr}\n"


def _compile(source: str, what: str):
    ns: dict = {}
    exec(compile(source, what, "exec"), ns)
    return ns["f"]


def _imports_torch(code: str) -> bool:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def test_every_record_is_tested():
    untested = [r.name for r in RECORDS if not r.tests and not r.skip_test]
    assert not untested, f"records without tests: {untested}"


def _resolve(dotted_name: str):
    roots = {"jnp": jnp, "jax": jax, "lax": jax.lax, "np": np}
    import equinox as eqx
    import optax
    import torch2jax.runtime as t2j

    roots |= {"eqx": eqx, "optax": optax, "t2j": t2j}
    head, *rest = dotted_name.split(".")
    obj = roots[head]
    for part in rest:
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_targets_exist(record):
    """Every jnp/jax/t2j name a template uses exists in the installed versions."""
    for template in record.templates:
        for node in ast.walk(ast.parse(template, mode="eval")):
            if isinstance(node, ast.Attribute):
                parts = []
                cur = node
                while isinstance(cur, ast.Attribute):
                    parts.append(cur.attr)
                    cur = cur.value
                if isinstance(cur, ast.Name) and cur.id in {"jnp", "jax", "lax", "eqx", "optax", "t2j"}:
                    _resolve(".".join([cur.id, *reversed(parts)]))


# Two thousand records, each compiled for every new shape: in CI (the default profile) three examples apiece keep
# the suite within its time; the dev and thorough profiles use their own counts.
RECORD_EXAMPLES = 3 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings().max_examples


@pytest.mark.parametrize("record,expr", CASES)
def test_record_matches_torch(record, expr):
    names = sorted(record.inputs)
    result = translate(_function_source(expr, names), filename=f"{record.name}.py")
    errors = [d.format() for d in result.diagnostics if d.severity == "error"]
    assert not errors, "\n".join(errors) + "\n" + result.code
    assert not _imports_torch(result.code), result.code
    f_torch = _compile(_function_source(expr, names), "torch_version")
    f_jax = _compile(result.code, "jax_version")
    rtol = record.tol or 1e-5

    @settings(max_examples=RECORD_EXAMPLES)
    @given(st.tuples(*(array_strategy(record.inputs[n]) for n in names)), st.integers(0, 2**31 - 1))
    def check(arrays, seed):
        t_args = [torch.from_numpy(np.array(a)) for a in arrays]
        j_args = [jnp.asarray(a) for a in arrays]
        expected = f_torch(*t_args)
        actual = f_jax(*j_args)
        assert_close(expected, actual, rtol, rtol, f"{expr} output")
        if record.grad:
            _check_grads(f_torch, f_jax, arrays, expected, seed, rtol, expr)

    check()


_JAX_GRADS: dict = {}


# what jit refuses and an eager call allows: a value-dependent shape (torch.repeat_interleave with tensor repeats)
_NEEDS_VALUES = (jax.errors.ConcretizationTypeError, jax.errors.NonConcreteBooleanIndexError,
                 jax.errors.TracerArrayConversionError, jax.errors.TracerIntegerConversionError)


def _jax_grads(f_jax):
    """grads(args, float_idx, cotangents): the gradients of sum(output leaf i * cotangent i) with respect to the
    floating arguments, jitted once per function (eager, every backward primitive compiles on its own); eager for a
    function whose output shape depends on its values."""
    if f_jax not in _JAX_GRADS:
        def scalar(float_args, args, float_idx, cotangents):
            args = list(args)
            for i, v in zip(float_idx, float_args):
                args[i] = v
            leaves = jax.tree.leaves(f_jax(*args))
            return sum(jnp.sum(leaves[i] * c) for i, c in cotangents.items())

        eager = jax.grad(scalar)
        jitted = jax.jit(eager, static_argnums=2)

        def grads(args, float_idx, cotangents):
            nonlocal jitted
            float_args = tuple(args[i] for i in float_idx)
            try:
                return jitted(float_args, args, float_idx, cotangents)
            except _NEEDS_VALUES:
                jitted = eager  # and for this function's later examples
                return eager(float_args, args, float_idx, cotangents)

        _JAX_GRADS[f_jax] = grads
    return _JAX_GRADS[f_jax]


def _check_grads(f_torch, f_jax, arrays, expected, seed, rtol, expr):
    """torch autograd against jax.vjp with the same random cotangent, for every floating input."""
    float_idx = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    out_leaves = flatten(to_numpy_tree(expected))
    diff_out = [i for i, o in enumerate(out_leaves) if o.dtype.kind == "f" and o.size > 0]
    if not float_idx or not diff_out:
        return
    rng = np.random.default_rng(seed)
    cotangents = {i: rng.standard_normal(out_leaves[i].shape).astype(np.float32) for i in diff_out}

    t_args = [torch.from_numpy(np.array(a)).requires_grad_(i in float_idx) for i, a in enumerate(arrays)]
    t_out = flatten_torch(f_torch(*t_args))
    total = sum((t_out[i] * torch.from_numpy(c)).sum() for i, c in cotangents.items())
    if isinstance(total, torch.Tensor) and total.requires_grad:
        t_grads = torch.autograd.grad(total, [t_args[i] for i in float_idx], allow_unused=True)
    else:  # the output does not depend on the inputs (torch.zeros(3), x.shape): JAX's gradients must be 0 too
        t_grads = [None] * len(float_idx)

    j_grads = _jax_grads(f_jax)(tuple(jnp.asarray(a) for a in arrays), tuple(float_idx),
                                {i: jnp.asarray(c) for i, c in cotangents.items()})
    for k, (tg, jg) in enumerate(zip(t_grads, j_grads)):
        if tg is not None and tg.layout != torch.strided:  # F.embedding(sparse=True): compared as the dense gradient
            tg = tg.to_dense()
        # force=True: torch.func returns efficient ZeroTensors for gradients known to be zero
        expected_grad = np.zeros_like(arrays[float_idx[k]]) if tg is None else tg.detach().numpy(force=True)
        np.testing.assert_allclose(np.asarray(jg), expected_grad, rtol=max(rtol, 1e-4), atol=max(rtol, 1e-4),
                                   err_msg=f"{expr}: gradient of input {float_idx[k]}")


def flatten_torch(value) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flatten_torch(item)]
    return [value]


@pytest.mark.parametrize("record,expr", LAYER_CASES)
def test_layer_matches_torch(record, expr):
    """The translated layer, holding the torch layer's weights, computes what torch computes: eval mode and
    train mode (Dropout layers only in eval mode: their train mode is tested statistically in tests/runtime),
    outputs and the gradients with respect to the inputs and every parameter."""
    import equinox as eqx

    import torch2jax.runtime as t2j

    result = translate(_function_source(expr, []), filename=f"{record.name}.py")
    errors = [d.format() for d in result.diagnostics if d.severity == "error"]
    assert not errors, "\n".join(errors) + "\n" + result.code
    assert not _imports_torch(result.code), result.code
    torch.manual_seed(0)
    t_layer = _compile(_function_source(expr, []), "torch_version")()
    make = _compile(result.code, "jax_version")
    build = (lambda: make(key=jax.random.key(0))) if "key" in result.code.split("):")[0] else make
    stateful = t2j.nn.is_stateful(build())
    if stateful:
        j_layer, state = eqx.nn.make_with_state(lambda: build())()
        j_layer, state = t2j.load_state_dict(j_layer, t_layer.state_dict(), state=state)
        # a train-mode call consumes the state it is given (Equinox refuses it afterwards): each call gets a copy
        leaves, treedef = jax.tree.flatten(state)
        fresh_state = lambda: jax.tree.unflatten(treedef, leaves)  # noqa: E731
    else:
        j_layer, fresh_state = t2j.load_state_dict(build(), t_layer.state_dict()), lambda: None
    names = sorted(record.inputs)
    modes = ["eval"] if "Dropout" in record.name else ["eval", "train"]
    rtol = record.tol or 1e-4

    initial = {k: v.clone() for k, v in t_layer.state_dict().items()}
    # jitted: compiled once per mode for all examples (called eagerly, a scan-based layer compiles at every call)
    call = eqx.filter_jit(lambda layer, args, state: layer(*args, state) if stateful else layer(*args))
    grad_fns = _layer_grad_fns(stateful)

    @given(st.tuples(*(array_strategy(record.inputs[n]) for n in names)))
    def check(arrays):
        for mode in modes:
            t_layer.load_state_dict(initial)
            t_layer.train(mode == "train")
            layer = eqx.nn.inference_mode(j_layer, mode == "eval")
            t_args = [torch.from_numpy(np.array(a)) for a in arrays]
            expected = t_layer(*t_args)
            actual = call(layer, tuple(map(jnp.asarray, arrays)), fresh_state())
            if stateful:
                actual, new_state = actual
                if mode == "train":  # the running statistics torch updated, in the returned state
                    got = t2j.to_state_dict(j_layer, new_state)
                    for k, v in t_layer.state_dict().items():
                        np.testing.assert_allclose(got[k], v.numpy(), rtol=rtol, atol=rtol, err_msg=f"{expr}: {k}")
            assert_close(expected, actual, rtol, rtol, f"{expr} {mode} output")
        _check_layer_grads(t_layer, layer, grad_fns, fresh_state, arrays, expected, rtol, expr)

    check()


def _layer_grad_fns(stateful: bool):
    """Jitted (once per test) gradients of sum(first output * cot): with respect to every parameter, and to the
    floating inputs."""
    import equinox as eqx

    def scalar(layer, cot, state, *args):
        out = layer(*args, state)[0] if stateful else layer(*args)
        return jnp.sum(jax.tree.leaves(out)[0] * cot)

    param_grads = eqx.filter_jit(eqx.filter_grad(scalar))

    @eqx.filter_jit
    def input_grads(layer, cot, state, float_idx, *args):
        return jax.grad(lambda *a: scalar(layer, cot, state, *a), argnums=float_idx)(*args)

    return param_grads, input_grads


def _check_layer_grads(t_layer, j_layer, grad_fns, fresh_state, arrays, expected, rtol, expr):
    """Gradients of a random projection of the (first) output w.r.t. every parameter and floating input."""
    import torch2jax.runtime as t2j

    out0 = flatten(to_numpy_tree(expected))[0]
    if out0.dtype.kind != "f":
        return
    cot = np.random.default_rng(0).standard_normal(out0.shape).astype(np.float32)
    t_args = [torch.from_numpy(np.array(a)).requires_grad_(a.dtype.kind == "f") for a in arrays]
    t_layer.zero_grad()
    # clones: an in-place layer (nn.ReLU(inplace=True)) may not write into a leaf that requires grad
    t_out = flatten_torch(t_layer(*(t.clone() for t in t_args)))[0]
    (t_out * torch.from_numpy(cot)).sum().backward()

    param_grads, input_grads = grad_fns
    args = tuple(map(jnp.asarray, arrays))
    grads = param_grads(j_layer, jnp.asarray(cot), fresh_state(), *args)
    got = t2j.to_state_dict(grads, fresh_state())  # buffers (read from the state) have no gradient to compare
    for name, p in t_layer.named_parameters():
        if p.grad is not None:
            np.testing.assert_allclose(got[name], p.grad.numpy(), rtol=max(rtol, 1e-4), atol=max(rtol, 1e-4),
                                       err_msg=f"{expr}: gradient of {name}")
    float_idx = tuple(i for i, a in enumerate(arrays) if a.dtype.kind == "f")
    if float_idx:
        g_in = input_grads(j_layer, jnp.asarray(cot), fresh_state(), float_idx, *args)
        for i, g in zip(float_idx, g_in):
            np.testing.assert_allclose(np.asarray(g), t_args[i].grad.numpy(), rtol=max(rtol, 1e-4),
                                       atol=max(rtol, 1e-4), err_msg=f"{expr}: gradient of input {i}")


# ---- random records (`random = true`): no bit-for-bit comparison with torch; shapes, dtype kinds, keys, moments
RANDOM_CASES = [pytest.param(r, expr, id=f"{r.name}::{expr}") for r in RECORDS if r.random for expr in r.tests]
HEAVY_TAILED = {"Tensor.cauchy_"}  # no mean or variance: compare quantiles
BOUNDED_SUPPORT = {"torch.randint", "torch.randint_like", "torch.randperm", "torch.bernoulli", "torch.multinomial",
                   "Tensor.bernoulli_", "Tensor.random_"}
SAMPLES = 20_000


def _example(spec: str, rng: np.random.Generator) -> np.ndarray:
    from table_inputs import parse_spec

    dtype, shape, lo, hi = parse_spec(spec)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(int(lo), int(hi) + 1, shape).astype(dtype)
    return rng.uniform(lo, hi, shape).astype(dtype)


def _leaves(value) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in flatten(to_numpy_tree(value))]


@pytest.mark.parametrize("record,expr", RANDOM_CASES)
def test_random_record(record, expr):
    """A random record's translation takes a key, matches torch's shapes and dtype kinds, repeats with the same
    key, changes with another, and matches torch's moments (quantiles for heavy tails) on 20k samples, with the
    same support where that is bounded. A call that draws nothing (dropout with training=False or p=0) translates
    without a key: torch must then give the same under two seeds, and JAX exactly that."""
    names = sorted(record.inputs)
    result = translate(_function_source(expr, names), filename=f"{record.name}.py")
    errors = [d.format() for d in result.diagnostics if d.severity == "error"]
    assert not errors, "\n".join(errors) + "\n" + result.code
    assert not _imports_torch(result.code), result.code
    assert "__t2j_key__" not in result.code, result.code
    f_torch = _compile(_function_source(expr, names), "torch_version")
    f_jax = _compile(result.code, "jax_version")

    rng = np.random.default_rng(0)
    arrays = [_example(record.inputs[n], rng) for n in names]
    t_args = [torch.from_numpy(a.copy()) for a in arrays]
    j_args = [jnp.asarray(a) for a in arrays]
    fn = next(n for n in ast.parse(result.code).body if isinstance(n, ast.FunctionDef) and n.name == "f")
    if not fn.args.kwonlyargs:
        torch.manual_seed(0)
        expected = f_torch(*[a.clone() for a in t_args])
        torch.manual_seed(1)
        assert_close(expected, f_torch(*[a.clone() for a in t_args]), 0, 0, f"{expr}: torch draws, JAX takes no key")
        assert_close(expected, f_jax(*j_args), 0, 0, f"{expr} output")
        return
    assert [a.arg for a in fn.args.kwonlyargs] == ["key"], result.code
    assert "T2J401" in {d.code for d in result.diagnostics}
    torch.manual_seed(0)
    expected = f_torch(*[a.clone() for a in t_args])
    actual = f_jax(*j_args, key=jax.random.key(0))
    exp_leaves, act_leaves = flatten(to_numpy_tree(expected)), flatten(to_numpy_tree(actual))
    for e, a in zip(exp_leaves, act_leaves, strict=True):
        assert e.shape == a.shape, f"{expr}: shape torch {e.shape} vs JAX {a.shape}"
        assert e.dtype.kind == a.dtype.kind or {e.dtype.kind, a.dtype.kind} <= {"i", "u"}, \
            f"{expr}: dtype torch {e.dtype} vs JAX {a.dtype}"
    again = f_jax(*j_args, key=jax.random.key(0))
    other = f_jax(*j_args, key=jax.random.key(1))
    for a, b, c in zip(_leaves(actual), _leaves(again), _leaves(other)):
        np.testing.assert_array_equal(a, b, err_msg=f"{expr}: the same key must repeat the draw")
        assert a.size == 0 or not np.array_equal(a, c), f"{expr}: another key must change the draw"

    size = max(sum(e.size for e in exp_leaves), 1)
    calls = -(-SAMPLES // size)
    keys = jax.random.split(jax.random.key(2), calls)
    j_samples = np.concatenate([x.reshape(calls, -1) for x in _leaves(
        jax.vmap(lambda k: f_jax(*j_args, key=k))(keys))], axis=1).ravel()
    torch.manual_seed(2)
    t_samples = np.concatenate([np.concatenate([x.ravel() for x in _leaves(f_torch(*[a.clone() for a in t_args]))])
                                for _ in range(calls)])
    assert np.isfinite(j_samples).all(), expr
    if record.name in HEAVY_TAILED:
        tq, jq = np.percentile(t_samples, [25, 50, 75]), np.percentile(j_samples, [25, 50, 75])
        np.testing.assert_allclose(jq, tq, atol=0.05 * (tq[2] - tq[0]), err_msg=f"{expr}: quantiles")
    else:
        n = len(t_samples)
        t_mean, j_mean, t_std, j_std = t_samples.mean(), j_samples.mean(), t_samples.std(), j_samples.std()
        assert abs(j_mean - t_mean) <= 6 * np.sqrt((t_std ** 2 + j_std ** 2) / n) + 1e-6, \
            f"{expr}: mean torch {t_mean:.4f} vs JAX {j_mean:.4f}"
        assert abs(j_std - t_std) <= 0.05 * t_std + 1e-6, f"{expr}: std torch {t_std:.4f} vs JAX {j_std:.4f}"
    if record.name in BOUNDED_SUPPORT:
        extra = set(np.unique(j_samples)) - set(np.unique(t_samples))
        assert not extra, f"{expr}: JAX draws values torch never does: {sorted(extra)[:10]}"
