"""t2j.nn.MultiheadAttention against torch.nn.MultiheadAttention from the same weights."""
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


# (name, constructor kwargs, call options); train=True runs both frameworks in training mode (dropout 0),
# grad=True also compares gradients.
CASES = [
    ("plain", dict(embed_dim=8, num_heads=2), dict(grad=True, train=True)),
    ("batch_first", dict(embed_dim=8, num_heads=2, batch_first=True), dict()),
    ("one_head_no_bias", dict(embed_dim=8, num_heads=1, bias=False), dict(train=True)),
    ("cross_len", dict(embed_dim=8, num_heads=4), dict(src_len=7)),
    ("kdim_vdim", dict(embed_dim=8, num_heads=2, kdim=5, vdim=3, batch_first=True),
     dict(grad=True, src_len=4, train=True)),
    ("bias_kv_zero_attn", dict(embed_dim=8, num_heads=2, add_bias_kv=True, add_zero_attn=True),
     dict(grad=True, mask="float")),
    ("causal_bool", dict(embed_dim=8, num_heads=2, batch_first=True), dict(mask="causal", train=True)),
    ("causal_hint", dict(embed_dim=8, num_heads=2),
     dict(grad=True, mask="causal", is_causal=True, need_weights=False)),
    ("float_mask", dict(embed_dim=8, num_heads=2), dict(mask="float", src_len=6, train=True)),
    ("mask_3d", dict(embed_dim=8, num_heads=2, batch_first=True), dict(mask="bool3d")),
    ("kpm_bool", dict(embed_dim=8, num_heads=2, batch_first=True), dict(kpm="bool", src_len=6, train=True)),
    ("kpm_float_and_mask", dict(embed_dim=8, num_heads=2), dict(kpm="float", mask="float")),
    ("kpm_causal", dict(embed_dim=8, num_heads=4, batch_first=True),
     dict(grad=True, kpm="bool", mask="causal", train=True)),
    ("per_head_weights", dict(embed_dim=8, num_heads=2), dict(grad=True, average=False, mask="causal")),
    ("no_weights", dict(embed_dim=8, num_heads=2, batch_first=True),
     dict(grad=True, need_weights=False, kpm="bool", train=True)),
    ("unbatched", dict(embed_dim=8, num_heads=2), dict(grad=True, unbatched=True, kpm="bool", mask="causal")),
    ("unbatched_3d_mask", dict(embed_dim=8, num_heads=2, batch_first=True),
     dict(unbatched=True, mask="bool3d", train=True)),
]
# Self-attention (one tensor as query, key and value) in eval mode without autograd: torch's fused fast path.
FAST_PATH_CASES = [
    ("fast_plain", dict(embed_dim=8, num_heads=2, batch_first=True), dict()),
    ("fast_kpm", dict(embed_dim=8, num_heads=2, batch_first=True), dict(kpm="bool", need_weights=False)),
    ("fast_seq_first_mask", dict(embed_dim=8, num_heads=4), dict(mask="causal")),
]


def make_inputs(ctor, opts, rng):
    e, h = ctor["embed_dim"], ctor["num_heads"]
    kdim, vdim = ctor.get("kdim") or e, ctor.get("vdim") or e
    n, tgt = 3, 5
    src = opts.get("src_len", tgt)
    unbatched = opts.get("unbatched", False)

    def shape(length, dim):
        if unbatched:
            return (length, dim)
        return (n, length, dim) if ctor.get("batch_first") else (length, n, dim)

    q = rng.standard_normal(shape(tgt, e)).astype(np.float32)
    k = rng.standard_normal(shape(src, kdim)).astype(np.float32)
    v = rng.standard_normal(shape(src, vdim)).astype(np.float32)
    kwargs = {}
    mask = opts.get("mask")
    if mask == "causal":
        kwargs["attn_mask"] = np.triu(np.ones((tgt, src), bool), 1)
    elif mask == "float":
        kwargs["attn_mask"] = rng.standard_normal((tgt, src)).astype(np.float32)
    elif mask == "bool3d":
        m = rng.random(((1 if unbatched else n) * h, tgt, src)) < 0.3
        m[..., 0] = False  # keep every row attending somewhere (torch gives NaN otherwise)
        kwargs["attn_mask"] = m
    kpm = opts.get("kpm")
    kpm_shape = (src,) if unbatched else (n, src)
    if kpm == "bool":
        m = rng.random(kpm_shape) < 0.3
        m[..., 0] = False
        kwargs["key_padding_mask"] = m
    elif kpm == "float":
        kwargs["key_padding_mask"] = rng.standard_normal(kpm_shape).astype(np.float32)
    if opts.get("self_attention"):
        k = v = q
    for name in ("need_weights", "is_causal"):
        if name in opts:
            kwargs[name] = opts[name]
    if "average" in opts:
        kwargs["average_attn_weights"] = opts["average"]
    return (q, k, v), kwargs


