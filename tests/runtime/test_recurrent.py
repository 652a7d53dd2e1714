"""t2j.nn.RNN / LSTM / GRU against torch.nn's from the same weights."""
import copy
import pickle

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j

RTOL = ATOL = 1e-4


def get_path(model, name):
    for part in name.split("."):
        model = model[int(part)] if part.isdigit() else getattr(model, part)
    return model


# (name, class, constructor kwargs, call options); train=True runs both frameworks in training mode (dropout 0),
# grad=True also compares gradients.
CASES = [
    ("rnn_tanh", "RNN", dict(input_size=3, hidden_size=4), dict(grad=True, train=True)),
    ("rnn_relu_2layer_hx", "RNN", dict(input_size=3, hidden_size=4, num_layers=2, nonlinearity="relu"),
     dict(grad=True, hx=True)),
    ("rnn_bi_batch_first", "RNN", dict(input_size=3, hidden_size=4, bidirectional=True, batch_first=True),
     dict(train=True)),
    ("lstm", "LSTM", dict(input_size=3, hidden_size=4), dict(train=True)),
    ("lstm_no_bias_hx", "LSTM", dict(input_size=3, hidden_size=4, bias=False), dict(hx=True)),
    ("lstm_bi_3layer_hx_bf", "LSTM",
     dict(input_size=3, hidden_size=4, num_layers=3, bidirectional=True, batch_first=True), dict(hx=True)),
    ("lstm_bi_2layer", "LSTM", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True),
     dict(grad=True, train=True)),
    ("lstm_unbatched", "LSTM", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True),
     dict(unbatched=True)),
    ("lstm_unbatched_hx", "LSTM", dict(input_size=3, hidden_size=4, batch_first=True),
     dict(grad=True, unbatched=True, hx=True, train=True)),
    ("gru", "GRU", dict(input_size=3, hidden_size=4), dict(train=True)),
    ("gru_bi_2layer_hx_bf", "GRU",
     dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True), dict(grad=True, hx=True)),
    ("gru_bi_2layer", "GRU", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True), dict(train=True)),
    ("gru_no_bias_hx", "GRU", dict(input_size=3, hidden_size=4, bias=False), dict(grad=True, hx=True)),
    ("gru_unbatched_hx", "GRU", dict(input_size=3, hidden_size=4, num_layers=2),
     dict(unbatched=True, hx=True, train=True)),
]
IDS = [c[0] for c in CASES]


def build(cls, ctor, seed=0):
    torch.manual_seed(seed)
    tm = getattr(torch.nn, cls)(**ctor)
    jm = getattr(t2j.nn, cls)(**ctor, key=jax.random.key(seed))
    return tm, t2j.load_state_dict(jm, tm.state_dict())


def make_inputs(cls, ctor, opts, rng):
    seq, batch = 6, 2
    if opts.get("unbatched"):
        x_shape = (seq, ctor["input_size"])
    elif ctor.get("batch_first"):
        x_shape = (batch, seq, ctor["input_size"])
    else:
        x_shape = (seq, batch, ctor["input_size"])
    x = rng.standard_normal(x_shape).astype(np.float32)
    if not opts.get("hx"):
        return x, None
    layers = ctor.get("num_layers", 1) * (2 if ctor.get("bidirectional") else 1)
    h_shape = (layers, ctor["hidden_size"]) if opts.get("unbatched") else (layers, batch, ctor["hidden_size"])
    states = [rng.standard_normal(h_shape).astype(np.float32) for _ in range(2 if cls == "LSTM" else 1)]
    return x, (tuple(states) if cls == "LSTM" else states[0])


def flat_outputs(result):
    """(output, h_n) or (output, (h_n, c_n)) as a flat list."""
    out, state = result
    return [out, *state] if isinstance(state, tuple) else [out, state]


def to_torch(x, requires_grad=False):
    return jax.tree.map(lambda a: torch.tensor(a, requires_grad=requires_grad), x)


