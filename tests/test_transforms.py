"""torch.func, imperative autograd, torch.compile and autocast: translated code against torch on the same inputs."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j
from torch2jax import translate

CASE = Path(__file__).parent / "cases" / "func_transforms.py"
ALIASES = Path(__file__).parent / "cases" / "func_aliases.py"
RNG = np.random.default_rng(0)


def _imports_torch(code: str) -> bool:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def _load(case: Path):
    """(torch namespace, translated namespace, translation) of a case file; the translation must import no torch."""
    source = case.read_text()
    result = translate(source, filename=str(case))
    errors = [d.format() for d in result.diagnostics if d.severity == "error"]
    assert not errors, "\n".join(errors) + "\n" + result.code
    assert not _imports_torch(result.code), result.code
    torch_ns, jax_ns = {}, {}
    exec(compile(source, "torch_version", "exec"), torch_ns)
    exec(compile(result.code, "jax_version", "exec"), jax_ns)
    return torch_ns, jax_ns, result


@pytest.fixture(scope="module")
def both():
    return _load(CASE)


def _arrays(*shapes):
    return [RNG.standard_normal(s).astype(np.float32) for s in shapes]


def _close(expected, actual, rtol=1e-5, atol=1e-5, what=""):
    e_leaves = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    a_leaves = [actual] if not isinstance(actual, (tuple, list)) else list(actual)
    assert len(e_leaves) == len(a_leaves), what
    for e, a in zip(e_leaves, a_leaves):
        if isinstance(e, (tuple, list)):
            _close(e, a, rtol, atol, what)
            continue
        e = e.detach().numpy() if isinstance(e, torch.Tensor) else np.asarray(e)
        np.testing.assert_allclose(np.asarray(a), e, rtol=rtol, atol=atol, err_msg=what)


def _flat_torch(out):
    return [out] if isinstance(out, torch.Tensor) else [t for o in out for t in _flat_torch(o)]


def _check_grads(f_torch, f_jax, arrays, what):
    """torch autograd against jax.vjp: the gradient of <outputs, random cotangents> for every input."""
    t_in = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    t_out = _flat_torch(f_torch(*t_in))
    cots = [RNG.standard_normal(tuple(o.shape)).astype(np.float32) for o in t_out]
    total = sum((o * torch.from_numpy(c)).sum() for o, c in zip(t_out, cots))
    t_grads = torch.autograd.grad(total, t_in, allow_unused=True)

    def scalar(*args):
        out = jax.tree.leaves(f_jax(*args))
        return sum(jnp.sum(o * c) for o, c in zip(out, cots))

    j_grads = jax.grad(scalar, argnums=tuple(range(len(arrays))))(*map(jnp.asarray, arrays))
    for k, (tg, jg) in enumerate(zip(t_grads, j_grads)):
        expected = np.zeros_like(arrays[k]) if tg is None else tg.numpy()
        np.testing.assert_allclose(np.asarray(jg), expected, rtol=1e-4, atol=1e-4, err_msg=f"{what}: input {k}")


FUNCTIONS = [
    ("per_example_grads", [(3,), (5, 3), (5,)], True),
    ("batched_dot", [(4, 3), (4, 3)], True),
    ("vmap_in_out_dims", [(2, 5), (3,)], True),
    ("nested_vmap", [(2, 3), (2, 3)], True),
    ("value_and_gradient", [(4,)], True),
    ("grad_with_aux", [(4,)], True),
    ("jacobians", [(3,), (3, 2)], True),
    ("autograd_on_clone", [(4,)], False),
    ("autograd_vjp", [(2, 3), (2, 3)], False),
    ("backward_then_grad", [(4, 3), (3,)], False),
]


@pytest.mark.parametrize("name,shapes,grads", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_function_matches_torch(both, name, shapes, grads):
    torch_ns, jax_ns, _ = both
    arrays = _arrays(*shapes)
    expected = torch_ns[name](*[torch.from_numpy(a.copy()) for a in arrays])
    actual = jax_ns[name](*map(jnp.asarray, arrays))
    _close(expected, actual, 1e-5, 1e-5, name)
    if grads:
        _check_grads(torch_ns[name], jax_ns[name], arrays, name)


def test_hessian_diagonal(both):
    torch_ns, jax_ns, _ = both
    (v,) = _arrays((3,))
    eye = np.eye(3, dtype=np.float32)
    expected = torch_ns["hessian_diagonal"](torch.from_numpy(v), torch.from_numpy(eye))
    actual = jax_ns["hessian_diagonal"](jnp.asarray(v), jnp.asarray(eye))
    _close(expected, actual, 1e-5, 1e-5, "hessian")
    np.testing.assert_allclose(np.asarray(actual[0]), 12 * v ** 2, rtol=1e-5)


def _torch_and_jax_models(torch_ns, jax_ns, n):
    torch.manual_seed(0)
    t_models = [torch_ns["MLP"]() for _ in range(n)]
    j_models = [t2j.load_state_dict(jax_ns["MLP"](key=jax.random.key(i)), m.state_dict())
                for i, m in enumerate(t_models)]
    return t_models, j_models


def test_vmapped_ensemble(both):
    torch_ns, jax_ns, result = both
    assert "eqx.filter_vmap(fmodel, in_axes=(eqx.if_array(0), eqx.if_array(0), None))" in result.code
    t_models, j_models = _torch_and_jax_models(torch_ns, jax_ns, 4)
    (x,) = _arrays((5, 3))
    expected = torch_ns["ensemble"](t_models, torch.from_numpy(x))
    actual = jax_ns["ensemble"](j_models, jnp.asarray(x))
    assert actual.shape == (4, 5, 2)
    _close(expected, actual, 1e-5, 1e-5, "ensemble")


def test_functional_call_gradients(both):
    torch_ns, jax_ns, _ = both
    (t_model,), (j_model,) = _torch_and_jax_models(torch_ns, jax_ns, 1)
    x, y = _arrays((6, 3), (6, 2))
    t_params = {k: v.detach() for k, v in t_model.named_parameters()}
    expected = torch_ns["functional_grads"](t_model, t_params, torch.from_numpy(x), torch.from_numpy(y))
    actual = jax_ns["functional_grads"](j_model, dict(t2j.named_parameters(j_model)), jnp.asarray(x), jnp.asarray(y))
    assert expected.keys() == actual.keys()
    for k in expected:
        np.testing.assert_allclose(np.asarray(actual[k]), expected[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_translation_reads_like_jax(both):
    _, _, result = both
    code = result.code
    assert "v, g = jax.value_and_grad(" in code  # grad_and_value's targets swapped
    assert "in_axes=(1, None), out_axes=1" in code
    assert "x_grad, w_grad = jax.grad(loss_fn, argnums=(0, 1))(x, w)" in code
    assert "jax.vjp(y_fn, x)[1](v)" in code
    assert not re.search(r"\b[xw]\.grad\b", code)
    codes = {d.code for d in result.diagnostics}
    assert {"T2J604", "T2J605"} <= codes


# ------------------------------------------------------------------ the same idioms written other ways

@pytest.fixture(scope="module")
def aliases():
    return _load(ALIASES)


# (function, input shapes, whether torch's outputs are differentiable: autograd.grad without create_graph=True
# returns values with no graph, where JAX's stay differentiable)
ALIAS_FUNCTIONS = [
    ("per_sample_grads", [(3, 2), (2,), (5, 3), (5, 2)], True),
    ("per_sample_grads_tf", [(3,), (5, 3), (5,)], True),
    ("batched_dot", [(4, 3), (4, 3)], True),
    ("batched_dot_kw", [(4, 3), (4, 3)], True),
    ("in_out_dims", [(3, 4), (4, 2)], True),
    ("in_out_positional", [(2, 5), (3,)], True),
    ("value_grad", [(3,), (4, 3)], True),
    ("value_grad_direct", [(3,), (4, 3)], True),
    ("value_grad_aux", [(5,)], True),
    ("jacs", [(3,), (3, 2)], True),
    ("hessian_diag", [(4,)], True),
    ("hessian_diag_fwdrev", [(4,)], True),
    ("autograd_clone", [(4,)], False),
    ("autograd_clone_detach", [(2, 3), (3,)], False),
    ("autograd_create_graph", [(4,)], True),
    ("grad_tuple_inputs", [(2, 3), (3, 2)], False),
    ("grad_ones_like", [(4,)], False),
    ("tensor_leaf", [(3,)], False),
    ("backward_expression", [(4,)], False),
]


@pytest.mark.parametrize("name,shapes,grads", ALIAS_FUNCTIONS, ids=[f[0] for f in ALIAS_FUNCTIONS])
def test_alias_function_matches_torch(aliases, name, shapes, grads):
    torch_ns, jax_ns, _ = aliases
    arrays = _arrays(*shapes)
    expected = torch_ns[name](*[torch.from_numpy(a.copy()) for a in arrays])
    actual = jax_ns[name](*map(jnp.asarray, arrays))
    _close(expected, actual, 1e-5, 1e-5, name)
    if grads:
        _check_grads(torch_ns[name], jax_ns[name], arrays, name)


def _mlps(torch_ns, jax_ns, n):
    torch.manual_seed(1)
    t_models = [torch_ns["SimpleMLP"]() for _ in range(n)]
    j_models = [t2j.load_state_dict(jax_ns["SimpleMLP"](key=jax.random.key(i)), m.state_dict())
                for i, m in enumerate(t_models)]
    return t_models, j_models


def test_alias_per_sample_grads_of_a_model(aliases):
    """The torch.func tutorial's recipe: functional_call on {name: param} dicts, vmap over grad."""
    torch_ns, jax_ns, result = aliases
    assert "t2j.named_parameters(model)" in result.code and "t2j.named_buffers(model)" in result.code
    (t_model,), (j_model,) = _mlps(torch_ns, jax_ns, 1)
    (x,) = _arrays((6, 4))
    y = RNG.integers(0, 3, 6)
    expected = torch_ns["sample_grads"](t_model, torch.from_numpy(x), torch.from_numpy(y))
    actual = jax_ns["sample_grads"](j_model, jnp.asarray(x), jnp.asarray(y))
    assert expected.keys() == actual.keys()
    for k in expected:
        assert actual[k].shape == (6, *expected[k].shape[1:])
        np.testing.assert_allclose(np.asarray(actual[k]), expected[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name,shape", [("ensemble", (5, 4)), ("ensemble_params_only", (5, 4)),
                                        ("ensemble_own_batches", (3, 5, 4))])
