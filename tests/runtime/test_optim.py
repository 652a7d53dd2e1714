"""t2j.optim optimizers against torch.optim: same initial parameters, same gradients, parameters at every step."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import torch2jax.runtime as t2j

SHAPES = {"w": (3, 4), "b": (4,), "k": (2, 3, 2), "s": ()}
N_STEPS = 25
RTOL, ATOL = 1e-5, 1e-6

# (optimizer, kwargs, compiled?): one configuration per optimizer, with its options on, runs under jit; the others
# run eagerly to save compile time.
CONFIGS = [
    ("SGD", {}, False),
    ("SGD", {"lr": 0.1}, False),
    ("SGD", {"lr": 0.05, "momentum": 0.9}, False),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.5}, False),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, False),
    ("SGD", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}, False),
    ("SGD", {"lr": 0.1, "weight_decay": 0.05}, False),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01, "maximize": True}, True),
    ("Adam", {}, False),
    ("Adam", {"lr": 1e-2, "betas": (0.8, 0.99)}, False),
    ("Adam", {"lr": 1e-2, "amsgrad": True}, False),
    ("Adam", {"lr": 1e-2, "weight_decay": 0.1}, False),
    ("Adam", {"lr": 1e-2, "weight_decay": 0.1, "amsgrad": True, "maximize": True, "eps": 1e-6}, True),
    ("Adam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True}, False),
    ("AdamW", {}, False),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1}, False),
    ("AdamW", {"lr": 1e-2, "amsgrad": True, "maximize": True, "betas": (0.5, 0.9)}, True),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.0}, False),
    ("RMSprop", {}, False),
    ("RMSprop", {"centered": True}, False),
    ("RMSprop", {"momentum": 0.9}, False),
    ("RMSprop", {"lr": 1e-3, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.1}, True),
    ("RMSprop", {"eps": 1e-4, "maximize": True}, False),
    ("Adagrad", {}, False),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.1}, True),
    ("Adagrad", {"initial_accumulator_value": 0.5, "weight_decay": 0.1}, False),
    ("Adagrad", {"eps": 1e-3, "maximize": True}, False),
    ("Adadelta", {}, False),
    ("Adadelta", {"rho": 0.5, "eps": 1e-4, "weight_decay": 0.1}, True),
    ("Adadelta", {"lr": 0.5, "maximize": True}, False),
]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(N_STEPS)]
    return params, grads


def run_torch(name, kwargs, params, grads):
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = getattr(torch.optim, name)(list(tensors.values()), **kwargs)
    history = []
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
        history.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return history


def run_jax(opt, params, grads, jit=True):
    params = jax.tree.map(jnp.asarray, params)
    state = opt.init(params)

    def step(params, state, g):
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    if jit:
        step = jax.jit(step)

    history = []
    for g in grads:
        params, state = step(params, state, g)
        history.append(params)
    return history


def assert_histories_close(expected, actual):
    assert len(expected) == len(actual)
    for i, (e, a) in enumerate(zip(expected, actual)):
        for k in e:
            np.testing.assert_allclose(np.asarray(a[k]), e[k], rtol=RTOL, atol=ATOL, err_msg=f"step {i + 1}, {k}")


@pytest.mark.parametrize("name,kwargs,jit", CONFIGS, ids=[f"{n}-{k}" for n, k, _ in CONFIGS])
def test_matches_torch_every_step(data, name, kwargs, jit):
    params, grads = data
    opt = getattr(t2j.optim, name)(**kwargs)
    assert isinstance(opt, optax.GradientTransformation)
    assert_histories_close(run_torch(name, kwargs, params, grads), run_jax(opt, params, grads, jit=jit))


def test_defaults_and_positional_order_follow_torch():
    import inspect

    for name in ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"]:
        ours = inspect.signature(getattr(t2j.optim, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name)).parameters
        def positional(ps):
            return [k for k, p in ps.items() if p.kind == p.POSITIONAL_OR_KEYWORD]

        assert positional(ours) == positional(theirs), name
        assert set(ours) == set(theirs), name
        for key, p in theirs.items():
            if key != "params":
                assert ours[key].default == p.default, (name, key)
                assert ours[key].kind == p.kind, (name, key)


def test_positional_params_and_lr_are_accepted(data):
    params, grads = data
    expected = run_torch("SGD", {"lr": 0.05, "momentum": 0.9}, params, grads[:3])
    for opt in [
        t2j.optim.SGD(0.05, 0.9),  # translator dropped params, kept torch's positional order
        t2j.optim.SGD(object(), 0.05, 0.9),  # params passed through: ignored
        t2j.optim.SGD(params=None, lr=0.05, momentum=0.9),
    ]:
        assert_histories_close(expected, run_jax(opt, params, grads[:3]))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_torch_implementation_switches_are_accepted_and_change_nothing(data, name):
    """foreach/fused/capturable/differentiable pick torch's kernels, not the update: translated code passes them
    through (`AdamW(groups, lr=lr, **dict(fused=True))`) and gets torch's plain update."""
    params, grads = data
    switches = {"foreach": True, "fused": True, "differentiable": False}
    if name != "SGD":
        switches["capturable"] = True
    expected = run_torch(name, {"lr": 0.05, "foreach": False}, params, grads[:5])
    assert_histories_close(expected, run_jax(getattr(t2j.optim, name)(lr=0.05, **switches), params, grads[:5]))


