"""t2j.nn.EmbeddingBag / F.embedding_bag against torch: bags as rows of a 2-D input and as offset runs of a 1-D
input (include_last_offset, empty bags), every mode, padding_idx, per_sample_weights; outputs and the gradient
with respect to the weight (and to per_sample_weights)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j

RNG = np.random.default_rng(0)
WEIGHT = RNG.standard_normal((10, 4)).astype(np.float32)
FLAT = np.array([1, 2, 4, 5, 4, 3, 2, 9, 0, 0, 7], np.int64)
CASES = [  # (input, offsets, include_last_offset)
    (FLAT.reshape(-1)[:10].reshape(2, 5), None, False),
    (FLAT, np.array([0, 4, 4, 9]), False),  # an empty bag
    (FLAT, np.array([0, 3, 7, 11]), True),  # the last offset is len(input)
    (FLAT, np.array([0]), False),
]


def _torch(inp, offsets, mode, padding_idx, psw, last):
    w = torch.tensor(WEIGHT, requires_grad=True)
    p = None if psw is None else torch.tensor(psw, requires_grad=True)
    out = torch.nn.functional.embedding_bag(torch.tensor(inp), w, None if offsets is None else torch.tensor(offsets),
                                            mode=mode, per_sample_weights=p, include_last_offset=last,
                                            padding_idx=padding_idx)
    cot = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
    (out * torch.tensor(cot)).sum().backward()
    return out.detach().numpy(), cot, w.grad.numpy(), None if p is None else p.grad.numpy()


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
@pytest.mark.parametrize("padding_idx", [None, 0, 4])
def test_embedding_bag_matches_torch(case, mode, padding_idx):
    inp, offsets, last = CASES[case]
    want, cot, want_gw, _ = _torch(inp, offsets, mode, padding_idx, None, last)

    def f(w):
        return t2j.nn.functional.embedding_bag(jnp.asarray(inp), w, None if offsets is None else jnp.asarray(offsets),
                                               mode=mode, include_last_offset=last, padding_idx=padding_idx)

    got, vjp = jax.vjp(f, jnp.asarray(WEIGHT))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(cot))[0]), want_gw, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", [0, 1])
def test_per_sample_weights_match_torch(case):
    inp, offsets, last = CASES[case]
    psw = np.random.default_rng(2).standard_normal(inp.shape).astype(np.float32)
    want, cot, want_gw, want_gp = _torch(inp, offsets, "sum", None, psw, last)

    def f(w, p):
        return t2j.nn.functional.embedding_bag(jnp.asarray(inp), w, None if offsets is None else jnp.asarray(offsets),
                                               mode="sum", per_sample_weights=p)

    got, vjp = jax.vjp(f, jnp.asarray(WEIGHT), jnp.asarray(psw))
    gw, gp = vjp(jnp.asarray(cot))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gw), want_gw, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gp), want_gp, rtol=1e-5, atol=1e-6)


def test_module_with_offsets_under_jit_matches_torch():
    torch_bag = torch.nn.EmbeddingBag(10, 4, mode="mean")
    bag = t2j.nn.EmbeddingBag(10, 4, mode="mean", key=jax.random.key(0))
    bag = t2j.load_state_dict(bag, torch_bag.state_dict())
    inp, offsets, _ = CASES[1]
    want = torch_bag(torch.tensor(inp), torch.tensor(offsets)).detach().numpy()
    got = jax.jit(lambda m, x, o: m(x, o))(bag, jnp.asarray(inp), jnp.asarray(offsets))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


def test_init_and_padding_row_like_torch():
    bag = t2j.nn.EmbeddingBag(1000, 8, padding_idx=3, key=jax.random.key(0))
    assert bag.weight.shape == (1000, 8)
    assert np.all(np.asarray(bag.weight[3]) == 0)
    assert abs(float(jnp.std(bag.weight)) - 1.0) < 0.05  # torch's N(0, 1)
    with pytest.raises(ValueError):
        t2j.nn.EmbeddingBag(10, 4, mode="median")
