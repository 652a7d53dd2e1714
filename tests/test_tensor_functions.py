"""A file of everyday tensor functions (tests/cases/tensor_functions.py), translated as a whole: each function's
outputs and its gradients (torch autograd against jax.grad, one random cotangent) match torch's."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from torch2jax import translate

CASE = Path(__file__).parent / "cases" / "tensor_functions.py"
RNG = np.random.default_rng(0)


def f32(*shape, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def ints(high, *shape):
    return RNG.integers(0, high, shape)


# function -> (arguments, indices of the differentiable ones); plain Python values pass through
CALLS = {
    "masked_mean": ([f32(2, 5, 3), ints(2, 2, 5).astype(bool)], [0]),
    "normalized_scores": ([f32(3, 6)], [0]),
    "max_pooled": ([f32(2, 4, 5)], [0]),
    "heads": ([f32(2, 3, 8), 2], [0]),
    "attention": ([f32(2, 4, 3), f32(2, 5, 3), f32(2, 5, 3), np.tril(np.ones((4, 5), np.int64))], [0, 1, 2]),
    "expand_and_stack": ([f32(3, 4), f32(3, 4)], [0, 1]),
    "losses": ([f32(4, 3), ints(3, 4), f32(4), f32(4)], [0, 2, 3]),
    "clamp_where": ([f32(3, 4) + 0.01], [0]),
    "top_gather": ([RNG.permutation(24).reshape(2, 12).astype(np.float32), f32(2, 12)], [0, 1]),
    "pad_norm": ([f32(2, 3, 4), f32(7), f32(7)], [0, 1, 2]),
    "mixing": ([f32(2, 3, 4), f32(2, 4, 5)], [0, 1]),
    "reductions": ([f32(2, 3, 4, lo=0.5, hi=1.5)], [0]),
}


@pytest.fixture(scope="module")
def namespaces():
    source = CASE.read_text()
    result = translate(source, filename=str(CASE))
    assert not [d for d in result.diagnostics if d.severity == "error"], result.code
    assert "torch" not in result.code.replace("torch2jax", ""), result.code
    torch_ns, jax_ns = {}, {}
    exec(compile(source, "torch_version", "exec"), torch_ns)
    exec(compile(result.code, "jax_version", "exec"), jax_ns)
    return torch_ns, jax_ns


def _leaves(out):
    return [o for item in out for o in _leaves(item)] if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_function_matches_torch(namespaces, name):
    torch_ns, jax_ns = namespaces
    args, diff = CALLS[name]
    t_args = [torch.from_numpy(a.copy()).requires_grad_(i in diff) if isinstance(a, np.ndarray) else a
              for i, a in enumerate(args)]
    j_args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    expected = [t for t in _leaves(torch_ns[name](*t_args))]
    actual = _leaves(jax_ns[name](*j_args))
    assert len(actual) == len(expected)
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(np.asarray(a), e.detach().numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    # gradients of <outputs, cotangents> w.r.t. every differentiable argument
    floats = [k for k, e in enumerate(expected) if e.dtype.is_floating_point]
    cots = {k: RNG.standard_normal(tuple(expected[k].shape)).astype(np.float32) for k in floats}
    total = sum((expected[k] * torch.from_numpy(c)).sum() for k, c in cots.items())
    t_grads = torch.autograd.grad(total, [t_args[i] for i in diff], allow_unused=True)

    def scalar(*diff_args):
        full = list(j_args)
        for i, v in zip(diff, diff_args):
            full[i] = v
        leaves = _leaves(jax_ns[name](*full))
        return sum(jnp.sum(leaves[k] * c) for k, c in cots.items())

    j_grads = jax.grad(scalar, argnums=tuple(range(len(diff))))(*(j_args[i] for i in diff))
    for i, tg, jg in zip(diff, t_grads, j_grads):
        want = np.zeros(args[i].shape, np.float32) if tg is None else tg.numpy()
        np.testing.assert_allclose(np.asarray(jg), want, rtol=1e-4, atol=1e-4, err_msg=f"{name}: grad of arg {i}")