def build(ctor, seed=0):
    torch.manual_seed(seed)
    tm = torch.nn.MultiheadAttention(**ctor)
    jm = t2j.nn.MultiheadAttention(**ctor, key=jax.random.key(seed))
    return tm, t2j.load_state_dict(jm, tm.state_dict())


def run_torch(tm, args, kwargs):
    targs = [torch.tensor(a, requires_grad=True) for a in args]
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    out, w = tm(*targs, **tkw)
    return targs, out, w


def run_jax(jm, args, kwargs):
    jkw = {k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    return jm(*map(jnp.asarray, args), **jkw)


@pytest.mark.parametrize("name,ctor,opts", CASES, ids=[c[0] for c in CASES])
def test_outputs_and_gradients_match_torch(name, ctor, opts):
    """Output and weights; with grad, also gradients w.r.t. query, key, value and every parameter under a random
    projection (a subset of cases: the backward pass costs most of the compile time)."""
    rng = np.random.default_rng(0)
    tm, jm = build(ctor)
    # Train mode with dropout 0 computes what eval mode does; cases alternate so both modes are covered.
    train = opts.get("train", False)
    tm.train(train)
    if not train:
        jm = eqx.nn.inference_mode(jm)
    args, kwargs = make_inputs(ctor, opts, rng)
    targs, t_out, t_w = run_torch(tm, args, kwargs)
    t_outs = [t_out] if t_w is None else [t_out, t_w]

    if not opts.get("grad"):
        j_out, j_w = eqx.filter_jit(run_jax)(jm, args, kwargs)
        assert_outputs_match(j_out, j_w, t_out, t_w)
        return
    cots = [rng.standard_normal(tuple(o.shape)).astype(np.float32) for o in t_outs]
    sum((o * torch.tensor(c)).sum() for o, c in zip(t_outs, cots)).backward()

    @eqx.filter_jit
    @eqx.filter_value_and_grad(has_aux=True)
    def loss(model_and_args):
        model, *jargs = model_and_args
        out, w = run_jax(model, jargs, kwargs)
        outs = [out] if w is None else [out, w]
        return sum(jnp.sum(o * c) for o, c in zip(outs, cots)), (out, w)

    (_, (j_out, j_w)), (g_model, *g_args) = loss((jm, *map(jnp.asarray, args)))
    assert_outputs_match(j_out, j_w, t_out, t_w)
    for t, g in zip(targs, g_args):
        np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=RTOL, atol=ATOL)
    for pname, p in tm.named_parameters():
        np.testing.assert_allclose(np.asarray(get_path(g_model, pname)), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=pname)