@pytest.mark.parametrize("name,cls,ctor,opts", CASES, ids=IDS)
def test_outputs_and_gradients_match_torch(name, cls, ctor, opts):
    """Outputs; with grad, also gradients w.r.t. the input, the initial state and every parameter under a random
    projection (a subset of cases: the backward pass costs most of the compile time)."""
    rng = np.random.default_rng(0)
    tm, jm = build(cls, ctor)
    # Train mode with dropout 0 computes what eval mode does; cases alternate so both modes are covered.
    train = opts.get("train", False)
    tm.train(train)
    if not train:
        jm = eqx.nn.inference_mode(jm)
    x, hx = make_inputs(cls, ctor, opts, rng)
    inputs = (x,) if hx is None else (x, hx)

    t_inputs = to_torch(inputs, requires_grad=True)
    t_outs = flat_outputs(tm(*t_inputs))
    if not opts.get("grad"):
        outs = flat_outputs(eqx.filter_jit(lambda m, inputs: m(*inputs))(jm, inputs))
        assert_all_close(outs, t_outs)
        return
    cots = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in t_outs]
    sum(((o * torch.tensor(c)).sum() for o, c in zip(t_outs, cots))).backward()

    @eqx.filter_jit
    @eqx.filter_value_and_grad(has_aux=True)
    def loss(model_and_inputs):
        model, inputs = model_and_inputs
        outs = flat_outputs(model(*inputs))
        return sum(jnp.sum(o * c) for o, c in zip(outs, cots)), outs

    (_, outs), (g_model, g_inputs) = loss((jm, jax.tree.map(jnp.asarray, inputs)))
    assert_all_close(outs, t_outs)
    for t, g in zip(jax.tree.leaves(t_inputs), jax.tree.leaves(g_inputs)):
        np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=RTOL, atol=ATOL)
    for pname, p in tm.named_parameters():
        np.testing.assert_allclose(np.asarray(get_path(g_model, pname)), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=pname)


def assert_all_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e.detach().numpy(), rtol=RTOL, atol=ATOL)


def test_eval_forward_matches_torch_no_grad():
    # torch may take a different kernel without autograd; the numbers must not move.
    _, cls, ctor, opts = next(case for case in CASES if case[0] == "lstm_bi_3layer_hx_bf")
    tm, jm = build(cls, ctor)
    x, hx = make_inputs(cls, ctor, opts, np.random.default_rng(0))
    with torch.no_grad():
        expected = flat_outputs(tm.eval()(*to_torch((x, hx))))
    got = flat_outputs(eqx.filter_jit(lambda m, x, hx: m(x, hx))(eqx.nn.inference_mode(jm), x, hx))
    assert_all_close(got, expected)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_parameter_paths_spell_state_dict_keys(cls):
    for ctor in [dict(num_layers=1), dict(num_layers=3, bidirectional=True), dict(num_layers=2, bias=False)]:
        tm = getattr(torch.nn, cls)(3, 4, **ctor)
        jm = getattr(t2j.nn, cls)(3, 4, **ctor, key=jax.random.key(0))
        assert isinstance(jm, getattr(t2j.nn, cls))
        leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(jm, eqx.is_array))
        paths = [(jax.tree_util.keystr(p, simple=True, separator="."), x.shape) for p, x in leaves]
        assert paths == [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]


def test_positional_arguments_follow_torch():
    # torch.nn.RNN takes nonlinearity fourth; LSTM/GRU take bias fourth.
    rnn = t2j.nn.RNN(3, 4, 2, "relu", False, True, 0.0, True, key=jax.random.key(0))
    assert (rnn.nonlinearity, rnn.bias, rnn.batch_first, rnn.bidirectional) == ("relu", False, True, True)
    lstm = t2j.nn.LSTM(3, 4, 2, False, True, 0.0, True, key=jax.random.key(0))
    assert (lstm.bias, lstm.batch_first, lstm.bidirectional) == (False, True, True)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_init_statistics_match_torch(cls):
    hidden = 32
    tm = getattr(torch.nn, cls)(hidden, hidden)
    jm = getattr(t2j.nn, cls)(hidden, hidden, key=jax.random.key(0))
    bound = 1 / np.sqrt(hidden)
    for name, tensor in tm.state_dict().items():
        t, j = tensor.numpy(), np.asarray(get_path(jm, name))
        assert j.shape == t.shape and j.dtype == t.dtype, name
        # U(-bound, bound): both torch's draw and ours fit it (std within 4 standard errors, range near bound).
        for x in (t, j):
            assert np.abs(x).max() <= bound and np.abs(x).max() > bound * (1 - 8 / x.size), name
            np.testing.assert_allclose(x.std(), bound / np.sqrt(3), rtol=1.8 / np.sqrt(x.size), err_msg=name)
            assert abs(x.mean()) < 4 * bound / np.sqrt(3 * x.size), name
    # Each parameter draws its own numbers.
    assert not np.array_equal(jm.bias_ih_l0, jm.bias_hh_l0)


