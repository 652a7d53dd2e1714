"""t2j.nn's Transformer family against torch.nn's from the same weights."""
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j

RTOL = ATOL = 1e-4
# torch's notes on its own fast paths and deprecations, not on our numbers.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Support for mismatched:UserWarning"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
]
D, NHEAD, FF = 8, 2, 16
SRC, TGT, BATCH = 5, 4, 3


def get_path(model, name):
    for part in name.split("."):
        model = model[int(part)] if part.isdigit() else getattr(model, part)
    return model


def state_dict_paths(model):
    leaves = jax.tree_util.tree_leaves_with_path(eqx.filter(model, eqx.is_array))
    return [(jax.tree_util.keystr(p, simple=True, separator="."), x.shape) for p, x in leaves]


def layer_kwargs(opts):
    kw = dict(dim_feedforward=FF, dropout=0.0)
    kw.update({k: opts[k] for k in ("batch_first", "norm_first", "bias") if k in opts})
    return kw


def activations(opts):
    """The same activation for torch and for t2j: a string both accept, or the functional form of each."""
    act = opts.get("activation", "relu")
    if act == "silu":
        return torch.nn.functional.silu, t2j.nn.functional.silu
    return act, act


def build(kind, opts, seed=0):
    """(torch module, t2j module with torch's weights loaded)."""
    torch.manual_seed(seed)
    key = jax.random.key(seed)
    t_act, j_act = activations(opts)
    kw = layer_kwargs(opts)
    if kind == "encoder_layer":
        tm = torch.nn.TransformerEncoderLayer(D, NHEAD, activation=t_act, **kw)
        jm = t2j.nn.TransformerEncoderLayer(D, NHEAD, activation=j_act, **kw, key=key)
    elif kind == "decoder_layer":
        tm = torch.nn.TransformerDecoderLayer(D, NHEAD, activation=t_act, **kw)
        jm = t2j.nn.TransformerDecoderLayer(D, NHEAD, activation=j_act, **kw, key=key)
    elif kind == "encoder":
        tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, NHEAD, activation=t_act, **kw), 2,
                                         torch.nn.LayerNorm(D))
        jm = t2j.nn.TransformerEncoder(t2j.nn.TransformerEncoderLayer(D, NHEAD, activation=j_act, **kw, key=key),
                                       2, t2j.nn.LayerNorm(D))
    else:  # one encoder layer, a decoder stack of two
        tm = torch.nn.Transformer(D, NHEAD, 1, 2, activation=t_act, **kw)
        jm = t2j.nn.Transformer(D, NHEAD, 1, 2, activation=j_act, **kw, key=key)
    assert state_dict_paths(jm) == [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]
    return tm, t2j.load_state_dict(jm, tm.state_dict())


def make_inputs(kind, opts, rng):
    """(positional inputs, keyword arguments) in numpy, for both frameworks."""
    def seq(length):
        if opts.get("unbatched"):
            shape = (length, D)
        else:
            shape = (BATCH, length, D) if opts.get("batch_first") else (length, BATCH, D)
        return rng.standard_normal(shape).astype(np.float32)

    def kpm(length):
        m = rng.random((length,) if opts.get("unbatched") else (BATCH, length)) < 0.3
        m[..., 0] = False  # every query keeps a key to attend to
        return m

    causal = lambda n: np.triu(np.ones((n, n), bool), 1)
    kwargs = {}
    if kind in ("encoder_layer", "encoder"):
        args = (seq(SRC),)
        mask_name = "src_mask" if kind == "encoder_layer" else "mask"
        if opts.get("mask") == "causal":
            kwargs[mask_name] = causal(SRC)
        elif opts.get("mask") == "float":
            kwargs[mask_name] = rng.standard_normal((SRC, SRC)).astype(np.float32)
        if opts.get("kpm"):
            kwargs["src_key_padding_mask"] = kpm(SRC)
        if opts.get("is_causal"):
            kwargs["is_causal"] = True
    else:
        args = (seq(SRC), seq(TGT)) if kind == "transformer" else (seq(TGT), seq(SRC))
        if opts.get("mask") == "causal":
            kwargs["tgt_mask"] = causal(TGT)
        if opts.get("memory_mask"):
            kwargs["memory_mask"] = rng.standard_normal((TGT, SRC)).astype(np.float32)
        if opts.get("kpm"):
            kwargs["tgt_key_padding_mask"] = kpm(TGT)
            kwargs["memory_key_padding_mask"] = kpm(SRC)
        if opts.get("is_causal"):
            kwargs["tgt_is_causal"] = True
    return args, kwargs