def test_invalid_arguments_raise_like_torch():
    with pytest.raises(ValueError, match="Nesterov"):
        t2j.optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        t2j.optim.Adam(lr=-1.0)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        t2j.optim.AdamW(betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="unexpected keyword"):
        t2j.optim.AdamW(decoupled_weight_decay=False)
    with pytest.raises(ValueError, match="empty parameter list"):
        t2j.optim.SGD([])


class Block(eqx.Module):
    weight: jax.Array
    bias: jax.Array


class Net(eqx.Module):
    blocks: list
    head: Block
    steps: jax.Array  # an int buffer
    mask: jax.Array  # a float buffer: it gets gradients, but torch never trains buffers
    _t2j_buffers = ("mask",)


def make_net(rng):
    def block(n_in, n_out):
        return Block(jnp.asarray(rng.normal(size=(n_out, n_in)), jnp.float32),
                     jnp.asarray(rng.normal(size=(n_out,)), jnp.float32))

    return Net([block(3, 4), block(4, 4)], block(4, 2), jnp.zeros((), jnp.int32), jnp.ones((4,)))


class TorchBlock(torch.nn.Module):
    def __init__(self, weight, bias):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(np.asarray(weight)))
        self.bias = torch.nn.Parameter(torch.tensor(np.asarray(bias)))


class TorchNet(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.blocks = torch.nn.ModuleList([TorchBlock(b.weight, b.bias) for b in net.blocks])
        self.head = TorchBlock(net.head.weight, net.head.bias)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int32))
        self.register_buffer("mask", torch.ones(4))


def test_optimizer_state_is_keyed_by_torch_parameter_names():
    net = make_net(np.random.default_rng(0))
    state = t2j.optim.Adam().init(eqx.filter(net, eqx.is_array))
    assert list(state.per_param) == [n for n, _ in TorchNet(net).named_parameters()]
    assert state.per_param["head.weight"]["exp_avg"].shape == net.head.weight.shape


def jax_groups(style, net):
    """The same two groups as in the torch test, selected by predicate / names, or given as the arrays."""
    if style == "predicate+names":
        return [{"params": lambda n, p: n.startswith("blocks") and p.ndim == 2},
                {"params": ["head", "blocks.0.bias"], "lr": 3e-2, "weight_decay": 0.0}]
    # what translated nanoGPT-style code builds: lists of the model's own arrays
    decay = [p for n, p in t2j.named_parameters(net) if n.startswith("blocks") and p.ndim >= 2]
    return [{"params": decay},
            {"params": [net.blocks[0].bias] + t2j.parameters(net.head), "lr": 3e-2, "weight_decay": 0.0}]


