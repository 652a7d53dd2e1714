"""t2j.nn layers and functional forms against torch.nn on the same weights.

Each row of CASES builds `torch.nn.<name>(*args, **kwargs)` and `t2j.nn.<name>(*args, **kwargs, key=...)`, copies
torch's (perturbed) state_dict into the JAX layer, then compares: eval-mode output, train-mode output and the
updated running statistics, and the gradients of a random projection of the output with respect to the input and
every parameter. Adding a layer to the tests is adding a row.
"""
from dataclasses import dataclass, field

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given
from hypothesis import strategies as st

import torch2jax.runtime as t2j
from torch2jax.runtime.nn import functional as F


@dataclass
class Case:
    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    shapes: tuple = ((2, 3, 4, 5),)  # one shape per input
    int_high: int | None = None  # integer inputs in [0, int_high) instead of floats

    def __str__(self):
        kwargs = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}{self.args}{{{kwargs}}}{self.shapes}"


CASES = [
    # linear and reshaping
    Case("Linear", (5, 4), shapes=((3, 5),)),
    Case("Linear", (5, 4), {"bias": False}, shapes=((2, 3, 5),)),
    Case("Bilinear", (3, 4, 2), shapes=((5, 3), (5, 4))),
    Case("Identity", (7,), shapes=((2, 3),)),
    Case("Flatten"),
    Case("Flatten", (0, 2)),
    Case("Unflatten", (1, (2, 3)), shapes=((4, 6, 5),)),
    Case("Embedding", (10, 4), shapes=((3, 5),), int_high=10),
    Case("Embedding", (10, 4), {"padding_idx": 2}, shapes=((4, 6),), int_high=4),
    Case("EmbeddingBag", (10, 4), shapes=((3, 5),), int_high=10),
    Case("EmbeddingBag", (10, 4), {"mode": "sum", "padding_idx": 2}, shapes=((4, 6),), int_high=4),
    # convolutions
    Case("Conv1d", (3, 4, 3), {"stride": 2, "padding": 1}, shapes=((2, 3, 11),)),
    Case("Conv1d", (4, 6, 3), {"groups": 2, "dilation": 2, "padding": "same"}, shapes=((2, 4, 9),)),
    Case("Conv2d", (3, 4, 3), shapes=((2, 3, 8, 7),)),
    Case("Conv2d", (4, 6, (3, 2)), {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2), "groups": 2},
         shapes=((2, 4, 9, 8),)),
    Case("Conv2d", (3, 4, 4), {"padding": "same"}, shapes=((2, 3, 7, 7),)),
    Case("Conv2d", (3, 4, 3), {"padding": "valid", "bias": False}, shapes=((2, 3, 6, 6),)),
    Case("Conv2d", (3, 4, 3), {"padding": 1, "padding_mode": "reflect"}, shapes=((2, 3, 6, 6),)),
    Case("Conv2d", (3, 4, 3), {"padding": (2, 1), "padding_mode": "replicate"}, shapes=((2, 3, 6, 6),)),
    Case("Conv2d", (3, 4, 3), {"padding": 1, "padding_mode": "circular", "stride": 2}, shapes=((2, 3, 6, 6),)),
    Case("Conv2d", (3, 4, 3), {"padding": 1}, shapes=((3, 6, 6),)),  # unbatched
    Case("Conv3d", (2, 3, 3), {"padding": 1}, shapes=((1, 2, 5, 5, 5),)),
    Case("ConvTranspose1d", (3, 4, 3), {"stride": 2, "padding": 1, "output_padding": 1}, shapes=((2, 3, 7),)),
    Case("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2},
         shapes=((2, 4, 5, 5),)),
    Case("ConvTranspose2d", (3, 2, (3, 2)), {"stride": (2, 3), "dilation": 2}, shapes=((2, 3, 4, 5),)),
    Case("ConvTranspose2d", (3, 2, 3), {"padding": 3, "bias": False}, shapes=((2, 3, 8, 8),)),
    Case("ConvTranspose3d", (2, 2, 2), {"stride": 2}, shapes=((1, 2, 3, 3, 3),)),
    # normalisation
    Case("BatchNorm1d", (4,), shapes=((8, 4),)),
    Case("BatchNorm1d", (4,), {"affine": False}, shapes=((6, 4, 5),)),
    Case("BatchNorm2d", (3,), shapes=((4, 3, 5, 5),)),
    Case("BatchNorm2d", (3,), {"momentum": None, "eps": 1e-3}, shapes=((4, 3, 5, 5),)),
    Case("BatchNorm2d", (3,), {"momentum": 0.3}, shapes=((4, 3, 5, 5),)),
    Case("BatchNorm2d", (3,), {"track_running_stats": False}, shapes=((4, 3, 5, 5),)),
    Case("BatchNorm3d", (2,), shapes=((2, 2, 3, 3, 3),)),
    Case("InstanceNorm1d", (3,), shapes=((2, 3, 10),)),
    Case("InstanceNorm2d", (3,), {"affine": True}, shapes=((2, 3, 6, 6),)),
    Case("InstanceNorm2d", (3,), {"track_running_stats": True, "affine": True}, shapes=((2, 3, 5, 5),)),
    Case("InstanceNorm2d", (3,), shapes=((3, 5, 5),)),  # unbatched
    Case("InstanceNorm3d", (2,), {"affine": True}, shapes=((2, 2, 3, 4, 3),)),
    Case("LayerNorm", (5,), shapes=((2, 3, 5),)),
    Case("LayerNorm", ((4, 5),), {"eps": 1e-3}, shapes=((2, 3, 4, 5),)),
    Case("LayerNorm", (5,), {"elementwise_affine": False}, shapes=((2, 3, 5),)),
    Case("LayerNorm", (5,), {"bias": False}, shapes=((2, 3, 5),)),
    Case("GroupNorm", (2, 6), shapes=((3, 6, 4, 4),)),
    Case("GroupNorm", (3, 6), {"affine": False}, shapes=((3, 6, 5),)),
    Case("RMSNorm", (5,), shapes=((2, 3, 5),)),
    Case("RMSNorm", ((3, 5),), {"eps": 1e-4}, shapes=((2, 3, 5),)),
    # activations
    *[Case(name) for name in ["ReLU", "ReLU6", "SELU", "SiLU", "Mish", "Sigmoid", "Tanh", "Softsign", "Hardsigmoid",
                              "Hardswish", "LogSigmoid", "Tanhshrink", "Softmax2d", "GELU", "LeakyReLU",
                              "Softplus", "Hardshrink"]],
    Case("GELU", (), {"approximate": "tanh"}),
    Case("LeakyReLU", (0.2,)),
    Case("ELU", (0.5,)),
    Case("CELU", (2.0,)),
    Case("Softplus", (2.0, 5.0)),
    Case("Hardtanh", (-2.0, 3.0)),
    Case("Softshrink", (0.3,)),
    Case("Hardshrink", (1.2,)),
    Case("Threshold", (0.1, 20.0)),
    Case("PReLU"),
    Case("PReLU", (3,), shapes=((2, 3, 4),)),
    Case("Softmax", (1,)),
    Case("Softmax", (-1,)),
    Case("LogSoftmax", (2,)),
    Case("Softmin", (0,)),
    Case("GLU", shapes=((2, 3, 4, 6),)),
    Case("GLU", (1,), shapes=((2, 4, 3),)),
    # pooling
    Case("MaxPool1d", (3,), shapes=((2, 3, 10),)),
    Case("MaxPool1d", (3, 2, 1), {"ceil_mode": True}, shapes=((2, 3, 10),)),
    Case("MaxPool2d", (2,), shapes=((2, 3, 8, 8),)),
    Case("MaxPool2d", (3, 2, 1), {"dilation": 2}, shapes=((2, 3, 9, 9),)),
    Case("MaxPool2d", ((3, 2),), {"stride": (2, 1), "ceil_mode": True}, shapes=((2, 3, 9, 8),)),
    Case("MaxPool3d", (2,), shapes=((1, 2, 4, 4, 4),)),
    Case("AvgPool1d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, shapes=((2, 3, 10),)),
    Case("AvgPool2d", (3, 2, 1), shapes=((2, 3, 8, 8),)),
    Case("AvgPool2d", (3, 2, 1), {"ceil_mode": True}, shapes=((2, 3, 8, 8),)),
    Case("AvgPool2d", (3, 2, 1), {"ceil_mode": True, "count_include_pad": False}, shapes=((2, 3, 8, 8),)),
    Case("AvgPool2d", (2,), {"divisor_override": 3}, shapes=((2, 3, 6, 6),)),
    Case("AvgPool3d", (2,), shapes=((1, 2, 4, 4, 4),)),
    Case("AdaptiveAvgPool1d", (4,), shapes=((2, 3, 10),)),
    Case("AdaptiveAvgPool2d", ((3, 5),), shapes=((2, 3, 7, 11),)),
    Case("AdaptiveAvgPool2d", (1,), shapes=((2, 3, 7, 11),)),
    Case("AdaptiveAvgPool2d", ((None, 2),), shapes=((2, 3, 7, 11),)),
    Case("AdaptiveAvgPool3d", (2,), shapes=((1, 2, 3, 5, 4),)),
    Case("AdaptiveMaxPool1d", (3,), shapes=((2, 3, 10),)),
    Case("AdaptiveMaxPool2d", ((3, 4),), shapes=((2, 3, 7, 9),)),
    # resampling
    Case("Upsample", (), {"scale_factor": 2}),
    Case("Upsample", ((7, 9),)),
    Case("Upsample", (), {"scale_factor": 1.5, "mode": "bilinear"}),
    Case("Upsample", ((7, 3),), {"mode": "bilinear", "align_corners": True}),
    Case("Upsample", (), {"scale_factor": 2.5, "mode": "nearest-exact"}),
    Case("Upsample", (5,), {"mode": "linear"}, shapes=((2, 3, 7),)),
    Case("Upsample", (), {"scale_factor": 0.5, "mode": "area"}, shapes=((2, 3, 8, 6),)),
    Case("UpsamplingBilinear2d", (), {"scale_factor": 2}),
    Case("UpsamplingNearest2d", ((6, 7),)),
    Case("PixelShuffle", (2,), shapes=((2, 8, 3, 3),)),
    Case("PixelUnshuffle", (2,), shapes=((2, 2, 4, 6),)),
    # padding
    Case("ZeroPad2d", (2,)),
    Case("ZeroPad2d", ((1, 0, 2, 3),)),
    Case("ConstantPad1d", ((2, 1), 3.5), shapes=((2, 3, 5),)),
    Case("ConstantPad2d", ((-1, 2, 0, 1), 1.0)),
    Case("ReflectionPad1d", (2,), shapes=((2, 3, 5),)),
    Case("ReflectionPad2d", ((1, 2, 2, 1),)),
    Case("ReplicationPad2d", (2,)),
    Case("CircularPad2d", ((1, 1, 2, 0),)),
    Case("ZeroPad1d", ((1, 2),), shapes=((2, 3, 5),)),
    Case("ZeroPad3d", (1,), shapes=((1, 2, 3, 3, 3),)),
    Case("ConstantPad3d", ((1, 0, 0, 2, 1, 1), -1.0), shapes=((1, 2, 3, 3, 3),)),
    Case("ReflectionPad3d", (1,), shapes=((1, 2, 3, 3, 3),)),
    Case("ReplicationPad1d", ((3, 1),), shapes=((2, 3, 5),)),
    Case("ReplicationPad3d", (1,), shapes=((1, 2, 3, 3, 3),)),
    Case("CircularPad1d", (2,), shapes=((2, 3, 5),)),
    Case("CircularPad3d", (1,), shapes=((1, 2, 3, 3, 3),)),
]


