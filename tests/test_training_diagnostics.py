"""Training loops the translator cannot make exact are reported and left for a human, never half-translated.
(The loops it does translate are checked against torch's losses in test_training.py.)"""
from __future__ import annotations

import textwrap

from torch2jax import translate

HEADER = """\
import torch
import torch.nn as nn

enc = nn.Linear(3, 4)
dec = nn.Linear(4, 1)
enc_opt = torch.optim.Adam(enc.parameters())
dec_opt = torch.optim.Adam(dec.parameters())
x = torch.ones(2, 3)
"""


def _translate(body: str):
    result = translate(HEADER + textwrap.dedent(body))
    return result.code, {d.code for d in result.diagnostics}


def test_clipping_of_a_list_of_both_models_parameters_leaves_the_step():
    """Which model's gradients `params` holds is unknown: clipping the wrong ones would be silently wrong."""
    code, codes = _translate("""\
        params = list(enc.parameters()) + list(dec.parameters())
        for i in range(3):
            loss = dec(enc(x)).mean()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            enc_opt.step()
            dec_opt.step()
        """)
    assert "T2J509" in codes
    assert "train_step" not in code and "enc_opt.step()" in code


def test_clipping_both_models_at_once_clips_their_joint_norm():
    code, codes = _translate("""\
        import itertools
        for i in range(3):
            loss = dec(enc(x)).mean()
            loss.backward()
            nn.utils.clip_grad_norm_(itertools.chain(enc.parameters(), dec.parameters()), 1.0)
            enc_opt.step()
            dec_opt.step()
        """)
    assert "T2J509" not in codes
    assert "(enc_grads, dec_grads) = t2j.clip_grad_norm((enc_grads, dec_grads), 1.0)" in code


def test_a_loop_that_only_reads_gradients_is_no_update():
    """A gradient-norm loop between backward() and step() is not taken for a hand-written update; it is reported,
    since after the step there are no .grad attributes."""
    code, codes = _translate("""\
        for i in range(3):
            loss = dec(enc(x)).mean()
            loss.backward()
            total = 0.0
            for p in enc.parameters():
                total += p.grad.norm().item() ** 2
            enc_opt.step()
        """)
    assert "T2J507" in codes
    assert "replace_parameters" not in code
