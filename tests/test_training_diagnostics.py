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


def test_gradient_accumulation_becomes_two_jitted_halves():
    """backward() every batch and the step every second one (in an `if`, or after an inner loop of micro-steps, as
    nanoGPT): a grad_step whose gradients are summed, and an apply_step in the step's place (the numbers are checked
    against torch in tests/cases/train_grad_accum.py)."""
    for body in ("""\
        for i in range(4):
            loss = dec(enc(x)).mean() / 2
            loss.backward()
            if i % 2 == 1:
                enc_opt.step()
                enc_opt.zero_grad()
        """, """\
        for it in range(3):
            for micro in range(2):
                loss = dec(enc(x)).mean()
                loss.backward()
            nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
            enc_opt.step()
        """):
        code, codes = _translate(body)
        assert "T2J516" in codes and "T2J515" not in codes, code
        assert "loss.backward()" not in code and "enc_opt.step()" not in code
        assert "enc_grads_acc = t2j.accumulate_grads(enc_grads_acc, grads)" in code
        assert "enc, enc_opt_state = apply_step(enc, enc_opt_state, enc_opt, enc_grads_acc)" in code
        # the accumulator starts empty before the loop around the accumulation, and again after each step
        assert code.count("enc_grads_acc = None") == 2, code


def test_a_backward_or_a_step_alone_in_its_function_is_reported():
    """A backward() whose step is in no block of its function (or a step with no backward()): not translated,
    marked with T2J515."""
    code, codes = _translate("""\
        def compute(x):
            loss = enc(x).mean()
            loss.backward()
            return loss

        def update():
            enc_opt.step()
        """)
    assert "T2J515" in codes
    assert "loss.backward()" in code and "enc_opt.step()" in code
    assert len([line for line in code.splitlines() if "T2J515" in line]) == 2, code


def test_a_backward_and_step_in_one_block_is_not_reported_as_accumulation():
    code, codes = _translate("""\
        for i in range(4):
            enc_opt.zero_grad()
            loss = enc(x).mean()
            loss.backward()
            enc_opt.step()
        """)
    assert "T2J515" not in codes and "T2J516" not in codes and "train_step" in code


POLICY = """\
import torch
import torch.nn as nn


class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.saved_log_probs = []
        self.rewards = []

    def forward(self, x):
        return torch.log_softmax(self.fc(x), -1)


def finish(policy, optimizer):
    returns = torch.tensor(policy.rewards)
    loss = -(torch.stack(policy.saved_log_probs) * returns).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    del policy.saved_log_probs[:]


def finish_recomputed(policy, optimizer, states, actions, returns):
    logp = policy(states).gather(1, actions[:, None]).squeeze(1)
    loss = -(logp * returns).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


policy = Policy()
optimizer = torch.optim.Adam(policy.parameters())
for episode in range(2):
    for t in range(3):
        policy.saved_log_probs.append(policy(torch.ones(3))[0])
        policy.rewards.append(1.0)
    finish(policy, optimizer)
"""


def test_a_loss_from_outputs_stored_before_the_step_is_an_error():
    """REINFORCE's saved_log_probs: torch backpropagates through the forward calls that filled the list; in the
    jitted step the stored values are constants and the gradient would be zero: an error, on the backward() line.
    The same loss computed from a call of the policy inside the step is not reported."""
    result = translate(POLICY, filename="policy.py")
    errors = [d for d in result.diagnostics if d.code == "T2J517"]
    assert len(errors) == 1, [d.format() for d in result.diagnostics]
    assert errors[0].line == POLICY.splitlines().index("    loss.backward()") + 1
    assert "policy.saved_log_probs" in errors[0].message and "policy.rewards" in errors[0].message
    assert errors[0].severity == "error"


def test_freezing_part_of_a_trained_model_is_an_error():
    """Fine-tuning with a frozen layer: torch's optimizer skips the frozen parameters (no gradient), the translated
    step would update them. An error on the loop, left as it is; freezing a model no optimizer trains is dropped
    (tests/cases/train_distill_frozen.py)."""
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        for p in model[0].parameters():
            p.requires_grad = False
        model[2].weight.requires_grad_(False)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for i in range(3):
            loss = model(torch.ones(2, 3)).sum()
            loss.backward()
            optimizer.step()
        """)
    result = translate(source, filename="finetune.py")
    errors = sorted((d.code, d.line) for d in result.diagnostics if d.severity == "error")
    assert errors == [("T2J214", 5), ("T2J214", 7)], [d.format() for d in result.diagnostics]
    assert "T2J213" not in {d.code for d in result.diagnostics}


def test_freezing_a_model_after_its_last_step_is_dropped():
    """A teacher trained first, then frozen for distillation: its optimizer never steps again, nothing to mask."""
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn

        teacher = nn.Linear(3, 2)
        t_opt = torch.optim.SGD(teacher.parameters(), lr=0.1)
        for i in range(3):
            loss = teacher(torch.ones(2, 3)).sum()
            loss.backward()
            t_opt.step()
        for p in teacher.parameters():
            p.requires_grad_(False)
        """)
    result = translate(source, filename="distill.py")
    assert [(d.code, d.line) for d in result.diagnostics if d.code in ("T2J213", "T2J214")] == [("T2J213", 10)]
    assert "requires_grad" not in result.code