def _perturbed_torch_module(case):
    """torch's layer with every parameter and buffer moved off its default value, so loading is really tested."""
    torch.manual_seed(0)
    module = getattr(torch.nn, case.name)(*case.args, **case.kwargs)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.5 * torch.randn_like(param))
        for name, buf in module.named_buffers():
            if name.endswith("running_mean"):
                buf.add_(0.3 * torch.randn_like(buf))
            elif name.endswith("running_var"):
                buf.mul_(0.5 + torch.rand_like(buf))
            elif name.endswith("num_batches_tracked"):
                buf.fill_(3)
    return module


def _inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    if case.int_high is not None:
        return [rng.integers(0, case.int_high, shape) for shape in case.shapes]
    return [(2 * rng.standard_normal(shape)).astype(np.float32) for shape in case.shapes]


def _jax_layer(case):
    build = getattr(t2j.nn, case.name)
    model, state = eqx.nn.make_with_state(build)(*case.args, **case.kwargs, key=jax.random.key(1))
    return model, state


def _run(model, state, xs):
    if t2j.nn.is_stateful(model):
        return model(*xs, state)
    return model(*xs), state


def _close(jax_value, torch_value, rtol=1e-4, atol=1e-5):
    torch_value = torch_value.detach().numpy() if isinstance(torch_value, torch.Tensor) else torch_value
    np.testing.assert_allclose(np.asarray(jax_value), torch_value, rtol=rtol, atol=atol)


