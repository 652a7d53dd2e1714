"""Forms of tensor_ops.toml records that the table test cannot run against torch (no GPU, process-wide state), and
the call-site choices of the Tensor.to / Tensor.type handlers."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
import torch

import torch2jax.runtime as t2j
from torch2jax import translate

HEADER = "import torch\n\n"


def _body(expr: str, params: str = "x, y, device") -> tuple[str, set[str]]:
    result = translate(HEADER + f"def f({params}):\n    return {expr}\n")
    line = next(ln for ln in result.code.splitlines() if ln.strip().startswith("return "))
    return line.split("#")[0].strip()[len("return "):], {d.code for d in result.diagnostics}


@pytest.mark.parametrize("expr,expected,codes", [
    ("x.cuda()", "x", {"T2J103"}),
    ("x.cuda(0, non_blocking=True)", "x", {"T2J103"}),
    ("x.to(device)", "x", {"T2J103"}),
    ("x.to(self_device)", "x", {"T2J103"}),
    ("x.to(args.device)", "x", {"T2J103"}),
    ("x.to('cuda:0')", "x", {"T2J103"}),
    ("x.to(y.device)", "x", {"T2J103"}),
    ("x.to(device, non_blocking=True)", "x", {"T2J103"}),
    ("x.to(device, torch.float16)", "x.astype(jnp.float16)", {"T2J103"}),
    ("x.to(device=device, dtype=torch.float64)", "x.astype(jnp.float64)", {"T2J103"}),
    ("x.to(torch.long)", "x.astype(jnp.int64)", set()),
    ("(x + y).to(y.dtype)", "(x + y).astype(y.dtype)", set()),
    ("x.to(y)", "t2j.to(x, y)", set()),
    ("x.to(*args)", "t2j.to(x, *args)", set()),
    ("x.type(torch.cuda.FloatTensor)", None, {"T2J101"}),
    ("x.type('torch.cuda.HalfTensor')", "x.astype(jnp.float16)", set()),
    ("torch.set_default_dtype(torch.float64)", "jax.config.update('jax_enable_x64', jnp.float64 == jnp.float64)",
     {"T2J104"}),
    ("torch.cuda.is_available()", "False", {"T2J103"}),
])
def test_call_site_forms(expr, expected, codes):
    params = "x, y, device, self_device, args" if "args" in expr else "x, y, device, self_device"
    body, got = _body(expr, params)
    if expected is not None:
        assert body == expected
    assert codes <= got


def test_str_split_is_left_alone():
    body, codes = _body("x.split()", "x")
    assert body == "x.split()" and not codes


def test_runtime_to_decides_at_run_time():
    x = jnp.arange(3)
    assert t2j.to(x, jnp.ones(2, jnp.float16)).dtype == jnp.float16
    assert t2j.to(x, jnp.float32).dtype == jnp.float32
    assert t2j.to(x, "cuda") is not None and t2j.to(x, "cuda").dtype == x.dtype
    assert t2j.to(x, t2j.device("cuda", 0), dtype=jnp.float32).dtype == jnp.float32


def test_device_placeholder():
    d = t2j.device("cuda:1")
    assert (d.type, d.index, str(d)) == ("cuda", 1, "cuda:1")
    assert t2j.device("cpu") == "cpu" and t2j.device(d) == d and t2j.device(0).type == "cuda"
    assert repr(t2j.device("cpu")) == "device(type='cpu')"


def test_type_name():
    assert t2j.type_as_string(jnp.zeros(2)) == "torch.FloatTensor"
    assert t2j.type_as_string(jnp.zeros(2, jnp.int32)) == "torch.IntTensor"
    assert t2j.tensor_type("torch.cuda.LongTensor") == jnp.int64


# int(t) / float(t) / bool(t) / complex(t): torch converts any one-element tensor, JAX's builtins only a scalar array
SCALARS = """import torch

def conversions(x, i):
    a = int(x.sum(0, keepdim=True))
    b = float(torch.abs(x)[:1])
    c = int(i.argmax(1, keepdim=True)[0])
    d = bool(torch.tensor([True]))
    e = complex(x[:1].sum(0, keepdim=True))
    f = float(torch.tensor([2.5]))
    g = int(x.long()[1:2])
    return a, b, c, d, e, f, g

def untouched(x, n):
    return int(3.5), float(n), int(x.size(0)), int(x.numel()), float(x.sum().item()), int(len(x)), int("12", 8)

def drawn(n):
    return int(torch.randint(0, 4, (1,))), float(torch.rand(1)) < 1.0, n
"""


def test_scalar_conversions_of_one_element_tensors():
    result = translate(SCALARS)
    code = result.code
    assert "torch" not in code.replace("torch2jax", ""), code
    assert code.count(".item()") == 10, code  # the 7 conversions, the 2 draws, and the one there already
    assert "int(3.5), float(n), int(x.shape[0]), int(x.size), float(jnp.sum(x).item()), int(len(x)), " \
           'int("12", 8)' in code, "numbers and what is already a Python value stay as they are"
    again = translate("import torch\n" + code).code
    assert again == code, "translating the output again adds no second .item()"
    torch_ns, jax_ns = {}, {}
    exec(compile(SCALARS, "torch_version", "exec"), torch_ns)
    exec(compile(code, "jax_version", "exec"), jax_ns)
    x = [3.0, -1.5, 2.25]
    i = [[0, 5, 2], [7, 1, 3]]
    expected = torch_ns["conversions"](torch.tensor(x), torch.tensor(i))
    actual = jax_ns["conversions"](jnp.array(x), jnp.array(i))
    assert actual == expected and [type(a) for a in actual] == [type(e) for e in expected]
    assert jax_ns["untouched"](jnp.array(x), 2) == torch_ns["untouched"](torch.tensor(x), 2)
    a, b, n = jax_ns["drawn"](4, key=jax.random.key(0))
    assert type(a) is int and 0 <= a < 4 and b is True and n == 4


NUMPY_METHODS = """
import numpy as np
import torch


def numpy_stats(a):
    return a.std(), a.var(), a.max(0), a.min(1), a.std(0), a[:3].mean()


def tensor_stats(t):
    return t.std(), t.var(), t.max(0)[0], t.min(1).values, t.std(0), t[:3].mean()
"""


def test_numpy_array_methods_keep_numpy_semantics():
    """`a.std()` on an array a numpy function made is numpy's (divides by n; max(axis) gives the values): the
    translator cannot tell it from a tensor's method, the runtime can (a tensor of the translation is a JAX array);
    a tensor's methods stay torch's."""
    import numpy as np

    from module_harness import load_source

    ours = load_source(translate(NUMPY_METHODS).code, "jax_numpy_methods")
    theirs = load_source(NUMPY_METHODS, "torch_numpy_methods")
    a = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    for got, want in zip(ours["numpy_stats"](a), theirs["numpy_stats"](a)):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    for got, want in zip(ours["tensor_stats"](jnp.asarray(a)), theirs["tensor_stats"](torch.from_numpy(a))):
        np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-6)
