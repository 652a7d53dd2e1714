"""t2j.save / t2j.load (torch.save / torch.load): a checkpoint of JAX arrays, numbers and nested containers comes
back equal, its arrays as JAX arrays; paths and open files both work."""
import io

import jax
import jax.numpy as jnp
import numpy as np

import torch2jax.runtime as t2j


def _checkpoint():
    return {"epoch": 3, "model": {"fc.weight": jnp.arange(6.0).reshape(2, 3), "fc.bias": np.ones(2, np.float32)},
            "history": [0.5, 0.25], "step": jnp.asarray(7, jnp.int32), "name": "net"}


def _assert_same(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        if isinstance(w, (jax.Array, np.ndarray)):
            assert isinstance(g, jax.Array)
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
        else:
            assert g == w


def test_round_trip_through_a_path(tmp_path):
    path = tmp_path / "ckpt.pt"
    t2j.save(_checkpoint(), path)
    _assert_same(t2j.load(str(path), map_location="cpu", weights_only=True), _checkpoint())


def test_round_trip_through_a_file_object():
    buffer = io.BytesIO()
    t2j.save(_checkpoint(), buffer)
    buffer.seek(0)
    _assert_same(t2j.load(buffer), _checkpoint())


def test_a_model_state_dict_round_trips_into_a_fresh_model(tmp_path):
    a = t2j.nn.Linear(3, 2, key=jax.random.key(0))
    b = t2j.nn.Linear(3, 2, key=jax.random.key(1))
    t2j.save(t2j.to_state_dict(a), tmp_path / "a.pt")
    b = t2j.load_state_dict(b, t2j.load(tmp_path / "a.pt"))
    x = jnp.ones((4, 3))
    np.testing.assert_array_equal(np.asarray(a(x)), np.asarray(b(x)))
