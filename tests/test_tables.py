"""Every mapping record, run through the translator and compared with torch: outputs and gradients.

One test per (record, test expression): the expression is written into a torch function, translated with
torch2jax.translate, and both versions run on the same hypothesis-drawn inputs. A new record is tested the
moment it is added; a record without tests fails test_every_record_is_tested.
"""
from __future__ import annotations

import ast

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from table_inputs import array_strategy, assert_close, flatten, to_numpy_tree
from torch2jax import translate
from torch2jax.mappings import load_tables

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"
TABLES = load_tables()
RECORDS = sorted(TABLES.all_records(), key=lambda r: r.name)
CASES = [pytest.param(r, expr, id=f"{r.name}::{expr}") for r in RECORDS if not r.random for expr in r.tests]


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
    t_grads = torch.autograd.grad(total, [t_args[i] for i in float_idx], allow_unused=True)

    def scalar(*float_args):
        args = [jnp.asarray(a) for a in arrays]
        for i, v in zip(float_idx, float_args):
            args[i] = v
        leaves = jax.tree.leaves(f_jax(*args))
        return sum(jnp.sum(leaves[i] * c) for i, c in cotangents.items())

    j_grads = jax.grad(scalar, argnums=tuple(range(len(float_idx))))(*(jnp.asarray(arrays[i]) for i in float_idx))
    for k, (tg, jg) in enumerate(zip(t_grads, j_grads)):
        expected_grad = np.zeros_like(arrays[float_idx[k]]) if tg is None else tg.detach().numpy()
        np.testing.assert_allclose(np.asarray(jg), expected_grad, rtol=max(rtol, 1e-4), atol=max(rtol, 1e-4),
                                   err_msg=f"{expr}: gradient of input {float_idx[k]}")


def flatten_torch(value) -> list:
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in flatten_torch(item)]
    return [value]