def test_dropout_between_layers():
    p = 0.5
    torch.manual_seed(0)
    tm = torch.nn.LSTM(3, 4, num_layers=2, dropout=p)
    jm = t2j.load_state_dict(t2j.nn.LSTM(3, 4, num_layers=2, dropout=p, key=jax.random.key(0)), tm.state_dict())
    x = jnp.asarray(np.random.default_rng(0).standard_normal((6, 2, 3)), jnp.float32)
    run = eqx.filter_jit(lambda m, x, key: m(x, key=key)[0])
    with pytest.raises(ValueError, match="key"):
        run(jm, x, None)
    out1, out1_again, out2 = (run(jm, x, jax.random.key(k)) for k in (1, 1, 2))
    np.testing.assert_array_equal(out1, out1_again)
    assert not np.allclose(out1, out2)
    # Eval mode switches dropout off, as torch's eval() does.
    with torch.no_grad():
        expected, _ = tm.eval()(torch.tensor(np.asarray(x)))
    got = run(eqx.nn.inference_mode(jm), x, None)
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), rtol=RTOL, atol=ATOL)
    assert not np.allclose(out1, got)
    # One layer has nothing between layers to drop: train mode needs no key and matches torch.
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="num_layers"):
        tm1 = torch.nn.GRU(3, 4, dropout=p)
    jm1 = t2j.load_state_dict(t2j.nn.GRU(3, 4, dropout=p, key=jax.random.key(0)), tm1.state_dict())
    with torch.no_grad():
        expected, _ = tm1(torch.tensor(np.asarray(x)))
    np.testing.assert_allclose(np.asarray(run(jm1, x, None)), expected.numpy(), rtol=RTOL, atol=ATOL)


def test_jit_pickle_and_copy():
    jm = t2j.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, key=jax.random.key(0))
    x = jnp.ones((2, 5, 3))
    out, (h, c) = eqx.filter_jit(lambda m, x: m(x))(jm, x)
    assert out.shape == (2, 5, 8) and h.shape == c.shape == (4, 2, 4)
    for clone in (pickle.loads(pickle.dumps(jm)), copy.deepcopy(jm)):
        assert type(clone) is type(jm)
        assert eqx.tree_equal(clone, jm)


def test_bad_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        t2j.nn.RNN(3, 4, nonlinearity="sigmoid", key=jax.random.key(0))
    with pytest.raises(NotImplementedError, match="proj_size"):
        t2j.nn.LSTM(3, 4, proj_size=2, key=jax.random.key(0))
    jm = t2j.nn.GRU(3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="input_size"):
        jm(jnp.ones((5, 2, 4)))
    with pytest.raises(ValueError, match="hidden"):
        jm(jnp.ones((5, 2, 3)), jnp.ones((1, 3, 4)))