@pytest.mark.parametrize("style", ["predicate+names", "arrays"])
@pytest.mark.parametrize("name,kwargs", [
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
])
def test_param_groups_match_torch(name, kwargs, style):
    rng = np.random.default_rng(1)
    net = make_net(rng)
    tnet = TorchNet(net)
    tparams = dict(tnet.named_parameters())
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in tparams.items()} for _ in range(N_STEPS)]

    # torch: matrices decay with the defaults; biases and the head get their own lr and no decay;
    # blocks.1.bias is in no group, so it never changes.
    topt = getattr(torch.optim, name)([
        {"params": [tparams["blocks.0.weight"], tparams["blocks.1.weight"]]},
        {"params": [tparams["blocks.0.bias"], tparams["head.weight"], tparams["head.bias"]], "lr": 3e-2,
         "weight_decay": 0.0},
    ], **kwargs)

    opt = getattr(t2j.optim, name)(jax_groups(style, net), **kwargs)
    labels = opt.group_labels(eqx.filter(net, eqx.is_array))
    assert labels.blocks[0].weight == 0 and labels.blocks[1].weight == 0 and labels.head.bias == 1
    assert labels.blocks[0].bias == 1 and labels.head.weight == 1 and labels.blocks[1].bias == -1
    assert labels.mask == -1

    state = opt.init(eqx.filter(net, eqx.is_array))

    @eqx.filter_jit
    def step(net, state, g):
        updates, state = opt.update(g, state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), state

    def block_grad(g, prefix):
        return Block(jnp.asarray(g[prefix + ".weight"]), jnp.asarray(g[prefix + ".bias"]))

    for g in grads:
        for k, t in tparams.items():
            t.grad = torch.tensor(g[k])
        topt.step()
        jgrads = Net([block_grad(g, "blocks.0"), block_grad(g, "blocks.1")], block_grad(g, "head"), None,
                     jnp.full((4,), 0.5))
        net, state = step(net, state, jgrads)
        for k, v in t2j.named_parameters(net):
            np.testing.assert_allclose(np.asarray(v), tparams[k].detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=k)
    np.testing.assert_array_equal(np.asarray(net.mask), tnet.mask.numpy())


def test_overlapping_groups_raise():
    net = make_net(np.random.default_rng(0))
    opt = t2j.optim.SGD([{"params": ["blocks"]}, {"params": ["blocks.0.weight"]}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.init(eqx.filter(net, eqx.is_array))


def test_arrays_must_be_leaves_of_the_initialized_model():
    net = make_net(np.random.default_rng(0))
    opt = t2j.optim.SGD([{"params": t2j.parameters(net.head)}], lr=0.1)
    other = make_net(np.random.default_rng(1))
    with pytest.raises(ValueError, match="not leaves of the parameters"):
        opt.init(eqx.filter(other, eqx.is_array))


def test_a_plain_list_of_arrays_is_one_group_of_those_arrays():
    net = make_net(np.random.default_rng(0))
    opt = t2j.optim.SGD(t2j.parameters(net.head), lr=0.1)  # torch: SGD(model.head.parameters(), lr=0.1)
    params = eqx.filter(net, eqx.is_array)
    grads = jax.tree.map(jnp.ones_like, eqx.filter(net, eqx.is_inexact_array))
    updates, _ = opt.update(grads, opt.init(params), params)
    largest = [float(jnp.abs(u).max()) for _, u in t2j.named_parameters(updates)]
    assert largest == pytest.approx([0, 0, 0, 0, 0.1, 0.1])  # only head.weight and head.bias move


def test_works_inside_optax_chain_and_sync_finds_its_state(data):
    params, grads = data
    opt = t2j.optim.SGD(lr=0.1, momentum=0.9)
    chained = optax.chain(optax.identity(), opt)
    state = chained.init(jax.tree.map(jnp.asarray, params))
    opt.param_groups[0]["lr"] = 0.5
    state = opt.sync(state)
    assert float(state[1].hyperparams[0]["lr"]) == 0.5
    updates, _ = chained.update(jax.tree.map(jnp.asarray, grads[0]), state, jax.tree.map(jnp.asarray, params))
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.5 * grads[0]["w"], rtol=RTOL)


def test_update_without_params_raises(data):
    params, grads = data
    opt = t2j.optim.Adam()
    state = opt.init(params)
    with pytest.raises(ValueError, match="needs the parameters"):
        opt.update(grads[0], state)


def test_weight_decay_off_at_init_cannot_be_turned_on_later():
    """A group without weight decay when init runs leaves the term out of the step; turning it on afterwards would
    be silently ignored, so sync refuses (as it does for momentum)."""
    params = {"w": jnp.ones(3)}
    opt = t2j.optim.SGD(lr=0.1)
    state = opt.init(params)
    opt.param_groups[0]["weight_decay"] = 0.1
    with pytest.raises(ValueError, match="weight_decay"):
        opt.sync(state)
    decayed = t2j.optim.SGD(lr=0.1, weight_decay=0.1)
    dstate = decayed.init(params)
    updates, _ = decayed.update({"w": jnp.zeros(3)}, dstate, params)
    np.testing.assert_allclose(updates["w"], -0.1 * 0.1 * np.ones(3), rtol=1e-6)
