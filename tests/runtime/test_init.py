"""t2j.init against torch.nn.init, and the layers' default initialisation against torch's default layers: the same
fans and gains exactly, and draws with the same distribution (moments and bounds on large shapes)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j

SHAPES = [(7, 5), (16, 3, 3, 3), (4, 6, 2, 3, 5), (1, 9)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_are_torch_fans(shape):
    assert t2j.init.fan_in_and_fan_out(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="fewer than 2"):
        t2j.init.fan_in_and_fan_out((5,))


@pytest.mark.parametrize("nonlinearity, param", [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                                                 ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                                                 ("leaky_relu", math.sqrt(5)), ("selu", None)])
def test_gains_are_torch_gains(nonlinearity, param):
    assert t2j.init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity,
                                                                                                        param))


# (t2j.init function, torch.nn.init function, keyword arguments shared by both); shape (256, 64, 3, 3) unless given
RANDOM_INITS = [
    ("uniform", "uniform_", {"a": -0.5, "b": 2.0}),
    ("normal", "normal_", {"mean": 1.0, "std": 0.3}),
    ("trunc_normal", "trunc_normal_", {"mean": 0.5, "std": 1.0, "a": -0.5, "b": 2.0}),
    ("xavier_uniform", "xavier_uniform_", {"gain": 2.0}),
    ("xavier_normal", "xavier_normal_", {}),
    ("kaiming_uniform", "kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform", "kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal", "kaiming_normal_", {}),
    ("kaiming_normal", "kaiming_normal_", {"a": 0.1, "mode": "fan_out"}),
]


def _assert_same_distribution(ours, theirs, bounded):
    """Mean and std within sampling noise; for bounded distributions, the same range."""
    ours, theirs = np.asarray(ours, np.float64).ravel(), np.asarray(theirs, np.float64).ravel()
    n, scale = ours.size, theirs.std()
    assert abs(ours.mean() - theirs.mean()) < 6 * scale / math.sqrt(n)
    assert ours.std() == pytest.approx(scale, rel=6 / math.sqrt(2 * n) + 0.01)
    if bounded:  # a sample's extremes sit about spread / n inside the bounds
        tolerance = (theirs.max() - theirs.min()) * (6 / n + 0.002)
        assert abs(ours.min() - theirs.min()) < tolerance and abs(ours.max() - theirs.max()) < tolerance


@pytest.mark.parametrize("ours, theirs, kwargs", RANDOM_INITS)
def test_random_init_matches_torch_distribution(ours, theirs, kwargs):
    shape = (256, 64, 3, 3)
    torch.manual_seed(0)
    expected = getattr(torch.nn.init, theirs)(torch.empty(shape), **kwargs).numpy()
    drawn = getattr(t2j.init, ours)(jax.random.key(0), shape, **kwargs)
    assert drawn.shape == shape and drawn.dtype == jnp.float32
    _assert_same_distribution(drawn, expected, bounded="uniform" in ours or "trunc" in ours)


def test_uniform_bounds_are_exact():
    # U(-1/sqrt(fan_in), +) for kaiming_uniform(a=sqrt(5)), torch's Linear default
    drawn = np.asarray(t2j.init.kaiming_uniform(jax.random.key(0), (300, 400), a=math.sqrt(5)))
    bound = 1 / math.sqrt(400)
    assert np.abs(drawn).max() <= bound and np.abs(drawn).max() > 0.99 * bound
    truncated = np.asarray(t2j.init.trunc_normal(jax.random.key(0), (10000,), std=2.0, a=-1.0, b=0.5))
    assert truncated.min() >= -1.0 and truncated.max() <= 0.5


@pytest.mark.parametrize("shape", [(6, 10), (10, 6), (8, 3, 2, 2)])
def test_orthogonal_is_orthogonal_like_torch(shape):
    gain = 1.5
    drawn = np.asarray(t2j.init.orthogonal(jax.random.key(0), shape, gain=gain)).reshape(shape[0], -1)
    expected = torch.nn.init.orthogonal_(torch.empty(shape), gain=gain).numpy().reshape(shape[0], -1)
    small = min(drawn.shape)
    for matrix in (drawn, expected):
        gram = matrix @ matrix.T if matrix.shape[0] == small else matrix.T @ matrix
        np.testing.assert_allclose(gram, gain**2 * np.eye(small), atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 9), (9, 4), (6, 6), (8, 3, 3, 3)])
def test_orthogonal_given_torch_draw_is_torch_result(shape, monkeypatch):
    """Fed torch's normal draw (as the checker's replay does), t2j.init.orthogonal asks for the draw torch makes,
    (rows, cols), and computes torch's result from it: the same transposes, QR and sign fix."""
    gain = 1.5
    rows, cols = shape[0], math.prod(shape[1:])
    torch.manual_seed(3)
    torch_draw = torch.empty(rows, cols).normal_(0, 1).numpy()  # what orthogonal_ draws under the same seed
    torch.manual_seed(3)
    expected = torch.nn.init.orthogonal_(torch.empty(shape), gain=gain).numpy()
    asked = []

    def replayed(key, draw_shape=(), dtype=jnp.float32, *args, **kwargs):
        asked.append(tuple(draw_shape))
        return jnp.asarray(torch_draw, dtype)

    monkeypatch.setattr(jax.random, "normal", replayed)
    drawn = np.asarray(t2j.init.orthogonal(jax.random.key(0), shape, gain=gain))
    assert asked == [(rows, cols)]
    assert drawn.shape == shape
    np.testing.assert_allclose(drawn, expected, atol=2e-5, rtol=1e-4)


