"""Submodules that come from constructor arguments (a module or None, a layer class such as norm_layer), and
F.scaled_dot_product_attention's dropout: the translations compute what torch computes, BatchNorm statistics
included, and hold state exactly when the built modules do."""
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from module_harness import Pair

SOURCE = (Path(__file__).parent / "cases" / "module_arguments.py").read_text()
RNG = np.random.default_rng(0)
IMAGES = RNG.standard_normal((4, 3, 8, 8)).astype(np.float32)
TOKENS = RNG.standard_normal((3, 5, 8)).astype(np.float32)

# class, constructor args, inputs, whether the model holds state (BatchNorm running statistics)
CASES = [
    ("ShortcutNet", (), [IMAGES], True),  # a Sequential(conv, BatchNorm) handed to a block as its shortcut
    ("GatedNet", (), [RNG.standard_normal((4, 5)).astype(np.float32)], False),  # a Linear handed to a block
    ("NormConv", (3, 6), [IMAGES], True),  # norm_layer=nn.BatchNorm2d by default
    ("NormNet", (), [IMAGES], True),  # norm_layer=None -> nn.BatchNorm2d, passed on to a block and a Sequential
    ("GroupNormStack", (), [IMAGES], False),  # the same block given GroupNorm classes: no state at all
    ("GivenNormNet", (), [IMAGES], True),  # norm_layer=None (no norm) unless a caller gives nn.BatchNorm2d
    ("BatchNormFeatureClassifier", (), [IMAGES], True),  # VGG(make_layers(cfg, batch_norm=True))
    ("LayerLoopNet", (), [IMAGES], True),  # a ModuleList argument called in a loop
    ("DropAttention", (8, 2, 0.0), [TOKENS], False),  # dropout_p computed, zero: train mode is deterministic
]


@pytest.mark.parametrize("cls,args,inputs,stateful", CASES, ids=[c[0] for c in CASES])
def test_module_built_from_arguments_matches_torch(cls, args, inputs, stateful):
    pair = Pair(SOURCE, cls, args)
    assert pair.stateful == stateful
    pair.compare_eval(inputs)
    pair.compare_train(inputs)  # outputs, BatchNorm running statistics, gradients of parameters and inputs


def test_module_argument_is_a_trained_field_not_static():
    code = Pair(SOURCE, "GatedNet").result.code
    block = code.split("class Gated(")[1].split("\nclass ")[0]
    assert "gate: object = None" in block and "static=True" not in block


def test_attention_dropout_averages_to_the_eval_output_and_needs_a_key():
    """dropout_p > 0 in train mode: each key draws another mask; over many keys the mean output is the eval
    output (inverted dropout keeps the expectation), as it is for torch's draws."""
    pair = Pair(SOURCE, "DropAttention", (8, 2, 0.5))
    x = jnp.asarray(TOKENS)
    eval_out = eqx.nn.inference_mode(pair.model)(x)
    train = eqx.nn.inference_mode(pair.model, False)
    keys = jax.random.split(jax.random.key(0), 4000)
    outs = jax.vmap(lambda k: train(x, key=k))(keys)
    assert not np.allclose(outs[0], outs[1])  # masks differ between keys
    assert not np.allclose(outs[0], eval_out)
    stderr = outs.std(0) / np.sqrt(len(keys))
    assert np.all(np.abs(outs.mean(0) - eval_out) < 5 * stderr + 1e-5)

    pair.torch.train()
    torch.manual_seed(0)
    with torch.no_grad():
        t_x = torch.from_numpy(TOKENS)
        t_outs = torch.stack([pair.torch(t_x) for _ in range(4000)]).numpy()
    # the two spreads agree: the same dropout rate, applied to the same attention weights
    np.testing.assert_allclose(outs.std(0), t_outs.std(0), rtol=0.15, atol=1e-3)
    with pytest.raises(ValueError, match="dropout_key"):
        train(x)  # train mode without a key cannot draw a mask