def test_alias_ensembles(aliases, name, shape):
    """Outputs of every member, and the gradient of the outputs with respect to the input."""
    torch_ns, jax_ns, _ = aliases
    t_models, j_models = _mlps(torch_ns, jax_ns, 3)
    (x,) = _arrays(shape)
    _close(torch_ns[name](t_models, torch.from_numpy(x)), jax_ns[name](j_models, jnp.asarray(x)), 1e-5, 1e-5, name)
    _check_grads(lambda t: torch_ns[name](t_models, t), lambda a: jax_ns[name](j_models, a), [x], name)


def _translate(source: str):
    result = translate(source, filename="t.py")
    return result, {d.code for d in result.diagnostics}


def test_unclear_autograd_slice_is_reported():
    source = ("import torch\n\ndef f(x, y):\n    x = x.requires_grad_()\n    for _ in range(2):\n"
              "        g, = torch.autograd.grad(y, x)\n    return g\n")
    result, codes = _translate(source)
    assert "T2J606" in codes
    assert "torch2jax: T2J606" in result.code


def test_vmap_randomness_is_reported():
    result, codes = _translate("import torch\n\ndef f(x):\n    return torch.vmap(lambda a: a * 2, "
                               "randomness='different')(x)\n")
    assert "T2J602" in codes and "randomness" not in result.code.split("#")[0]