def test_deterministic_inits_equal_torch():
    shape = (3, 4)
    np.testing.assert_array_equal(t2j.init.zeros(shape), torch.nn.init.zeros_(torch.empty(shape)).numpy())
    np.testing.assert_array_equal(t2j.init.ones(shape), torch.nn.init.ones_(torch.empty(shape)).numpy())
    np.testing.assert_array_equal(t2j.init.constant(shape, 0.7), torch.nn.init.constant_(torch.empty(shape), 0.7))
    np.testing.assert_array_equal(t2j.init.eye(shape), torch.nn.init.eye_(torch.empty(shape)).numpy())
    assert t2j.init.zeros(shape, dtype=jnp.bfloat16).dtype == jnp.bfloat16


def test_keys_decide_the_draw():
    same = [np.asarray(t2j.init.xavier_normal(jax.random.key(3), (20, 30))) for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(same[0], np.asarray(t2j.init.xavier_normal(jax.random.key(4), (20, 30))))


# ---------------------------------------------------------------- default initialisation of the layers

# (layer name, constructor args); compared parameter by parameter with torch's freshly built layer
LAYER_DEFAULTS = [
    ("Linear", (512, 256)),
    ("Bilinear", (64, 32, 48)),
    ("Conv1d", (32, 64, 5)),
    ("Conv2d", (32, 64, 3)),
    ("Conv2d", (32, 64, 3, 1, 0, 1, 4)),  # groups=4: fan_in is per group
    ("ConvTranspose2d", (64, 32, 3, 1, 0, 0, 2)),  # fan_in of a transposed weight is out/groups * kernel
    ("Embedding", (1000, 64)),
]


@pytest.mark.parametrize("name, args", LAYER_DEFAULTS)
def test_layer_default_init_matches_torch(name, args):
    torch.manual_seed(0)
    expected = getattr(torch.nn, name)(*args).state_dict()
    ours = t2j.to_state_dict(getattr(t2j.nn, name)(*args, key=jax.random.key(0)))
    assert sorted(ours) == sorted(expected)
    for key, value in ours.items():
        assert value.shape == tuple(expected[key].shape)
        _assert_same_distribution(value, expected[key].numpy(), bounded=name != "Embedding")


def test_embedding_padding_row_starts_at_zero():
    weight = np.asarray(t2j.nn.Embedding(10, 4, padding_idx=-1, key=jax.random.key(0)).weight)
    np.testing.assert_array_equal(weight[9], 0)
    assert np.all(weight[:9] != 0)


@pytest.mark.parametrize("name, args", [("BatchNorm2d", (5,)), ("LayerNorm", ((3, 4),)), ("GroupNorm", (2, 6)),
                                        ("RMSNorm", (7,)), ("PReLU", (3,)), ("InstanceNorm1d", (4, 1e-5, 0.1, True))])
def test_deterministic_layer_init_equals_torch(name, args):
    import equinox as eqx

    model, state = eqx.nn.make_with_state(getattr(t2j.nn, name))(*args)
    ours = t2j.to_state_dict(model, state)
    expected = getattr(torch.nn, name)(*args).state_dict()
    assert sorted(ours) == sorted(expected)
    for key, value in ours.items():
        np.testing.assert_array_equal(value, expected[key].numpy())


def test_random_layers_need_a_key():
    with pytest.raises(ValueError, match="key"):
        t2j.nn.Linear(3, 4)