@eqx.filter_jit
def _eval_forward(model, state, xs):
    return _run(eqx.nn.inference_mode(model), state, xs)[0]


@eqx.filter_jit
def _train_forward_and_grads(model, state, float_xs, int_xs, projection):
    """Train-mode output, new state, and the gradients of <output, projection> w.r.t. parameters and float inputs.
    One compiled function per case keeps the table fast."""
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(params, float_xs):
        out, new_state = _run(eqx.combine(params, static), state, float_xs + int_xs)
        return jnp.sum(out * projection), (out, new_state)

    (_, (out, new_state)), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, float_xs)
    return out, new_state, grads


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", CASES, ids=str)
def test_layer_matches_torch(case):
    tm = _perturbed_torch_module(case)
    model, state = _jax_layer(case)
    model, state = t2j.load_state_dict(model, tm.state_dict(), state=state)
    xs = _inputs(case)
    differentiable = case.int_high is None

    # eval: torch's eval() is eqx.nn.inference_mode; only layers with an `inference` flag behave differently
    if hasattr(model, "inference"):
        tm.eval()
        _close(_eval_forward(model, state, [jnp.asarray(x) for x in xs]), tm(*map(torch.as_tensor, xs)))

    # train: the same output, the same running statistics afterwards, and the same gradients of <out, R> with
    # respect to every float input and every parameter
    tm.train()
    txs = [torch.tensor(x, requires_grad=differentiable) for x in xs]
    tout = tm(*txs)
    projection = np.random.default_rng(1).standard_normal(tout.shape).astype(np.float32)
    (tout * torch.as_tensor(projection)).sum().backward()
    jxs = [jnp.asarray(x) for x in xs]
    float_xs, int_xs = (jxs, []) if differentiable else ([], jxs)
    out, state, (param_grads, input_grads) = _train_forward_and_grads(model, state, float_xs, int_xs, projection)

    _close(out, tout)
    buffers = t2j.to_state_dict(model, state)
    for name, buf in tm.named_buffers():
        _close(buffers[name], buf)
    for grad, tx in zip(input_grads, txs):
        _close(grad, tx.grad, atol=1e-4)
    grads_by_key = t2j.to_state_dict(param_grads, state)
    for name, param in tm.named_parameters():
        _close(grads_by_key[name], param.grad, atol=1e-4)