# ---- the one-step cells: t2j.nn.RNNCell / LSTMCell / GRUCell against torch.nn's.
# (name, class, constructor kwargs, call options); hx: True passes a random state, "none" passes hx=None, absent
# leaves it out. Every case compares outputs and gradients (a cell compiles quickly).
CELL_CASES = [
    ("lstm_cell", "LSTMCell", dict(input_size=3, hidden_size=4), dict()),
    ("lstm_cell_hx", "LSTMCell", dict(input_size=3, hidden_size=4), dict(hx=True)),
    ("lstm_cell_hx_none", "LSTMCell", dict(input_size=3, hidden_size=4), dict(hx="none")),
    ("lstm_cell_no_bias_hx", "LSTMCell", dict(input_size=3, hidden_size=4, bias=False), dict(hx=True)),
    ("lstm_cell_unbatched", "LSTMCell", dict(input_size=3, hidden_size=4), dict(unbatched=True)),
    ("lstm_cell_unbatched_hx", "LSTMCell", dict(input_size=3, hidden_size=4), dict(unbatched=True, hx=True)),
    ("gru_cell", "GRUCell", dict(input_size=3, hidden_size=4), dict()),
    ("gru_cell_hx", "GRUCell", dict(input_size=3, hidden_size=4), dict(hx=True)),
    ("gru_cell_no_bias_hx_none", "GRUCell", dict(input_size=3, hidden_size=4, bias=False), dict(hx="none")),
    ("gru_cell_unbatched_hx", "GRUCell", dict(input_size=3, hidden_size=4), dict(unbatched=True, hx=True)),
    ("rnn_cell_tanh", "RNNCell", dict(input_size=3, hidden_size=4), dict()),
    ("rnn_cell_tanh_hx", "RNNCell", dict(input_size=3, hidden_size=4), dict(hx=True)),
    ("rnn_cell_relu_hx", "RNNCell", dict(input_size=3, hidden_size=4, nonlinearity="relu"), dict(hx=True)),
    ("rnn_cell_relu_no_bias_unbatched_hx", "RNNCell",
     dict(input_size=3, hidden_size=4, bias=False, nonlinearity="relu"), dict(unbatched=True, hx=True)),
    ("rnn_cell_unbatched", "RNNCell", dict(input_size=3, hidden_size=4), dict(unbatched=True)),
]


def make_cell_inputs(cls, ctor, opts, rng):
    batch = () if opts.get("unbatched") else (5,)
    x = rng.standard_normal((*batch, ctor["input_size"])).astype(np.float32)
    if opts.get("hx") == "none":
        return (x, None)
    if not opts.get("hx"):
        return (x,)
    states = [rng.standard_normal((*batch, ctor["hidden_size"])).astype(np.float32)
              for _ in range(2 if cls == "LSTMCell" else 1)]
    return (x, tuple(states) if cls == "LSTMCell" else states[0])