def test_a_function_that_reinitialises_a_model_returns_it_and_its_callers_rebind_it():
    """torch changes the caller's model in place; an Equinox model cannot change. A function that updates its
    argument's parameters and returns nothing returns the model now (T2J308), and a call that dropped the result
    rebinds it. A caller that got the model as its own argument and does not return it loses the update: T2J306
    with a marker there. A function that returns the model already is left as it is."""
    source = textwrap.dedent("""\
        import torch
        import torch.nn as nn


        def init_(model, scale):
            with torch.no_grad():
                for p in model.parameters():
                    p.copy_(torch.randn_like(p) * scale)


        def init_returning(model):
            for p in model.parameters():
                p.data.fill_(0.1)
            return model


        def setup(net):
            init_(net, 0.5)


        def main():
            net = nn.Linear(2, 2)
            init_(scale=0.1, model=net)
            net = init_returning(net)
        """)
    result = translate(source, filename="init.py")
    assert [d.line for d in result.diagnostics if d.code == "T2J308"] == [5], result.diagnostics
    assert [d.line for d in result.diagnostics if d.code == "T2J306"] == [18], result.diagnostics
    assert result.code.count("# torch2jax: T2J306") == 1
    assert "net = init_(net, 0.5, key=key)" in result.code and "net = init_(scale=0.1, model=net, key=subkey)" in result.code
    assert "    return model\n" in result.code.split("def init_returning")[0]
    assert result.code.count("return model") == 2


def test_freezing_a_deep_copy_no_optimizer_trains_is_dropped():
    """`ema = copy.deepcopy(model)` is a model of the same class (an EMA copy, a DQN target network): freezing it
    is dropped as for any model no optimizer steps, not left as a requires_grad_ call on a JAX array."""
    code, codes = _translate("""\
        import copy
        ema = copy.deepcopy(enc)
        for p in ema.parameters():
            p.requires_grad_(False)
        for i in range(3):
            enc_opt.zero_grad()
            loss = enc(x).mean()
            loss.backward()
            enc_opt.step()
        """)
    assert "T2J213" in codes and "requires_grad" not in code, code


def test_a_python_branch_on_a_tensor_in_the_loss_is_an_error():
    """`if mask.any():` in the loss code reads a tensor; inside the jitted step it is traced and the branch fails at
    trace time: reported with a marker (T2J518). A branch on a Python value (the loop counter) is fine."""
    result = translate(HEADER + textwrap.dedent("""\
        for i in range(3):
            enc_opt.zero_grad()
            h = enc(x)
            loss = h.mean()
            if (h > 0).any():
                loss = loss + h.pow(2).mean()
            if i % 2 == 0:
                loss = loss * 1.0
            while torch.isnan(loss):
                loss = torch.zeros(())
            loss.backward()
            enc_opt.step()
        """))
    assert sorted(d.line for d in result.diagnostics if d.code == "T2J518") == [13, 17], result.diagnostics
    assert result.code.count("# torch2jax: T2J518") == 2


def test_a_training_function_that_updates_an_ema_it_does_not_return_is_reported():
    """The training pass threads the models a training function trains (model, optimizer state), not an EMA copy
    it was given: the EMA update inside it is lost for its caller, reported there (T2J306)."""
    result = translate(textwrap.dedent("""\
        import torch
        import torch.nn as nn


        def update_ema(ema, model, decay):
            for p_ema, p in zip(ema.parameters(), model.parameters()):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)


        def train(model, ema, opt, x):
            for i in range(3):
                opt.zero_grad()
                loss = model(x).mean()
                loss.backward()
                opt.step()
                update_ema(ema, model, 0.9)
        """), filename="ema.py")
    assert [d.line for d in result.diagnostics if d.code == "T2J306"] == [16], result.diagnostics