def test_table_covers_every_exported_layer():
    tested = {case.name for case in CASES} | {"Sequential", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d"}
    # attention, recurrent and transformer layers have their own tests
    others = ("attention", "recurrent", "transformer")
    exported = {
        name
        for name, value in vars(t2j.nn).items()
        if isinstance(value, type) and value.__module__.rsplit(".", 1)[-1] not in others
    }
    assert exported - tested == set()


# ---------------------------------------------------------------- functional forms on drawn shapes


def _randn(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(
    batch=st.integers(1, 2), groups=st.sampled_from([1, 2]), size=st.tuples(st.integers(3, 9), st.integers(3, 9)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.integers(1, 3), dilation=st.integers(1, 2),
    padding=st.one_of(st.integers(0, 2), st.just("same"), st.just("valid")), seed=st.integers(0, 2**16),
)
def test_conv2d_matches_torch(batch, groups, size, kernel, stride, dilation, padding, seed):
    if padding == "same":
        stride = 1
    rng = np.random.default_rng(seed)
    x, w, b = _randn(rng, (batch, 2 * groups, *size)), _randn(rng, (2 * groups, 2, *kernel)), _randn(rng, (2 * groups,))
    if any(s + 2 * (padding if isinstance(padding, int) else 0) < dilation * (k - 1) + 1 for s, k in zip(size, kernel)):
        return  # torch rejects a kernel larger than the padded input
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _close(F.conv2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b), **args),
           TF.conv2d(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(b), **args))


@given(
    size=st.integers(2, 7), kernel=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2),
    output_padding=st.integers(0, 2), dilation=st.integers(1, 2), groups=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_conv_transpose2d_matches_torch(size, kernel, stride, padding, output_padding, dilation, groups, seed):
    if output_padding >= max(stride, dilation):
        output_padding = 0  # torch requires output_padding < stride or dilation
    if (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1 < 1:
        return  # an empty output, which torch rejects
    rng = np.random.default_rng(seed)
    x, w = _randn(rng, (2, 2 * groups, size, size + 1)), _randn(rng, (2 * groups, 3, kernel, kernel))
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    expected = TF.conv_transpose2d(torch.as_tensor(x), torch.as_tensor(w), **args)
    _close(F.conv_transpose2d(jnp.asarray(x), jnp.asarray(w), **args), expected)


@given(
    size=st.tuples(st.integers(2, 11), st.integers(2, 11)), kernel=st.integers(1, 4), stride=st.integers(1, 3),
    padding=st.integers(0, 2), ceil_mode=st.booleans(), count_include_pad=st.booleans(), dilation=st.integers(1, 2),
    seed=st.integers(0, 2**16),
)
def test_pools_match_torch(size, kernel, stride, padding, ceil_mode, count_include_pad, dilation, seed):
    padding = min(padding, kernel // 2)  # torch: pad should be at most half of the kernel
    if any(s + 2 * padding < dilation * (kernel - 1) + 1 for s in size):
        return
    x = _randn(np.random.default_rng(seed), (2, 3, *size))
    tx, jx = torch.as_tensor(x), jnp.asarray(x)
    _close(F.max_pool2d(jx, kernel, stride, padding, dilation, ceil_mode),
           TF.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode))
    _close(F.avg_pool2d(jx, kernel, stride, padding, ceil_mode, count_include_pad),
           TF.avg_pool2d(tx, kernel, stride, padding, ceil_mode, count_include_pad))


@given(size=st.tuples(st.integers(1, 12), st.integers(1, 12)), out=st.tuples(st.integers(1, 8), st.integers(1, 8)),
       seed=st.integers(0, 2**16))
def test_adaptive_pools_match_torch(size, out, seed):
    x = _randn(np.random.default_rng(seed), (2, 3, *size))
    _close(F.adaptive_avg_pool2d(jnp.asarray(x), out), TF.adaptive_avg_pool2d(torch.as_tensor(x), out))
    _close(F.adaptive_max_pool2d(jnp.asarray(x), out), TF.adaptive_max_pool2d(torch.as_tensor(x), out))


@pytest.mark.parametrize("name,args,kwargs", [
    ("adaptive_max_pool2d", (1,), {}), ("adaptive_max_pool2d", ((3, 2),), {}), ("adaptive_max_pool1d", (4,), {}),
    ("max_pool2d", ((2, 3),), {"dilation": (1, 2)}), ("max_pool1d", (2,), {"dilation": 2}),
    ("max_pool2d", (2,), {"stride": 1, "padding": 1, "dilation": 2}),
    ("hardtanh", (), {}), ("hardtanh", (-2.0, 2.0), {}), ("relu6", (), {}),
])
def test_gradient_routing_at_ties_and_nan_matches_torch(name, args, kwargs):
    """Small integers (many ties, values on the hardtanh/relu6 bounds) and, for the pools, NaNs: torch's gradient goes
    to the first maximum of a pooling window in row-major order, or to its last NaN; hardtanh's is 0 at the bounds.
    (Not hardtanh at NaN: torch's vectorised kernel gives 0 there, its scalar tail 1.)"""
    rng = np.random.default_rng(0)
    shape = (2, 3, 9) if name.endswith("1d") else (2, 3, 7, 6)
    for nan_fraction in (0.0, 0.1) if "pool" in name else (0.0,):
        x = rng.integers(-2, 7, shape).astype(np.float32)
        x[rng.random(shape) < nan_fraction] = np.nan
        tx = torch.tensor(x, requires_grad=True)
        expected = getattr(TF, name)(tx, *args, **kwargs)
        cot = _randn(rng, tuple(expected.shape))
        (expected * torch.as_tensor(cot)).sum().backward()
        actual, vjp = jax.vjp(lambda v: getattr(F, name)(v, *args, **kwargs), jnp.asarray(x))
        np.testing.assert_array_equal(np.asarray(actual), expected.detach().numpy())
        np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(cot))[0]), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    target=st.one_of(
        st.tuples(st.integers(1, 13), st.integers(1, 13)).map(lambda s: {"size": s}),
        st.sampled_from([0.5, 1.5, 2.0, 2.7, 3.0]).map(lambda f: {"scale_factor": f}),
    ),
    mode=st.sampled_from(["nearest", "nearest-exact", "bilinear", "bilinear-corners", "area"]),
    seed=st.integers(0, 2**16),
)
def test_interpolate_matches_torch(size, target, mode, seed):
    kwargs = dict(target)
    if mode == "bilinear-corners":
        mode, kwargs["align_corners"] = "bilinear", True
    x = _randn(np.random.default_rng(seed), (2, 3, *size))
    if "scale_factor" in kwargs and min(size) * kwargs["scale_factor"] < 1:
        return  # an empty output
    _close(F.interpolate(jnp.asarray(x), mode=mode, **kwargs), TF.interpolate(torch.as_tensor(x), mode=mode, **kwargs))