def cell_outputs(result):
    """h' or (h', c') as a list."""
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.parametrize("name,cls,ctor,opts", CELL_CASES, ids=[c[0] for c in CELL_CASES])
def test_cell_outputs_and_gradients_match_torch(name, cls, ctor, opts):
    """Outputs, and gradients of a random projection of them w.r.t. every parameter, the input and the state."""
    rng = np.random.default_rng(1)
    tm, jm = build(cls, ctor)
    inputs = make_cell_inputs(cls, ctor, opts, rng)

    t_inputs = to_torch(inputs, requires_grad=True)
    t_outs = cell_outputs(tm(*t_inputs))
    assert all(tuple(o.shape) == (*inputs[0].shape[:-1], ctor["hidden_size"]) for o in t_outs)
    cots = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in t_outs]
    sum(((o * torch.tensor(c)).sum() for o, c in zip(t_outs, cots))).backward()

    @eqx.filter_jit
    @eqx.filter_value_and_grad(has_aux=True)
    def loss(model_and_inputs):
        model, inputs = model_and_inputs
        outs = cell_outputs(model(*inputs))
        return sum(jnp.sum(o * c) for o, c in zip(outs, cots)), outs

    (_, outs), (g_model, g_inputs) = loss((jm, jax.tree.map(jnp.asarray, inputs)))
    assert_all_close(outs, t_outs)
    t_leaves, g_leaves = jax.tree.leaves(t_inputs), jax.tree.leaves(g_inputs)
    assert len(t_leaves) == len(g_leaves) == len(jax.tree.leaves(inputs))
    for t, g in zip(t_leaves, g_leaves):
        np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=RTOL, atol=ATOL)
    names = [pname for pname, _ in tm.named_parameters()]
    assert names == ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if ctor.get("bias", True) else [])
    for pname, p in tm.named_parameters():
        np.testing.assert_allclose(np.asarray(getattr(g_model, pname)), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=pname)


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "RNN"])
def test_cell_unrolled_over_time_matches_torch_layer(cls):
    """A cell stepped by a Python loop (pytorch/examples time_sequence_prediction style) computes what torch's
    one-layer LSTM/GRU/RNN with the same weights computes, gradients through the loop included."""
    torch.manual_seed(0)
    t_layer = getattr(torch.nn, cls)(3, 4)
    jm = t2j.load_state_dict(getattr(t2j.nn, cls + "Cell")(3, 4, key=jax.random.key(0)),
                             {k.removesuffix("_l0"): v for k, v in t_layer.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    t_x = torch.tensor(x, requires_grad=True)
    t_out, _ = t_layer(t_x)
    t_out.square().sum().backward()

    def unrolled(cell, x):
        hx, outs = None, []
        for x_t in x:
            hx = cell(x_t, hx)
            outs.append(hx[0] if cls == "LSTM" else hx)
        return jnp.stack(outs)

    out = eqx.filter_jit(unrolled)(jm, jnp.asarray(x))
    g_cell, g_x = eqx.filter_jit(eqx.filter_grad(lambda a: jnp.sum(unrolled(*a) ** 2)))((jm, jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(out), t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(g_x), t_x.grad.numpy(), rtol=RTOL, atol=ATOL)
    for pname, p in t_layer.named_parameters():
        np.testing.assert_allclose(np.asarray(getattr(g_cell, pname.removesuffix("_l0"))), p.grad.numpy(),
                                   rtol=RTOL, atol=ATOL, err_msg=pname)


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_parameters_spell_state_dict_keys_and_init_matches_torch(cls):
    for bias in (True, False):
        tm = getattr(torch.nn, cls)(3, 4, bias=bias)
        jm = getattr(t2j.nn, cls)(3, 4, bias=bias, key=jax.random.key(0))
        leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(jm, eqx.is_array))
        paths = [(jax.tree_util.keystr(p, simple=True, separator="."), x.shape, x.dtype) for p, x in leaves]
        assert paths == [(k, tuple(v.shape), np.float32) for k, v in tm.state_dict().items()]
        # torch's own state_dict loads, and round-trips.
        got = t2j.to_state_dict(t2j.load_state_dict(jm, tm.state_dict()))
        assert list(got) == list(tm.state_dict())
        for k, v in tm.state_dict().items():
            np.testing.assert_array_equal(np.asarray(got[k]), v.numpy())
    # U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter, each drawn separately, from the key.
    hidden = 32
    jm = getattr(t2j.nn, cls)(hidden, hidden, key=jax.random.key(0))
    bound = 1 / np.sqrt(hidden)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        x = np.asarray(getattr(jm, name))
        assert np.abs(x).max() <= bound and np.abs(x).max() > bound * (1 - 8 / x.size), name
        np.testing.assert_allclose(x.std(), bound / np.sqrt(3), rtol=1.8 / np.sqrt(x.size), err_msg=name)
        assert abs(x.mean()) < 4 * bound / np.sqrt(3 * x.size), name
    assert not np.array_equal(jm.bias_ih, jm.bias_hh)
    again = getattr(t2j.nn, cls)(hidden, hidden, key=jax.random.key(0))
    other = getattr(t2j.nn, cls)(hidden, hidden, key=jax.random.key(1))
    assert eqx.tree_equal(again, jm) and not np.array_equal(other.weight_ih, jm.weight_ih)


def test_cell_positional_arguments_follow_torch():
    # torch.nn.RNNCell takes bias third and nonlinearity fourth (the reverse of torch.nn.RNN).
    rnn = t2j.nn.RNNCell(3, 4, False, "relu", key=jax.random.key(0))
    assert (rnn.nonlinearity, rnn.bias, rnn.bias_ih) == ("relu", False, None)
    lstm = t2j.nn.LSTMCell(3, 4, False, key=jax.random.key(0))
    assert not lstm.bias and lstm.weight_ih.shape == (16, 3)


def test_cell_jit_pickle_copy_and_dtype():
    jm = t2j.nn.LSTMCell(3, 4, key=jax.random.key(0))
    h, c = eqx.filter_jit(lambda m, x: m(x))(jm, jnp.ones((2, 3)))
    assert h.shape == c.shape == (2, 4)
    for clone in (pickle.loads(pickle.dumps(jm)), copy.deepcopy(jm)):
        assert type(clone) is type(jm)
        assert eqx.tree_equal(clone, jm)
    gru = t2j.nn.GRUCell(3, 4, dtype=jnp.bfloat16, key=jax.random.key(0))
    assert gru.weight_hh.dtype == jnp.bfloat16
    assert gru(jnp.ones(3, jnp.bfloat16)).dtype == jnp.bfloat16


def test_cell_bad_arguments():
    with pytest.raises(ValueError, match="nonlinearity"):
        t2j.nn.RNNCell(3, 4, nonlinearity="sigmoid", key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        t2j.nn.GRUCell(3, 4)
    jm = t2j.nn.LSTMCell(3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="input_size"):
        jm(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="1D or 2D"):
        jm(jnp.ones((5, 2, 3)))
    with pytest.raises(ValueError, match="hidden"):
        jm(jnp.ones((2, 3)), (jnp.ones((2, 5)), jnp.ones((2, 5))))
    with pytest.raises(ValueError, match="hidden"):
        jm(jnp.ones(3), (jnp.ones((1, 4)), jnp.ones((1, 4))))


@pytest.mark.parametrize("cls,ctor,batch_first", [
    ("LSTM", dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True), True),
    ("GRU", dict(input_size=3, hidden_size=5, bidirectional=True), False),
    ("RNN", dict(input_size=3, hidden_size=4, num_layers=2), False),
])
def test_packed_sequences_match_torch(cls, ctor, batch_first):
    """pack_padded_sequence -> the layer -> pad_packed_sequence, lengths unsorted (enforce_sorted=False): padded
    outputs (zeros past each end), h_n (each sequence's last step, the reverse direction's first) and the
    gradients of the input and every parameter match torch's."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(1)
    ctor = dict(ctor, batch_first=batch_first)
    tm, jm = build(cls, ctor)
    lengths = [4, 6, 2]
    x = rng.standard_normal((3, 6, 3) if batch_first else (6, 3, 3)).astype(np.float32)

    tx = torch.tensor(x, requires_grad=True)
    t_out, t_h = tm(pack_padded_sequence(tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False))
    t_padded, t_lengths = pad_packed_sequence(t_out, batch_first=batch_first)
    t_h = t_h if isinstance(t_h, tuple) else (t_h,)
    (t_padded.sum() + sum((h * h).sum() for h in t_h)).backward()

    def run(model, x):
        packed = t2j.nn.rnn_utils.pack_padded_sequence(x, jnp.array(lengths), batch_first=batch_first,
                                                       enforce_sorted=False)
        out, h = model(packed)
        padded, _ = t2j.nn.rnn_utils.pad_packed_sequence(out, batch_first=batch_first)
        return padded, (h if isinstance(h, tuple) else (h,))

    def loss(model, x):
        padded, h = run(model, x)
        return padded.sum() + sum((hh * hh).sum() for hh in h)

    padded, h = run(jm, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(padded), t_padded.detach().numpy(), rtol=RTOL, atol=ATOL)
    for got, want in zip(h, t_h):
        np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=RTOL, atol=ATOL)
    g_model, g_x = eqx.filter_jit(eqx.filter_grad(lambda mx: loss(*mx)))((jm, jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(g_x), tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    for pname, p in tm.named_parameters():
        np.testing.assert_allclose(np.asarray(get_path(g_model, pname)), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=pname)


def test_pad_sequence_and_total_length():
    xs = [jnp.ones((2, 3)), jnp.ones((4, 3))]
    assert t2j.nn.rnn_utils.pad_sequence(xs, batch_first=True).shape == (2, 4, 3)
    packed = t2j.nn.rnn_utils.pack_padded_sequence(jnp.ones((5, 2, 3)), jnp.array([3, 2]))
    out, lengths = t2j.nn.rnn_utils.pad_packed_sequence(packed, total_length=5, padding_value=-1.0)
    assert out.shape == (5, 2, 3) and float(out[4, 0, 0]) == -1.0 and float(out[2, 0, 0]) == 1.0
    assert t2j.nn.rnn_utils.pad_packed_sequence(packed)[0].shape == (3, 2, 3)  # the longest sequence's length
