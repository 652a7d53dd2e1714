"""load_state_dict / to_state_dict against torch's state_dict on a nested model, the way translated code looks:
plain lists and dicts of layers (ModuleList/ModuleDict), Sequential, BatchNorm state, persistent and
non-persistent buffers."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax import Array

import torch2jax.runtime as t2j


class TorchBlock(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = torch.nn.Linear(d, d)
        self.norm = torch.nn.BatchNorm1d(d)

    def forward(self, x):
        return torch.relu(self.norm(self.fc(x)))


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 4)
        self.blocks = torch.nn.ModuleList([TorchBlock(4), TorchBlock(4)])
        self.heads = torch.nn.ModuleDict({"cls": torch.nn.Linear(4, 3), "reg": torch.nn.Linear(4, 1)})
        self.proj = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.register_buffer("mask", torch.ones(4), persistent=False)

    def forward(self, tokens):
        x = self.embed(tokens).mean(1) * self.scale * self.mask
        for block in self.blocks:
            x = block(x)
        x = self.proj(x)
        return self.heads["cls"](x), self.heads["reg"](x)


class Block(eqx.Module):
    fc: t2j.nn.Linear
    norm: t2j.nn.BatchNorm1d

    def __init__(self, d, *, key):
        self.fc = t2j.nn.Linear(d, d, key=key)
        self.norm = t2j.nn.BatchNorm1d(d)

    def __call__(self, x, state):
        x, state = self.norm(self.fc(x), state)
        return jax.nn.relu(x), state


class Net(eqx.Module):
    """What the translator writes for TorchNet."""

    _t2j_nonpersistent = ("mask",)

    embed: t2j.nn.Embedding
    blocks: list
    heads: dict
    proj: t2j.nn.Sequential
    scale: Array
    mask: Array

    def __init__(self, *, key):
        keys = jax.random.split(key, 6)
        self.embed = t2j.nn.Embedding(10, 4, key=keys[0])
        self.blocks = [Block(4, key=keys[1]), Block(4, key=keys[2])]
        self.heads = {"cls": t2j.nn.Linear(4, 3, key=keys[3]), "reg": t2j.nn.Linear(4, 1, key=keys[4])}
        self.proj = t2j.nn.Sequential(t2j.nn.Linear(4, 4, key=keys[5]), t2j.nn.LayerNorm(4))
        self.scale = jnp.full((4,), 2.0)
        self.mask = jnp.ones(4)

    def __call__(self, tokens, state):
        x = self.embed(tokens).mean(1) * self.scale * self.mask
        for block in self.blocks:
            x, state = block(x, state)
        x = self.proj(x)
        return (self.heads["cls"](x), self.heads["reg"](x)), state


def _torch_net():
    torch.manual_seed(0)
    net = TorchNet()
    with torch.no_grad():
        net.scale.uniform_(0.5, 1.5)
        for block in net.blocks:
            block.norm.running_mean.normal_()
            block.norm.running_var.uniform_(0.5, 2.0)
            block.norm.num_batches_tracked.fill_(7)
    return net


def _loaded():
    tm = _torch_net()
    model, state = eqx.nn.make_with_state(Net)(key=jax.random.key(0))
    model, state = t2j.load_state_dict(model, tm.state_dict(), state=state)
    return tm, model, state


def test_keys_match_torch_and_non_persistent_buffers_are_left_out():
    tm, model, state = _loaded()
    # the same keys (in field order, where torch lists a module's own tensors before its children's)
    assert sorted(t2j.to_state_dict(model, state)) == sorted(tm.state_dict())
    assert "mask" not in tm.state_dict()


def test_loaded_model_computes_what_torch_computes_in_train_and_eval_mode():
    tm, model, state = _loaded()
    tokens = np.random.default_rng(0).integers(0, 10, (6, 5))
    (cls, reg), state = model(jnp.asarray(tokens), state)
    tcls, treg = tm(torch.as_tensor(tokens))
    np.testing.assert_allclose(cls, tcls.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reg, treg.detach().numpy(), rtol=1e-4, atol=1e-5)
    for key, value in t2j.to_state_dict(model, state).items():  # updated running statistics included
        np.testing.assert_allclose(value, tm.state_dict()[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)

    tm.eval()
    (cls, _), _ = eqx.nn.inference_mode(model)(jnp.asarray(tokens), state)
    np.testing.assert_allclose(cls, tm(torch.as_tensor(tokens))[0].detach().numpy(), rtol=1e-4, atol=1e-5)


def test_round_trip_through_torch():
    tm, model, state = _loaded()
    exported = t2j.to_state_dict(model, state)
    fresh = TorchNet()
    fresh.load_state_dict({key: torch.as_tensor(value) for key, value in exported.items()}, strict=True)
    for key, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), tm.state_dict()[key].numpy())
    again, again_state = eqx.nn.make_with_state(Net)(key=jax.random.key(1))
    again, again_state = t2j.load_state_dict(again, exported, state=again_state)  # numpy values
    for key, value in t2j.to_state_dict(again, again_state).items():
        np.testing.assert_array_equal(value, exported[key])


def test_every_problem_is_reported_at_once():
    tm = _torch_net()
    model, state = eqx.nn.make_with_state(Net)(key=jax.random.key(0))
    bad = dict(tm.state_dict())
    del bad["heads.reg.bias"], bad["blocks.1.norm.running_var"]
    bad["heads.cls.weight"] = torch.zeros(4, 3)
    bad["blocks.0.extra"] = torch.zeros(1)
    with pytest.raises(t2j.StateDictError) as error:
        t2j.load_state_dict(model, bad, state=state)
    assert error.value.missing == ["blocks.1.norm.running_var", "heads.reg.bias"]
    assert error.value.unexpected == ["blocks.0.extra"]
    assert error.value.mismatched == [("heads.cls.weight", (4, 3), (3, 4))]
    message = str(error.value)
    for key in ("heads.reg.bias", "blocks.1.norm.running_var", "blocks.0.extra", "heads.cls.weight"):
        assert key in message


def test_non_strict_allows_missing_and_unexpected_but_not_mismatched_shapes():
    tm = _torch_net()
    model, state = eqx.nn.make_with_state(Net)(key=jax.random.key(0))
    partial = {key: value for key, value in tm.state_dict().items() if key.startswith("heads.")}
    partial["unknown"] = torch.zeros(2)
    loaded, _ = t2j.load_state_dict(model, partial, state=state, strict=False)
    np.testing.assert_array_equal(loaded.heads["cls"].weight, tm.heads["cls"].weight.detach().numpy())
    np.testing.assert_array_equal(loaded.embed.weight, model.embed.weight)  # untouched
    _, state = eqx.nn.make_with_state(Net)(key=jax.random.key(0))
    with pytest.raises(t2j.StateDictError, match="heads.cls.bias"):
        t2j.load_state_dict(model, {"heads.cls.bias": torch.zeros(5)}, state=state, strict=False)


def test_buffers_in_state_need_state():
    tm = _torch_net()
    model, _ = eqx.nn.make_with_state(Net)(key=jax.random.key(0))
    with pytest.raises(t2j.StateDictError, match="state="):
        t2j.load_state_dict(model, tm.state_dict())
    with pytest.raises(ValueError, match="state="):
        t2j.to_state_dict(model)


@pytest.mark.parametrize("dtype, torch_dtype", [(jnp.bfloat16, torch.float32), (jnp.float16, torch.bfloat16),
                                                (jnp.float32, torch.float64)])
def test_the_model_keeps_its_dtypes(dtype, torch_dtype):
    linear = torch.nn.Linear(3, 2).to(torch_dtype)
    model = t2j.load_state_dict(t2j.nn.Linear(3, 2, dtype=dtype, key=jax.random.key(0)), linear.state_dict())
    assert model.weight.dtype == dtype and model.bias.dtype == dtype
    np.testing.assert_allclose(np.asarray(model.weight, np.float32), linear.weight.float().detach().numpy(),
                               rtol=1e-2)


def test_parameters_with_requires_grad_and_no_aliasing():
    linear, bn = torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)
    model = t2j.load_state_dict(t2j.nn.Linear(3, 2, key=jax.random.key(0)), dict(linear.named_parameters()))
    expected = linear.weight.detach().numpy().copy()
    with torch.no_grad():
        linear.weight.add_(1.0)  # torch mutates in place; the loaded model must not see it
    np.testing.assert_array_equal(model.weight, expected)
    norm, state = eqx.nn.make_with_state(t2j.nn.BatchNorm1d)(2)
    norm, state = t2j.load_state_dict(norm, bn.state_dict(), state=state)
    bn(torch.randn(4, 2))  # updates running_mean in place
    np.testing.assert_array_equal(t2j.to_state_dict(norm, state)["running_mean"], np.zeros(2))
