"""t2j.clip_grad_norm / clip_grad_value against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j

SHAPES = {"w": (4, 5), "b": (5,), "k": (2, 3, 3)}


def make_grads(scale, seed=0):
    rng = np.random.default_rng(seed)
    return {k: (scale * rng.normal(size=s)).astype(np.float32) for k, s in SHAPES.items()}


def torch_clip_norm(grads, max_norm, norm_type):
    params = []
    for k in SHAPES:
        p = torch.zeros(SHAPES[k], requires_grad=True)
        p.grad = torch.tensor(grads[k])
        params.append(p)
    params.append(torch.zeros(3, requires_grad=True))  # a parameter without a gradient
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    return {k: p.grad.numpy() for k, p in zip(SHAPES, params)}, norm.item()


def as_jax(grads):
    tree = {k: jnp.asarray(v) for k, v in grads.items()}
    tree["frozen"] = None  # eqx.filter_grad gives None for non-differentiable leaves
    return tree


@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])  # clips / leaves alone
@pytest.mark.parametrize("jit", [False, True])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, jit):
    grads = make_grads(2.0)
    expected, expected_norm = torch_clip_norm(grads, max_norm, float(norm_type))
    fn = t2j.clip_grad_norm_with_norm
    if jit:
        fn = jax.jit(fn, static_argnames=("norm_type",))
    clipped, norm = fn(as_jax(grads), max_norm, norm_type=norm_type)
    assert clipped["frozen"] is None
    np.testing.assert_allclose(float(norm), expected_norm, rtol=1e-6)
    for k in SHAPES:
        np.testing.assert_allclose(np.asarray(clipped[k]), expected[k], rtol=1e-6, atol=1e-7)
    only_grads = t2j.clip_grad_norm(as_jax(grads), max_norm, norm_type=norm_type)
    for k in SHAPES:
        np.testing.assert_allclose(np.asarray(only_grads[k]), np.asarray(clipped[k]), rtol=1e-7)


def test_clip_grad_norm_on_an_equinox_module_gradient():
    model = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(0))
    x = jnp.ones((3,))
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2) * 100.0)(model)
    clipped = t2j.clip_grad_norm(grads, 1.0)
    leaves = jax.tree_util.tree_leaves(clipped)
    total = jnp.sqrt(sum(jnp.sum(g**2) for g in leaves))
    assert float(total) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("clip_value", [0.3, 2.0])
def test_clip_grad_value_matches_torch(clip_value):
    grads = make_grads(1.0, seed=1)
    params = []
    for k in SHAPES:
        p = torch.zeros(SHAPES[k], requires_grad=True)
        p.grad = torch.tensor(grads[k])
        params.append(p)
    torch.nn.utils.clip_grad_value_(params, clip_value)
    clipped = jax.jit(t2j.clip_grad_value)(as_jax(grads), clip_value)
    assert clipped["frozen"] is None
    for k, p in zip(SHAPES, params):
        np.testing.assert_array_equal(np.asarray(clipped[k]), p.grad.numpy())


def test_error_if_nonfinite_raises_eagerly_and_under_jit():
    grads = as_jax(make_grads(1.0))
    grads["w"] = grads["w"].at[0, 0].set(jnp.inf)
    with pytest.raises(Exception, match="non-finite"):
        t2j.clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    with pytest.raises(Exception, match="non-finite"):
        jax.block_until_ready(jax.jit(lambda g: t2j.clip_grad_norm(g, 1.0, error_if_nonfinite=True))(grads))
    # without the flag, torch scales by the non-finite norm: 1.0 / (inf + 1e-6) = 0
    params = [torch.zeros(SHAPES["w"], requires_grad=True)]
    params[0].grad = torch.tensor(np.asarray(grads["w"]))
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    np.testing.assert_array_equal(np.asarray(t2j.clip_grad_norm({"w": grads["w"]}, 1.0)["w"]), params[0].grad.numpy())


def test_no_gradients_gives_zero_norm_like_torch():
    clipped, norm = t2j.clip_grad_norm_with_norm({"a": None}, 1.0)
    assert clipped == {"a": None}
    assert float(norm) == torch.nn.utils.clip_grad_norm_([torch.zeros(2, requires_grad=True)], 1.0).item()
