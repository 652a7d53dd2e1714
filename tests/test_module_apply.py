"""model.apply(fn) and self.apply(fn) in __init__: the translated model holds what torch's holds after the same
initialisation (deterministic inits compared exactly, random ones by their moments)."""
from pathlib import Path

import jax
import numpy as np

import torch2jax.runtime as t2j
from torch2jax import translate

CASE = Path(__file__).parent / "cases" / "module_apply.py"


def _namespaces():
    source = CASE.read_text()
    result = translate(source, filename=str(CASE))
    assert not [d for d in result.diagnostics if d.severity == "error"], result.code
    assert "t2j.apply(model, constant_init)" in result.code and "t2j.apply_in_init(self" in result.code
    torch_ns, jax_ns = {}, {}
    exec(compile(source, "torch_version", "exec"), torch_ns)
    exec(compile(result.code, "jax_version", "exec"), jax_ns)
    return torch_ns, jax_ns


def test_apply_in_init_and_constant_apply_match_torch():
    torch_ns, jax_ns = _namespaces()
    for build in ("Net", "build_constant", "build_stack"):
        t_model = torch_ns["Net"](3, 64) if build == "Net" else torch_ns[build]()
        j_model = jax_ns["Net"](3, 64, key=jax.random.key(0)) if build == "Net" else jax_ns[build](
            key=jax.random.key(0))
        expected = {k: v.numpy() for k, v in t_model.state_dict().items()}
        got = t2j.to_state_dict(j_model)
        assert got.keys() == expected.keys()
        for k in expected:
            np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, err_msg=f"{build}: {k}")


def test_random_apply_draws_per_module_with_torch_moments():
    torch_ns, jax_ns = _namespaces()
    j_model = jax_ns["build_normal"](key=jax.random.key(1))
    again = jax_ns["build_normal"](key=jax.random.key(1))
    other = jax_ns["build_normal"](key=jax.random.key(2))
    got, same, diff = (t2j.to_state_dict(m) for m in (j_model, again, other))
    weights = [k for k in got if k.endswith("weight") and got[k].ndim == 2]
    assert len(weights) == 4
    for k in weights:
        np.testing.assert_array_equal(got[k], same[k])  # the same key repeats
        assert not np.allclose(got[k], diff[k])  # another key changes the draw
    assert not np.allclose(got["blocks.0.fc.weight"], got["blocks.1.fc.weight"])  # each module its own draw
    big = got["blocks.0.fc.weight"]
    assert abs(big.std() - 0.5) < 0.05 and abs(big.mean()) < 0.05  # torch's normal_(std=0.5)
