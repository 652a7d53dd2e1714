"""t2j.optim.lr_scheduler against torch.optim.lr_scheduler: the lr sequences, per group, and the lr in opt_state."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j

N_STEPS = 60
GROUP_LRS = (0.1, 0.01)


def make_optimizers(kind="SGD"):
    """The same two-group optimizer in torch and in t2j (momentum / betas present for OneCycleLR to cycle)."""
    kwargs = {"SGD": {"momentum": 0.9}, "Adam": {"betas": (0.9, 0.999)}}[kind]
    a, b = torch.zeros(3, requires_grad=True), torch.zeros(2, requires_grad=True)
    topt = getattr(torch.optim, kind)([{"params": [a]}, {"params": [b], "lr": GROUP_LRS[1]}], lr=GROUP_LRS[0],
                                      **kwargs)
    opt = getattr(t2j.optim, kind)([{"params": "a"}, {"params": "b", "lr": GROUP_LRS[1]}], lr=GROUP_LRS[0], **kwargs)
    state = opt.init({"a": jnp.zeros(3), "b": jnp.zeros(2)})
    return topt, opt, state


SCHEDULERS = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "StepLR-default-gamma": lambda m, o: m.StepLR(o, 10),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[5, 15, 15, 40], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.95),
    "CosineAnnealingLR-past-T_max": lambda m, o: m.CosineAnnealingLR(o, T_max=20),
    "CosineAnnealingLR-eta_min": lambda m, o: m.CosineAnnealingLR(o, T_max=50, eta_min=1e-4),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.9**e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: min(1.0, (e + 1) / 10)]),
    "MultiplicativeLR": lambda m, o: m.MultiplicativeLR(o, lambda e: 0.97),
    "LinearLR": lambda m, o: m.LinearLR(o),
    "LinearLR-custom": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.5, total_iters=20),
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=40, power=2.0),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.1], total_steps=N_STEPS),
    "OneCycleLR-linear-three-phase": lambda m, o: m.OneCycleLR(
        o, max_lr=0.5, total_steps=N_STEPS + 1, anneal_strategy="linear", three_phase=True, pct_start=0.25),
    "OneCycleLR-epochs-no-momentum": lambda m, o: m.OneCycleLR(
        o, max_lr=0.3, epochs=6, steps_per_epoch=10, cycle_momentum=False, div_factor=10.0,
        final_div_factor=100.0),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-3),
    "CosineAnnealingWarmRestarts-T_mult-1": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=7),
    "SequentialLR-warmup-cosine": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=10), m.CosineAnnealingLR(o, T_max=50)], milestones=[10]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.ExponentialLR(o, 0.98), m.StepLR(o, 5, gamma=0.5)]),
}


def momenta(groups):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in groups]


def assert_state_holds(opt, state, lrs):
    for hp, group, lr in zip(state.hyperparams, opt.param_groups, lrs):
        assert float(hp["lr"]) == np.float32(lr)
        momentum = hp["betas"][0] if "betas" in hp else hp["momentum"]
        assert float(momentum) == np.float32(momenta([group])[0])


# The optimizer only matters where OneCycleLR cycles momentum (SGD) or betas[0] (Adam).
CASES = [(name, "SGD") for name in SCHEDULERS] + [(name, "Adam") for name in SCHEDULERS if "OneCycle" in name]


@pytest.mark.parametrize("name,kind", CASES)
def test_lr_sequence_matches_torch(name, kind):
    topt, opt, state = make_optimizers(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that optimizer.step() was never called
        tsched = SCHEDULERS[name](torch.optim.lr_scheduler, topt)
        sched = SCHEDULERS[name](t2j.optim.lr_scheduler, opt)
        state = sched.sync(state)
        for step in range(N_STEPS + 1):
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12, abs=0), step
            assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups])
            assert momenta(opt.param_groups) == pytest.approx(momenta(topt.param_groups), rel=1e-12), step
            assert_state_holds(opt, state, sched.get_last_lr())
            if step < N_STEPS:
                tsched.step()
                state = sched.step(state)


@pytest.mark.parametrize("kwargs", [
    {"patience": 2, "factor": 0.5, "cooldown": 1, "min_lr": [1e-3, 1e-4]},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.05, "patience": 0, "min_lr": 0.02},
])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    topt, opt, state = make_optimizers()
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    sched = t2j.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
    metrics = np.cumsum(np.random.default_rng(0).normal(size=N_STEPS) * (np.arange(N_STEPS) % 9 < 4))
    for m in metrics:
        tsched.step(float(m))
        state = sched.step(state, jnp.asarray(m))  # a metric may be a JAX scalar, as torch's may be a tensor
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)
        assert_state_holds(opt, state, sched.get_last_lr())
    assert sched.get_last_lr() != list(GROUP_LRS)  # the sequence did reduce


def test_warm_restarts_with_fractional_epochs_match_torch():
    topt, opt, state = make_optimizers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(topt, T_0=3, T_mult=2)
    sched = t2j.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2)
    for epoch in range(12):
        for i in range(5):
            tsched.step(epoch + i / 5)
            state = sched.step(state, epoch + i / 5)
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


def test_deprecated_step_with_epoch_uses_the_closed_form_like_torch():
    topt, opt, state = make_optimizers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=3, gamma=0.5)
        sched = t2j.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        for epoch in [4, 9, 2]:
            tsched.step(epoch)
            state = sched.step(state, epoch)
            assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-12)


def test_state_dict_round_trip_resumes_the_sequence():
    def sequential(m, o):
        return m.SequentialLR(o, [m.LinearLR(o, 0.1, total_iters=4), m.StepLR(o, 3)], milestones=[4])

    topt = make_optimizers()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tsched = sequential(torch.optim.lr_scheduler, topt)
        expected = []
        for _ in range(12):
            tsched.step()
            expected.append(tsched.get_last_lr())

    _, opt, state = make_optimizers()
    sched = sequential(t2j.optim.lr_scheduler, opt)
    state = sched.sync(state)
    for _ in range(6):
        state = sched.step(state)
    saved, saved_lrs = sched.state_dict(), [g["lr"] for g in opt.param_groups]

    _, opt, state = make_optimizers()
    sched = sequential(t2j.optim.lr_scheduler, opt)
    sched.load_state_dict(saved)
    for group, lr in zip(opt.param_groups, saved_lrs):  # in torch these travel in the optimizer's state_dict
        group["lr"] = lr
    state = sched.sync(state)
    for lrs in expected[6:]:
        state = sched.step(state)
        assert sched.get_last_lr() == pytest.approx(lrs, rel=1e-12)


@pytest.mark.parametrize("make,synced,warns", [
    (lambda m, o: m.LinearLR(o, start_factor=0.5), False, True),
    (lambda m, o: m.LinearLR(o, start_factor=0.5), True, False),
    (lambda m, o: m.StepLR(o, 3), False, False),  # torch's constructor leaves the lr alone
])
def test_first_step_warns_when_the_constructors_lr_never_reached_opt_state(make, synced, warns):
    _, opt, state = make_optimizers()
    sched = make(t2j.optim.lr_scheduler, opt)
    if synced:
        state = sched.sync(state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sched.step(state)
    assert any("scheduler.sync" in str(w.message) for w in caught) == warns


def test_scheduler_needs_a_t2j_optimizer():
    import optax

    with pytest.raises(TypeError, match="not a torch2jax optimizer"):
        t2j.optim.lr_scheduler.StepLR(optax.sgd(0.1), step_size=3)


def test_momentum_turned_on_after_init_raises():
    opt = t2j.optim.SGD(lr=0.1)
    state = opt.init({"w": jnp.zeros(2)})
    sched = t2j.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    with pytest.raises(ValueError, match="before calling optimizer.init"):
        sched.sync(state)


class Linear(eqx.Module):
    weight: jax.Array
    bias: jax.Array


@pytest.mark.parametrize("case", ["SGD+StepLR", "SGD(momentum=0)+OneCycleLR", "AdamW+LinearLR"])
def test_scheduler_changes_lr_inside_jit_without_recompiling(case):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(2, 3)).astype(np.float32)
    b0 = rng.normal(size=(2,)).astype(np.float32)
    batches = [(rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 2)).astype(np.float32))
               for _ in range(12)]

    def build(optim, lr_scheduler, *params):
        if case == "SGD+StepLR":
            return optim.SGD(*params, lr=0.1, momentum=0.9), lambda o: lr_scheduler.StepLR(o, 3, gamma=0.5)
        if case == "SGD(momentum=0)+OneCycleLR":
            return optim.SGD(*params, lr=0.1), lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.2, total_steps=12)
        return optim.AdamW(*params, lr=0.05), lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=6)

    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    topt, make_tsched = build(torch.optim, torch.optim.lr_scheduler, [tw, tb])
    tsched = make_tsched(topt)

    opt, make_sched = build(t2j.optim, t2j.optim.lr_scheduler)
    model = Linear(jnp.asarray(w0), jnp.asarray(b0))
    if case == "SGD(momentum=0)+OneCycleLR":
        sched = make_sched(opt)  # torch turns SGD's momentum on: create this scheduler before init
        opt_state = opt.init(eqx.filter(model, eqx.is_array))
    else:
        opt_state = opt.init(eqx.filter(model, eqx.is_array))
        sched = make_sched(opt)
        opt_state = sched.sync(opt_state)

    traces = []

    @eqx.filter_jit
    def train_step(model, opt_state, optimizer, x, y):  # the optimizer as an argument, as the translator writes it
        traces.append(None)  # runs only while tracing

        def loss_fn(model):
            return jnp.mean((x @ model.weight.T + model.bias - y) ** 2)

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, loss

    lrs_seen = set()
    for x, y in batches:
        lrs_seen.add(sched.get_last_lr()[0])
        topt.zero_grad()
        tloss = torch.mean((torch.tensor(x) @ tw.T + tb - torch.tensor(y)) ** 2)
        tloss.backward()
        topt.step()
        tsched.step()
        model, opt_state, loss = train_step(model, opt_state, opt, x, y)
        opt_state = sched.step(opt_state)
        np.testing.assert_allclose(float(loss), tloss.item(), rtol=1e-5)
        np.testing.assert_allclose(np.asarray(model.weight), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(model.bias), tb.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert len(lrs_seen) > 2
    assert len(traces) == 1