# (name, what, options); train=True runs both frameworks in training mode (dropout 0), grad=True also compares
# gradients.
CASES = [
    ("enc_layer", "encoder_layer", dict()),
    ("enc_layer_norm_first_gelu_bf", "encoder_layer",
     dict(grad=True, norm_first=True, activation="gelu", batch_first=True, train=True)),
    ("enc_layer_causal_hint", "encoder_layer", dict(mask="causal", is_causal=True)),
    ("enc_layer_kpm_float_mask", "encoder_layer", dict(grad=True, kpm=True, mask="float", batch_first=True)),
    ("enc_layer_no_bias_callable", "encoder_layer", dict(bias=False, activation="silu", train=True)),
    ("enc_layer_unbatched", "encoder_layer", dict(unbatched=True, kpm=True, mask="causal", train=True)),
    ("encoder", "encoder", dict(grad=True, mask="causal", kpm=True, batch_first=True)),
    ("dec_layer", "decoder_layer", dict(grad=True, mask="causal", train=True)),
    ("dec_layer_norm_first_bf", "decoder_layer",
     dict(grad=True, norm_first=True, batch_first=True, kpm=True, memory_mask=True)),
    ("dec_layer_unbatched_gelu", "decoder_layer", dict(unbatched=True, activation="gelu", mask="causal",
                                                      is_causal=True)),
    ("transformer", "transformer", dict(mask="causal", kpm=True, batch_first=True, train=True)),
    ("transformer_norm_first", "transformer", dict(norm_first=True, mask="causal")),
]


@pytest.mark.parametrize("name,kind,opts", CASES, ids=[c[0] for c in CASES])
def test_outputs_and_gradients_match_torch(name, kind, opts):
    """Outputs; with grad, also gradients w.r.t. the inputs and every parameter under a random projection (a subset
    of cases: the backward pass costs most of the compile time)."""
    rng = np.random.default_rng(0)
    tm, jm = build(kind, opts)
    train = opts.get("train", False)
    tm.train(train)
    if not train:
        jm = eqx.nn.inference_mode(jm)
    args, kwargs = make_inputs(kind, opts, rng)

    t_args = [torch.tensor(a, requires_grad=True) for a in args]
    t_out = tm(*t_args, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
    if not opts.get("grad"):
        j_out = eqx.filter_jit(lambda m, a, kw: m(*a, **kw))(jm, args, kwargs)
        np.testing.assert_allclose(np.asarray(j_out), t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
        return
    cot = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (t_out * torch.tensor(cot)).sum().backward()

    @eqx.filter_jit
    @eqx.filter_value_and_grad(has_aux=True)
    def loss(model_and_args):
        model, *j_args = model_and_args
        out = model(*j_args, **{k: jnp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()})
        return jnp.sum(out * cot), out

    (_, j_out), (g_model, *g_args) = loss((jm, *map(jnp.asarray, args)))
    np.testing.assert_allclose(np.asarray(j_out), t_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    for t, g in zip(t_args, g_args):
        np.testing.assert_allclose(np.asarray(g), t.grad.numpy(), rtol=RTOL, atol=ATOL)
    for pname, p in tm.named_parameters():
        np.testing.assert_allclose(np.asarray(get_path(g_model, pname)), p.grad.numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=pname)


@pytest.mark.parametrize("opts", [dict(batch_first=True), dict(batch_first=True, kpm=True, mask="causal")],
                         ids=["plain", "masks"])
def test_encoder_layer_matches_torch_fused_eval_path(opts):
    # Eval mode without autograd sends torch through its fused encoder-layer kernel.
    tm, jm = build("encoder_layer", opts)
    args, kwargs = make_inputs("encoder_layer", opts, np.random.default_rng(0))
    with torch.no_grad():
        expected = tm.eval()(*map(torch.tensor, args), **{k: torch.tensor(v) for k, v in kwargs.items()})
    got = eqx.filter_jit(lambda m, a, kw: m(*a, **kw))(eqx.nn.inference_mode(jm), args, kwargs)
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), rtol=RTOL, atol=ATOL)


def test_encoder_nested_tensor_path_agrees_off_padding():
    # torch's nested-tensor path (eval, no autograd, padding mask) zeroes padded positions before the final norm;
    # ours computes them like torch's ordinary path. The positions that are not padding agree.
    opts = dict(batch_first=True, kpm=True)
    tm, jm = build("encoder", opts)
    args, kwargs = make_inputs("encoder", opts, np.random.default_rng(0))
    with torch.no_grad():
        expected = tm.eval()(*map(torch.tensor, args), **{k: torch.tensor(v) for k, v in kwargs.items()}).numpy()
    got = np.asarray(eqx.filter_jit(lambda m, a, kw: m(*a, **kw))(eqx.nn.inference_mode(jm), args, kwargs))
    keep = ~kwargs["src_key_padding_mask"]
    np.testing.assert_allclose(got[keep], expected[keep], rtol=RTOL, atol=ATOL)


def test_dropout_in_train_mode():
    jm = t2j.nn.TransformerEncoderLayer(D, NHEAD, FF, dropout=0.5, batch_first=True, key=jax.random.key(0))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, SRC, D)), jnp.float32)
    run = eqx.filter_jit(lambda m, x, key: m(x, key=key))
    with pytest.raises(ValueError, match="key"):
        run(jm, x, None)
    out1, out1_again, out2 = (run(jm, x, jax.random.key(k)) for k in (1, 1, 2))
    np.testing.assert_array_equal(out1, out1_again)
    assert not np.allclose(out1, out2)
    # Eval mode (whose numbers the eval cases above check) turns off every dropout, the attention's included.
    flags = lambda m: [x.inference for x in jax.tree.leaves(m, is_leaf=lambda x: hasattr(x, "inference"))
                       if hasattr(x, "inference")]
    assert flags(jm) == [False] * 4 and flags(eqx.nn.inference_mode(jm)) == [True] * 4


