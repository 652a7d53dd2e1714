"""Build a torch module and its translation from the same weights, and compare them: outputs in eval and train
mode, and gradients with respect to every parameter (by state_dict key) and the floating inputs."""
from __future__ import annotations

import ast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import torch

import torch2jax.runtime as t2j
from torch2jax import translate


def imports_torch(code: str) -> bool:
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "torch":
            return True
    return False


def load_source(code: str, name: str) -> dict:
    ns: dict = {"__name__": name}
    exec(compile(code, name, "exec", dont_inherit=True), ns)
    return ns


def translate_clean(source: str, filename: str = "case.py"):
    result = translate(source, filename=filename)
    errors = [d.format() for d in result.diagnostics if d.severity == "error"]
    assert not errors, "\n".join(errors) + "\n" + result.code
    assert not imports_torch(result.code), result.code
    return result


class Pair:
    """A torch module and its translation holding the same weights."""

    def __init__(self, source: str, cls: str, args=(), kwargs=None, seed: int = 0):
        kwargs = kwargs or {}
        torch.manual_seed(seed)
        self.torch = load_source(source, "torch_case")[cls](*args, **kwargs)
        self.result = translate_clean(source)
        jax_cls = load_source(self.result.code, "jax_case")[cls]
        model, state = eqx.nn.make_with_state(jax_cls)(*args, **kwargs, key=jax.random.key(seed))
        self.stateful = t2j.nn.is_stateful(model)
        if self.stateful:
            self.model, self.state = t2j.load_state_dict(model, self.torch.state_dict(), state=state)
        else:
            self.model, self.state = t2j.load_state_dict(model, self.torch.state_dict()), None

    def call_jax(self, model, arrays, key=None):
        args = [jnp.asarray(a) for a in arrays]
        if self.stateful:
            # a fresh copy each call: Equinox refuses a state object that was already threaded once
            leaves, treedef = jax.tree_util.tree_flatten(self.state)
            out, state = model(*args, jax.tree_util.tree_unflatten(treedef, leaves), key=key)
            return out, state
        return model(*args, key=key), None

    def compare_eval(self, arrays, rtol=1e-3, atol=1e-4):
        self.torch.eval()
        with torch.no_grad():
            expected = self.torch(*[torch.from_numpy(np.asarray(a)) for a in arrays])
        actual, _ = eqx.filter_jit(self.call_jax)(eqx.nn.inference_mode(self.model), arrays)
        assert_tree_close(expected, actual, rtol, atol, "eval output")

    def compare_train(self, arrays, rtol=1e-3, atol=1e-4):
        """Train mode (the caller's modules have no active dropout): outputs, updated buffers, gradients."""
        self.torch.train()
        t_args = [torch.from_numpy(np.asarray(a)).requires_grad_(np.asarray(a).dtype.kind == "f") for a in arrays]
        expected = self.torch(*t_args)
        first = expected[0] if isinstance(expected, (tuple, list)) else expected
        cot = np.random.default_rng(1).standard_normal(tuple(first.shape)).astype(np.float32)
        (first * torch.from_numpy(cot)).sum().backward()
        model = eqx.nn.inference_mode(self.model, False)

        def scalar(model, *args):
            out, state = self.call_jax(model, args)
            out0 = out[0] if isinstance(out, (tuple, list)) else out
            return jnp.sum(out0 * cot), (out, state)

        float_idx = [i for i, a in enumerate(arrays) if np.asarray(a).dtype.kind == "f"]
        (_, (actual, new_state)), grads = eqx.filter_jit(eqx.filter_value_and_grad(scalar, has_aux=True))(
            model, *arrays)
        assert_tree_close(expected, actual, rtol, atol, "train output")
        if self.stateful:
            got = t2j.to_state_dict(self.model, new_state)
            for k, v in self.torch.state_dict().items():
                if "running" in k:
                    np.testing.assert_allclose(got[k], v.numpy(), rtol=rtol, atol=atol, err_msg=f"buffer {k}")
        got = t2j.to_state_dict(grads, self.state) if self.stateful else t2j.to_state_dict(grads)
        for name, p in self.torch.named_parameters():
            if p.grad is not None:
                np.testing.assert_allclose(got[name], p.grad.numpy(), rtol=rtol, atol=atol,
                                           err_msg=f"gradient of {name}")
        if float_idx:
            in_grads = jax.jit(jax.grad(lambda *a: scalar(model, *a)[0], argnums=tuple(float_idx)))(
                *[jnp.asarray(a) for a in arrays])
            for i, g in zip(float_idx, in_grads):
                np.testing.assert_allclose(np.asarray(g), t_args[i].grad.numpy(), rtol=rtol, atol=atol,
                                           err_msg=f"gradient of input {i}")


def assert_tree_close(expected, actual, rtol, atol, what):
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)) and len(actual) == len(expected), f"{what}: structure differs"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_tree_close(e, a, rtol, atol, f"{what}[{i}]")
        return
    if expected is None:
        assert actual is None, what
        return
    e = expected.detach().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    a = np.asarray(actual)
    assert e.shape == a.shape, f"{what}: shape torch {e.shape} vs JAX {a.shape}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)