def test_a_trainer_whose_optimizer_is_optional_trains_in_one_arm():
    """`run_epoch(model, data, optimizer=None)` trains when given an optimizer and only evaluates without one: the
    loss computed before `if training:` goes into both arms (T2J519), the training arm becomes the jitted step, the
    optimizer state goes after `optimizer=None` with a default of its own (a parameter without one there is not
    Python), and the evaluation call discards the state that comes back. (Its numbers against torch:
    tests/cases/train_eval_shared.py.)"""
    result = translate(textwrap.dedent("""\
        import torch
        import torch.nn as nn

        def run_epoch(model, data, optimizer=None, batch_size=4):
            x, y = data
            training = optimizer is not None
            total = 0.0
            for i in range(0, len(x), batch_size):
                loss = ((model(x[i:i + batch_size]) - y[i:i + batch_size]) ** 2).mean()
                if training:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                total += loss.item()
            return total

        def main():
            model = nn.Linear(3, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            data = (torch.ones(8, 3), torch.zeros(8, 1))
            for epoch in range(2):
                train_loss = run_epoch(model, data, opt)
                val_loss = run_epoch(model, data)
        """))
    codes = {d.code for d in result.diagnostics}
    assert "T2J002" not in codes and not result.failed
    assert "T2J519" in codes and "T2J506" not in codes and "loss.backward()" not in result.code
    assert "optimizer=None, opt_state=None, batch_size=4" in result.code
    assert "model, opt_state, train_loss = run_epoch(model, data, opt, opt_state" in result.code, result.code
    assert "model, _, val_loss = run_epoch(model, data" in result.code, result.code
    compile(result.code, "<translation>", "exec")


FIT = """\
def fit(model, opt):
    opt.zero_grad()
    loss = model(x).mean()
    loss.backward()
    opt.step()
    return loss.item()

net = nn.Linear(3, 1)
net_opt = torch.optim.SGD(net.parameters(), lr=0.1)
"""


def test_a_trainer_called_where_its_state_cannot_be_rebound_is_reported():
    """In a comprehension, a conditional expression, `or`, or an elif test the call may run several times or
    not at all: it is not taken out, and the call without its optimizer state is marked, never silently wrong."""
    code, codes = _translate(FIT + textwrap.dedent("""\
        losses = [fit(net, net_opt) for _ in range(2)]
        last = 0 or fit(net, net_opt)
        if last > 10:
            pass
        elif fit(net, net_opt) > 5:
            pass
        """))
    assert "T2J505" in codes
    lines = [line for line in code.splitlines() if "fit(net, net_opt" in line]
    assert len(lines) == 3 and all("# torch2jax: T2J505" in line or line.lstrip().startswith("elif") for line in lines)
    assert "net, net_opt_state, fit_result" not in code  # nothing was taken out


def test_a_trainer_called_inside_an_expression_is_taken_out_before_its_statement():
    code, codes = _translate(FIT + textwrap.dedent("""\
        fit_result = 0.0
        print(f"{fit(net, net_opt):.3f}", fit_result)
        """))
    assert "T2J505" not in codes
    assert "net, net_opt_state, fit_result2 = fit(net, net_opt, net_opt_state, key=subkey)" in code
    assert 'print(f"{fit_result2:.3f}", fit_result)' in code


def test_a_mode_switch_in_a_conditional_expression_sets_inference_mode():
    """`model.train() if training else model.eval()` (either order): Equinox's inference mode, chosen by the test
    (left as it was, the model had no train() or eval() and the call raised)."""
    code, _ = _translate("""\
        def run(model, batch, training):
            model.train() if training else model.eval()
            return model(batch)

        def run_eval_first(model, batch, evaluating):
            model.eval() if evaluating else model.train()
            return model(batch)

        out = run(enc, x, True) + run_eval_first(enc, x, False)
        """)
    assert "model = eqx.nn.inference_mode(model, not (training))" in code
    assert "model = eqx.nn.inference_mode(model, evaluating)" in code
    assert ".train()" not in code and ".eval()" not in code


def test_a_boolean_mask_index_in_the_step_is_reported():
    """`out[train_mask]` in the loss (a GNN's node split): inside the jitted step the mask is traced and the index
    fails; reported at the subscript, with what to write instead."""
    code, codes = _translate("""\
        labels = torch.zeros(2, dtype=torch.long)
        train_mask = torch.zeros(2, dtype=torch.bool)
        for i in range(3):
            out = dec(enc(x))
            loss = nn.functional.mse_loss(out[train_mask], x[train_mask, :1])
            loss.backward()
            dec_opt.step()
        """)
    assert "T2J520" in codes
    _, attribute_codes = _translate("""\
        class Graph:
            train_mask = torch.ones(2) > 0

        data = Graph()
        for i in range(3):
            loss = dec(enc(x))[data.train_mask].mean()
            loss.backward()
            dec_opt.step()
        """)
    assert "T2J520" in attribute_codes  # PyG's data.train_mask
    plain, plain_codes = _translate("""\
        rows = torch.arange(2)
        for i in range(3):
            out = dec(enc(x))
            loss = (out[rows] ** 2).mean()
            loss.backward()
            dec_opt.step()
        """)
    assert "T2J520" not in plain_codes