def test_init_matches_torch():
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64)
    encoder = torch.nn.TransformerEncoder(layer, 2)
    j_layer = t2j.nn.TransformerEncoderLayer(32, 4, 64, key=jax.random.key(0))
    j_encoder = t2j.nn.TransformerEncoder(j_layer, 2)
    # torch deep-copies the layer: every copy starts with the same weights.
    for name, tensor in encoder.layers[1].state_dict().items():
        assert torch.equal(tensor, encoder.layers[0].state_dict()[name])
        np.testing.assert_array_equal(get_path(j_encoder.layers[1], name), get_path(j_encoder.layers[0], name))
    # Linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); LayerNorm: ones and zeros.
    for name in ("linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"):
        bound = 1 / np.sqrt(get_path(layer, name.split(".")[0]).in_features)
        for x in (get_path(layer, name).detach().numpy(), np.asarray(get_path(j_layer, name))):
            assert np.abs(x).max() <= bound and np.abs(x).max() > bound * (1 - 10 / x.size), name
            np.testing.assert_allclose(x.std(), bound / np.sqrt(3), rtol=2 / np.sqrt(x.size), err_msg=name)
    for name in ("norm1.weight", "norm2.weight"):
        np.testing.assert_array_equal(get_path(j_layer, name), 1.0)
    for name in ("norm1.bias", "norm2.bias"):
        np.testing.assert_array_equal(get_path(j_layer, name), 0.0)


def test_transformer_init_is_xavier_everywhere():
    # torch.nn.Transformer re-draws every parameter with two or more dims xavier-uniform.
    tm = torch.nn.Transformer(32, 4, 1, 1, 64)
    jm = t2j.nn.Transformer(32, 4, 1, 1, 64, key=jax.random.key(0))
    checked = 0
    for name, tensor in tm.state_dict().items():
        if tensor.ndim < 2:
            continue
        fan_out, fan_in = tensor.shape
        bound = np.sqrt(6 / (fan_in + fan_out))
        for x in (tensor.numpy(), np.asarray(get_path(jm, name))):
            assert np.abs(x).max() <= bound, name
            np.testing.assert_allclose(x.std(), bound / np.sqrt(3), rtol=2 / np.sqrt(x.size), err_msg=name)
        checked += 1
    assert checked == 10
    # The draws are independent: decoder self- and cross-attention differ.
    layer = jm.decoder.layers[0]
    assert not np.allclose(layer.self_attn.in_proj_weight, layer.multihead_attn.in_proj_weight)


def test_generate_square_subsequent_mask():
    np.testing.assert_array_equal(t2j.nn.Transformer.generate_square_subsequent_mask(5),
                                  torch.nn.Transformer.generate_square_subsequent_mask(5).numpy())


def test_hint_without_mask_raises_like_torch():
    jm = t2j.nn.TransformerEncoderLayer(D, NHEAD, FF, key=jax.random.key(0))
    x = jnp.ones((SRC, BATCH, D))
    with pytest.raises(ValueError, match="attn_mask"):
        eqx.nn.inference_mode(jm)(x, is_causal=True)
    with pytest.raises(RuntimeError, match="attn_mask"):
        torch.nn.TransformerEncoderLayer(D, NHEAD, FF).eval()(torch.ones(SRC, BATCH, D), is_causal=True)
    with pytest.raises(ValueError, match="relu/gelu"):
        t2j.nn.TransformerEncoderLayer(D, NHEAD, activation="tanh", key=jax.random.key(0))