@given(
    pads=st.lists(st.integers(0, 3), min_size=4, max_size=4),  # torch's non-constant modes pad 2 dims of 4D
    mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]), seed=st.integers(0, 2**16),
)
def test_pad_matches_torch(pads, mode, seed):
    x = _randn(np.random.default_rng(seed), (2, 3, 5, 6))
    value = 1.5 if mode == "constant" else None
    _close(F.pad(jnp.asarray(x), pads, mode, value), TF.pad(torch.as_tensor(x), pads, mode, value))


# ---------------------------------------------------------------- dropout


@pytest.mark.parametrize("name, shape, unit", [("Dropout", (200, 500), ()), ("Dropout1d", (100, 100, 7), (2,)),
                                               ("Dropout2d", (100, 100, 3, 4), (2, 3)),
                                               ("Dropout3d", (50, 200, 2, 3, 2), (2, 3, 4))])
def test_dropout_statistics_match_torch(name, shape, unit):
    """Train mode: about p of the (element or channel) units zeroed, whole channels at once for DropoutNd, and the
    survivors scaled by 1/(1-p), like torch; eval mode: the identity."""
    p = 0.3
    x = np.random.default_rng(0).uniform(1, 2, shape).astype(np.float32)
    layer = getattr(t2j.nn, name)(p)
    out = np.asarray(layer(jnp.asarray(x), key=jax.random.key(0)))
    torch_out = getattr(torch.nn, name)(p)(torch.as_tensor(x)).numpy()
    for result in (out, torch_out):
        zeroed = result == 0
        if unit:  # a channel is either all zero or all kept
            assert np.array_equal(zeroed.all(axis=unit), zeroed.any(axis=unit))
            zeroed = zeroed.all(axis=unit)
        assert abs(zeroed.mean() - p) < 0.015
        np.testing.assert_allclose(result[result != 0], (x / (1 - p))[result != 0], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(eqx.nn.inference_mode(layer)(jnp.asarray(x))), x)