def assert_outputs_match(j_out, j_w, t_out, t_w):
    np.testing.assert_allclose(np.asarray(j_out), t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    if t_w is None:
        assert j_w is None
    else:
        np.testing.assert_allclose(np.asarray(j_w), t_w.detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name,ctor,opts", FAST_PATH_CASES, ids=[c[0] for c in FAST_PATH_CASES])
def test_self_attention_matches_torch_fast_path(name, ctor, opts):
    tm, jm = build(ctor)
    args, kwargs = make_inputs(ctor, {**opts, "self_attention": True}, np.random.default_rng(0))
    q = torch.tensor(args[0])
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    with torch.no_grad():
        t_out, t_w = tm.eval()(q, q, q, **tkw)
    assert_outputs_match(*eqx.filter_jit(run_jax)(eqx.nn.inference_mode(jm), args, kwargs), t_out, t_w)


def test_parameter_names_and_shapes_match_state_dict():
    for ctor in [dict(embed_dim=8, num_heads=2), dict(embed_dim=8, num_heads=2, kdim=5, vdim=3, add_bias_kv=True),
                 dict(embed_dim=6, num_heads=3, bias=False)]:
        tm = torch.nn.MultiheadAttention(**ctor)
        jm = t2j.nn.MultiheadAttention(**ctor, key=jax.random.key(0))
        leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(jm, eqx.is_array))
        paths = {jax.tree_util.keystr(p, simple=True, separator="."): x.shape for p, x in leaves}
        assert paths == {k: tuple(v.shape) for k, v in tm.state_dict().items()}


def test_init_statistics_match_torch():
    e = 128
    tm = torch.nn.MultiheadAttention(e, 4, add_bias_kv=True)
    jm = t2j.nn.MultiheadAttention(e, 4, add_bias_kv=True, key=jax.random.key(0))
    # torch's _reset_parameters: xavier-uniform in_proj, zero biases, xavier-normal bias_k/v; out_proj.weight
    # keeps nn.Linear's U(-1/sqrt(E), 1/sqrt(E)).
    expected = {
        "in_proj_weight": ("uniform", np.sqrt(6 / (4 * e))),
        "in_proj_bias": ("zeros",),
        "bias_k": ("normal", np.sqrt(1 / e)),
        "bias_v": ("normal", np.sqrt(1 / e)),
        "out_proj.weight": ("uniform", 1 / np.sqrt(e)),
        "out_proj.bias": ("zeros",),
    }
    assert set(expected) == set(tm.state_dict())
    for name, tensor in tm.state_dict().items():
        j = np.asarray(get_path(jm, name))
        assert j.shape == tuple(tensor.shape) and j.dtype == np.float32, name
        kind, *scale = expected[name]
        for x in (tensor.numpy(), j):  # torch's draw checks the table, ours is checked against it
            if kind == "zeros":
                assert not x.any(), name
                continue
            std = scale[0] / np.sqrt(3) if kind == "uniform" else scale[0]
            np.testing.assert_allclose(x.std(), std, rtol=2.0 / np.sqrt(x.size), err_msg=name)
            assert abs(x.mean()) < 4 * std / np.sqrt(x.size), name
            if kind == "uniform":
                assert np.abs(x).max() <= scale[0], name
            else:  # a normal draw exceeds 2 std about 4.6% of the time
                assert 0.02 < np.mean(np.abs(x) > 2 * std) < 0.1, name


def test_dropout_in_train_mode():
    e, p = 8, 0.5
    tm = torch.nn.MultiheadAttention(e, 2, dropout=p, batch_first=True)
    jm = t2j.load_state_dict(t2j.nn.MultiheadAttention(e, 2, dropout=p, batch_first=True, key=jax.random.key(0)),
                            tm.state_dict())
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, e)), jnp.float32)
    weights = eqx.filter_jit(lambda m, x, key: m(x, x, x, average_attn_weights=False, key=key)[1])
    with pytest.raises(ValueError, match="key"):
        weights(jm, x, None)
    w1, w2, w1_again = (weights(jm, x, jax.random.key(k)) for k in (1, 2, 1))
    np.testing.assert_array_equal(w1, w1_again)
    assert not np.array_equal(w1, w2)
    # Survivors are the softmax weights scaled by 1 / (1 - p), as torch's dropout does.
    w_eval = weights(eqx.nn.inference_mode(jm), x, None)
    with torch.no_grad():
        _, t_eval = tm.eval()(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(x)), torch.tensor(np.asarray(x)),
                              average_attn_weights=False)
    np.testing.assert_allclose(w_eval, t_eval.numpy(), rtol=RTOL, atol=ATOL)
    kept = np.asarray(w1) != 0
    np.testing.assert_allclose(np.asarray(w1)[kept], np.asarray(w_eval)[kept] / (1 - p), rtol=1e-5)
    assert 0.3 < kept.mean() < 0.7


def test_is_causal_without_mask_raises_like_torch():
    jm = t2j.nn.MultiheadAttention(8, 2, key=jax.random.key(0))
    x = jnp.ones((4, 2, 8))
    with pytest.raises(ValueError, match="attn_mask"):
        jm(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError):
        torch.nn.MultiheadAttention(8, 2)(*[torch.ones(4, 2, 8)] * 3, is_causal=True)


def test_jit():
    jm = eqx.nn.inference_mode(t2j.nn.MultiheadAttention(8, 2, batch_first=True, key=jax.random.key(0)))
    x = jnp.ones((2, 3, 8))
    out, w = eqx.filter_jit(lambda m, x: m(x, x, x))(jm, x)
    assert out.shape == (2, 3, 8) and w.shape == (2, 3, 3)