COMPILE_SOURCE = '''\
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    @torch.jit.ignore
    def helper(self, x):
        return x * 2

    def forward(self, x):
        return self.fc(x)


@torch.compile(mode="max-autotune")
def scale(x):
    return x * 3


@torch.jit.script
def shift(x):
    return x + 1


def run(x, y):
    torch.manual_seed(0)
    model = Net()
    fast = torch.compile(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        loss = ((fast(x) - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    traced = torch.jit.trace(shift, (x,))
    return scale(traced(x)), losses
'''


def test_compile_and_torchscript_removed():
    result, codes = _translate(COMPILE_SOURCE)
    code = result.code
    assert "T2J601" in codes
    assert "compile" not in code and "jit.script" not in code and "jit.ignore" not in code and "trace" not in code
    assert "fast" not in code  # the alias is resolved: the training step updates `model`
    assert "train_step(model, opt_state, optimizer" in code
    ns_t, ns_j = {}, {}
    plain = (COMPILE_SOURCE.replace('@torch.compile(mode="max-autotune")\n', "").replace("@torch.jit.script\n", "")
             .replace("fast = torch.compile(model)", "fast = model").replace("torch.jit.trace(shift, (x,))", "shift"))
    exec(compile(plain, "torch_version", "exec"), ns_t)  # TorchScript cannot compile exec'd source
    exec(compile(code, "jax_version", "exec"), ns_j)
    x, y = _arrays((4, 3), (4, 1))
    t_out, t_losses = ns_t["run"](torch.from_numpy(x), torch.from_numpy(y))
    # the translation initialises the layer from its own key: compare the parts that do not depend on it
    j_out, j_losses = ns_j["run"](jnp.asarray(x), jnp.asarray(y), key=jax.random.key(0)) if "key" in \
        code.split("def run(")[1].split(")")[0] else ns_j["run"](jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(np.asarray(j_out), t_out.numpy(), rtol=1e-6)
    assert len(j_losses) == 3 and j_losses[2] < j_losses[0]


AMP_SOURCE = '''\
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def main():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.standard_normal((64, 8)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 4, 64))
    model = Net()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.3, dtype=torch.float32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, enabled=False)
    for step in range(6):
        xb, yb = X[step * 8 % 64:step * 8 % 64 + 8], y[step * 8 % 64:step * 8 % 64 + 8]
        optimizer.zero_grad()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out = model(xb)
            loss = F.cross_entropy(out.float(), yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        print(f"step {step} loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
'''


def test_autocast_bfloat16_training_matches_torch(tmp_path):
    import re
    import subprocess
    import sys

    result, codes = _translate(AMP_SOURCE)
    code = result.code
    assert {"T2J602", "T2J603"} <= codes
    assert "autocast" in code and "t2j.amp.autocast(model, jnp.bfloat16)(xb" in code
    assert "GradScaler" not in code and "scaler" not in code
    assert "@eqx.filter_jit" in code
    src, out = tmp_path / "amp_torch.py", tmp_path / "amp_jax.py"
    src.write_text(AMP_SOURCE)
    out.write_text(code)
    env = {"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    runs = [subprocess.run([sys.executable, str(p)], capture_output=True, text=True, timeout=300, env=env)
            for p in (src, out)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-3000:]
    losses = [[float(m[1]) for m in re.finditer(r"loss ([-\d.]+)", r.stdout)] for r in runs]
    assert len(losses[0]) == len(losses[1]) == 6
    # both compute in bfloat16 (8 bits of mantissa): close, not equal
    np.testing.assert_allclose(losses[1], losses[0], rtol=2e-2)


def test_float16_loss_scale_keeps_gradients():
    """t2j.amp.autocast with a static loss scale: float32 gradients, equal to unscaled ones up to float16."""
    model = t2j.nn.Linear(4, 3, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 4)) * 1e-3

    def loss(m, scale):
        return jnp.mean(t2j.amp.autocast(m, jnp.float16, loss_scale=scale)(x) ** 2)

    g_scaled = eqx.filter_grad(loss)(model, 2.0 ** 14)
    g32 = eqx.filter_grad(lambda m: jnp.mean(m(x) ** 2))(model)
    assert g_scaled.weight.dtype == jnp.float32 and model.weight.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(g_scaled.weight), np.asarray(g32.weight), rtol=2e-2, atol=1e-9)
    g_unscaled = eqx.filter_grad(loss)(model, None)
    assert float(jnp.max(jnp.abs(g_unscaled.weight))) < float(jnp.max(jnp.abs(g32.weight)))  # float16 underflow
