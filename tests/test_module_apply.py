"""model.apply(fn) and self.apply(fn) in __init__: the translated model holds what torch's holds after the same
initialisation (deterministic inits compared exactly, random ones by their moments)."""
from pathlib import Path

import equinox as eqx
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


def test_init_helper_method_looping_over_modules_matches_torch():
    """`self._initialize_weights()` called at the end of __init__ (torchvision's VGG, ResNet): its loop over
    self.modules() runs while the module is built, as in __init__ itself; BatchNorm's statistics included."""
    torch_ns, jax_ns = _namespaces()
    t_model = torch_ns["VGGish"]()
    j_model, state = eqx.nn.make_with_state(jax_ns["VGGish"])(key=jax.random.key(0))
    expected = {k: v.numpy() for k, v in t_model.state_dict().items()}
    got = t2j.to_state_dict(j_model, state)
    assert got.keys() == expected.keys()
    for k in expected:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-6, err_msg=k)


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


def test_modules_loop_in_a_method_called_after_init_is_an_error():
    """A loop over self.modules() in a method other code calls after __init__ cannot rebuild an Equinox module:
    reported as an error on the loop, left as it is."""
    source = ("import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.fc = nn.Linear(4, 2)\n\n    def reset(self):\n        for m in self.modules():\n"
              "            if isinstance(m, nn.Linear):\n                nn.init.zeros_(m.bias)\n\n"
              "    def forward(self, x):\n        self.reset()\n        return self.fc(x)\n")
    result = translate(source, filename="m.py")
    errors = [(d.code, d.line) for d in result.diagnostics if d.severity == "error"]
    assert ("T2J211", 10) in errors, result.code
    assert "for m in self.modules():" in result.code