def test_dropout_keys():
    x = jnp.ones((100, 100))
    layer = t2j.nn.Dropout(0.5)
    same = [np.asarray(layer(x, key=jax.random.key(3))) for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(same[0], np.asarray(layer(x, key=jax.random.key(4))))
    with pytest.raises(ValueError, match="key"):
        layer(x)
    np.testing.assert_array_equal(np.asarray(t2j.nn.Dropout(1.0)(x, key=jax.random.key(0))), 0)
    np.testing.assert_array_equal(np.asarray(F.dropout(x, 0.5, training=False)), 1)


# ---------------------------------------------------------------- Sequential


def test_sequential_with_state_matches_torch():
    torch.manual_seed(0)
    tm = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Dropout(0.0),
        torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 5, 2),
    )
    key = jax.random.split(jax.random.key(0), 2)
    model, state = eqx.nn.make_with_state(t2j.nn.Sequential)(
        t2j.nn.Conv2d(3, 4, 3, padding=1, key=key[0]), t2j.nn.BatchNorm2d(4), jax.nn.relu, t2j.nn.Dropout(0.0),
        t2j.nn.Flatten(), t2j.nn.Linear(4 * 5 * 5, 2, key=key[1]),
    )
    assert t2j.nn.is_stateful(model) and not t2j.nn.is_stateful(model[0])
    model, state = t2j.load_state_dict(model, tm.state_dict(), state=state)
    x = _randn(np.random.default_rng(0), (3, 3, 5, 5))
    out, state = model(jnp.asarray(x), state, key=jax.random.key(1))
    _close(out, tm(torch.as_tensor(x)))
    _close(t2j.to_state_dict(model, state)["1.running_var"], tm[1].running_var)
    tm.eval()
    out, _ = eqx.nn.inference_mode(model)(jnp.asarray(x), state)
    _close(out, tm(torch.as_tensor(x)))
    with pytest.raises(ValueError, match="state"):
        model(jnp.asarray(x))


