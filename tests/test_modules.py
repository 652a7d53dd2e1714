"""nn.Module classes translated to eqx.Module: built from the same weights, they compute what torch computes."""
from pathlib import Path

import numpy as np
import pytest

from module_harness import Pair

SOURCE = (Path(__file__).parent / "cases" / "torch_modules.py").read_text()
RNG = np.random.default_rng(0)

# class, constructor args, inputs, whether train mode is deterministic (no active dropout)
CASES = [
    ("MLP", (), [RNG.standard_normal((4, 6)).astype(np.float32)], False),
    ("ConvNet", (), [RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)], True),
    ("PreNormBlock", (), [RNG.standard_normal((2, 5, 16)).astype(np.float32)], True),
    ("TinyGPT", (), [RNG.integers(0, 11, (2, 6))], True),
    ("LSTMTagger", (), [RNG.integers(0, 13, (3, 7))], True),
    ("ResBlock1d", (), [RNG.standard_normal((2, 8, 9)).astype(np.float32)], True),
    ("Derived", (), [RNG.standard_normal((3, 5)).astype(np.float32)], True),
    ("NamedParts", (), [RNG.standard_normal((5, 6)).astype(np.float32)], True),
]


@pytest.mark.parametrize("cls,args,inputs,train", CASES, ids=[c[0] for c in CASES])
def test_module_matches_torch(cls, args, inputs, train):
    pair = Pair(SOURCE, cls, args)
    pair.compare_eval(inputs)
    if train:
        pair.compare_train(inputs)


def test_translated_modules_are_equinox_modules():
    pair = Pair(SOURCE, "ConvNet")
    code = pair.result.code.split("class ConvNet")[1].split("\nclass ")[0]
    assert code.startswith("(eqx.Module):")
    assert "def __call__(self, x, state, *, key=None):" in code
    assert "super(" not in code and "forward" not in code
    assert pair.stateful