def test_sequential_from_ordered_dict_keeps_torch_names():
    from collections import OrderedDict

    torch.manual_seed(0)
    tm = torch.nn.Sequential(OrderedDict(fc=torch.nn.Linear(3, 4), act=torch.nn.Tanh(), out=torch.nn.Linear(4, 1)))
    keys = jax.random.split(jax.random.key(0), 2)
    model = t2j.nn.Sequential(OrderedDict(fc=t2j.nn.Linear(3, 4, key=keys[0]), act=t2j.nn.Tanh(),
                                          out=t2j.nn.Linear(4, 1, key=keys[1])))
    model = t2j.load_state_dict(model, tm.state_dict())
    assert set(t2j.to_state_dict(model)) == set(tm.state_dict()) == {"fc.weight", "fc.bias", "out.weight", "out.bias"}
    x = _randn(np.random.default_rng(0), (5, 3))
    _close(model(jnp.asarray(x)), tm(torch.as_tensor(x)))
    assert model.fc is model[0] and len(model) == 3
    assert set(t2j.to_state_dict(model[1:])) == set(tm[1:].state_dict()) == {"out.weight", "out.bias"}


@pytest.mark.filterwarnings("ignore:Implicit dimension choice")
def test_other_functional_forms_match_torch():
    rng = np.random.default_rng(0)
    x, mean, var = _randn(rng, (2, 3, 6, 5)), _randn(rng, (3,)), rng.uniform(0.5, 2, 3).astype(np.float32)
    jx, tx = jnp.asarray(x), torch.as_tensor(x)
    _close(F.unfold(jx, (2, 3), dilation=(2, 1), padding=1, stride=2),
           TF.unfold(tx, (2, 3), dilation=(2, 1), padding=1, stride=2))
    _close(F.normalize(jx, p=3.0, dim=2), TF.normalize(tx, p=3.0, dim=2))
    _close(F.batch_norm(jx, jnp.asarray(mean), jnp.asarray(var), training=False),
           TF.batch_norm(tx, torch.as_tensor(mean), torch.as_tensor(var), training=False))
    _close(F.instance_norm(jx), TF.instance_norm(tx))
    _close(F.softmax(jx[0]), TF.softmax(tx[0], dim=None))  # torch's legacy implicit dim
    _close(F.log_softmax(jx, dim=1, dtype=jnp.float32), TF.log_softmax(tx, dim=1, dtype=torch.float32))


def test_layers_with_list_arguments_jit():
    layer = t2j.nn.Sequential(t2j.nn.MaxPool2d([2, 2], stride=[1, 2]), t2j.nn.AdaptiveAvgPool2d([3, None]),
                              t2j.nn.Upsample(size=[4, 4]))
    x = _randn(np.random.default_rng(0), (1, 2, 6, 6))
    torch_layer = torch.nn.Sequential(torch.nn.MaxPool2d([2, 2], stride=[1, 2]), torch.nn.AdaptiveAvgPool2d([3, None]),
                                      torch.nn.Upsample(size=[4, 4]))
    _close(eqx.filter_jit(layer)(jnp.asarray(x)), torch_layer(torch.as_tensor(x)))


@pytest.mark.parametrize("name", ["hardsigmoid", "hardswish", "hardtanh", "relu6"])
def test_piecewise_activations_match_torch_gradients_at_their_kinks(name):
    """At the kinks themselves (-3 and 3, -1 and 1, 0 and 6) torch picks one side's slope: the translation's
    gradient is torch's there too (jnp.clip's is not)."""
    x = np.array([-4.0, -3.0, -1.0, -0.5, 0.0, 1.0, 2.5, 3.0, 4.0, 6.0, 7.0], dtype=np.float32)
    tx = torch.tensor(x, requires_grad=True)
    getattr(TF, name)(tx).sum().backward()
    fn = getattr(t2j.nn.functional, name)
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(x))), getattr(TF, name)(torch.tensor(x)).numpy(),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax.grad(lambda v: fn(v).sum())(jnp.asarray(x))), tx.grad.numpy(),
                               rtol=1e-6, atol=1e-6)
