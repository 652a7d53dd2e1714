"""nn.Module classes translated to eqx.Module: built from the same weights, they compute what torch computes."""
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
import torch

import torch2jax.runtime as t2j
from module_harness import Pair, load_source, translate_clean
from torch2jax import translate

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
    ("MaskCache", (), [RNG.standard_normal((2, 5, 6)).astype(np.float32)], True),
    ("StackedBN", (), [RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)], True),
    ("SiameseBN", (), [RNG.standard_normal((4, 5)).astype(np.float32), RNG.standard_normal((4, 5)).astype(np.float32)],
     True),
    ("NamedParts", (), [RNG.standard_normal((5, 6)).astype(np.float32)], True),
    ("TiedLM", (), [RNG.integers(0, 13, (2, 5))], True),
    ("SharedConvBlock", (), [RNG.standard_normal((2, 4, 7)).astype(np.float32)], True),
    ("ShortcutBlock", (), [RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)], True),
    ("AffineFlow", (), [RNG.standard_normal((4, 3)).astype(np.float32)], True),
    ("CopyTransformer", (), [np.array([[3, 4, 5, 0], [6, 7, 8, 9]]), np.array([[1, 5, 4, 0, 0], [1, 9, 8, 7, 6]])],
     True),
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


INIT_LOOPS = '''
import torch
import torch.nn as nn


class Filled(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(3, 4)
        self.dec = nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.full_like(p, 0.25))
            for name, p in self.dec.named_parameters():
                p.copy_(torch.full_like(p, -1.0 if name == "weight" else 2.0))
        self.count = sum(p.numel() for p in self.parameters())

    def forward(self, x):
        return self.dec(self.enc(x)) * self.count
'''


def test_parameter_loops_in_init_change_the_module_being_built():
    """`for p in self.parameters(): p.copy_(...)` in __init__ sets the parameters of the module that __init__
    returns (rebinding `self` would not), and self.parameters() elsewhere lists them."""
    torch_model = load_source(INIT_LOOPS, "torch_case")["Filled"]()
    jax_model = load_source(translate_clean(INIT_LOOPS).code, "jax_case")["Filled"](key=jax.random.key(0))
    got = dict(t2j.named_parameters(jax_model))
    for name, value in torch_model.state_dict().items():
        np.testing.assert_array_equal(got[name], value.numpy(), err_msg=name)
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(jax_model(x), torch_model(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)



DICT_OF_BLOCKS = '''
import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return x + self.drop(self.fc(x))


class Net(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(inp=nn.Linear(4, d), h=nn.ModuleList([Block(d) for _ in range(2)])))

    def forward(self, x):
        x = self.transformer.inp(x)
        for block in self.transformer.h:
            x = block(x)
        return x
'''


def test_blocks_in_a_module_dict_entry_get_keys_for_their_dropout():
    """`for block in self.transformer.h` (nanoGPT): each block gets a key, so dropout in train mode draws
    (a fraction p of the units zeroed, the rest scaled by 1 / (1 - p)), and eval mode matches torch."""
    torch.manual_seed(0)
    torch_model = load_source(DICT_OF_BLOCKS, "torch_case")["Net"]().eval()
    model = load_source(translate_clean(DICT_OF_BLOCKS).code, "jax_case")["Net"](key=jax.random.key(0))
    model = t2j.load_state_dict(model, torch_model.state_dict())
    x = RNG.standard_normal((64, 4)).astype(np.float32)
    eval_out = eqx.nn.inference_mode(model, True)(x)
    np.testing.assert_allclose(eval_out, torch_model(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    train = eqx.nn.inference_mode(model, False)
    a, b = train(x, key=jax.random.key(1)), train(x, key=jax.random.key(2))
    assert not np.allclose(a, b) and not np.allclose(a, eval_out)



def test_parameter_loops_in_init_skip_batchnorm_statistics():
    """`for p in self.parameters(): p.copy_(...)` in the __init__ of a model holding BatchNorm: the values land on
    torch's parameters, in torch's order; BatchNorm's running statistics (state, whose initial arrays Equinox keeps
    in the module until make_with_state takes them) stay zeros and ones."""
    torch_model = load_source(SOURCE, "torch_case")["FilledBN"]()
    model, state = eqx.nn.make_with_state(load_source(translate_clean(SOURCE).code, "jax_case")["FilledBN"])(
        key=jax.random.key(0))
    expected = [(n, p.detach().numpy()) for n, p in torch_model.named_parameters()]
    got = t2j.named_parameters(model)
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (name, g), (_, e) in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-6, atol=1e-6, err_msg=name)
    stats = t2j.to_state_dict(model, state)
    np.testing.assert_array_equal(stats["body.1.running_mean"], np.zeros(8))
    np.testing.assert_array_equal(stats["body.1.running_var"], np.ones(8))


COUNTED_INIT = """
import torch
import torch.nn as nn


class Counted(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 2)
        for i, p in enumerate(self.parameters(), 1):
            if p.dim() > 1:
                nn.init.constant_(p, 0.1 * i)
            else:
                nn.init.zeros_(p)
        for k, (name, p) in enumerate(self.named_parameters()):
            if name.endswith("bias"):
                nn.init.constant_(p, -k)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))
"""


def test_parameter_loops_over_enumerate_in_init_put_the_values_back():
    """`for i, p in enumerate(self.parameters())` in __init__: the new values land on the parameters, as the loop
    without enumerate (before, the loop rebound its variable and nothing came back)."""
    torch_model = load_source(COUNTED_INIT, "torch_counted")["Counted"]()
    result = translate_clean(COUNTED_INIT)
    assert "T2J202" in {d.code for d in result.diagnostics}
    model = load_source(result.code, "jax_counted")["Counted"](key=jax.random.key(0))
    expected = [(n, p.detach().numpy()) for n, p in torch_model.named_parameters()]
    got = t2j.named_parameters(model)
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (name, g), (_, e) in zip(got, expected):
        np.testing.assert_array_equal(np.asarray(g), e, err_msg=name)


PLAIN_TENSORS = """
import torch
import torch.nn as nn


def rotations(dim, n):
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
    return torch.outer(torch.arange(n).float(), freqs)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.table = torch.arange(4).float() + 1.0
        self.angles = rotations(4, 3)

    def forward(self, x):
        return self.fc(x) * self.table + self.angles.sum()
"""


def test_plain_tensor_attributes_are_neither_trained_nor_saved():
    """`self.table = torch.arange(4) + 1` and a helper's tensor (LLaMA's freqs_cis): neither a Parameter nor a
    buffer in torch, so not in parameters() or the state_dict, and an optimizer step (weight decay included) leaves
    them as they are; before, they were trainable leaves of the Equinox model."""
    torch_model = load_source(PLAIN_TENSORS, "torch_plain")["Scaled"]()
    model = load_source(translate_clean(PLAIN_TENSORS).code, "jax_plain")["Scaled"](key=jax.random.key(0))
    assert [n for n, _ in t2j.named_parameters(model)] == [n for n, _ in torch_model.named_parameters()]
    assert set(t2j.to_state_dict(model)) == set(torch_model.state_dict())
    optimizer = t2j.optim.AdamW(lr=0.1, weight_decay=0.5)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    grads = eqx.filter_grad(lambda m: (m(jax.numpy.ones((2, 4))) ** 2).sum())(model)
    updates, _ = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    stepped = eqx.apply_updates(model, updates)
    np.testing.assert_array_equal(stepped.table, torch_model.table.numpy())
    np.testing.assert_allclose(stepped.angles, torch_model.angles.numpy(), rtol=1e-6)
    assert not np.allclose(stepped.fc.weight, model.fc.weight)


LIST_INIT = """
import torch
import torch.nn as nn


class Tables(nn.Module):
    def __init__(self):
        super().__init__()
        self.embs = nn.ModuleList([nn.Embedding(10, 4) for _ in range(2)])
        for emb in self.embs:
            nn.init.constant_(emb.weight, 0.25)
        self.heads = nn.ModuleList([nn.Linear(4, 2), nn.Linear(4, 2)])
        for head in self.heads:
            nn.init.zeros_(head.bias)
            head.weight.data.fill_(0.5)
        self.body = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
        for layer in self.body:
            nn.init.zeros_(layer.bias)
        self.named = nn.ModuleDict({"user": nn.Embedding(5, 4), "item": nn.Embedding(7, 4)})
        for table in self.named.values():
            nn.init.constant_(table.weight, -1.5)

    def forward(self, a, b):
        return self.heads[0](self.embs[0](a)) + self.heads[1](self.named["item"](b))
"""


def test_updates_of_a_module_list_in_a_loop_in_init_are_put_back():
    """`for emb in self.embs: nn.init.constant_(emb.weight, ...)` in __init__: the rebuilt elements go back into the
    list (before, only the loop variable was rebound and the model kept its first initialisation, silently). A
    loop whose collection cannot take them back (a Sequential) is reported."""
    torch_model = load_source(LIST_INIT, "torch_list_init")["Tables"]()
    result = translate_clean(LIST_INIT)
    at = {(d.line, d.code) for d in result.diagnostics}
    line = next(i for i, text in enumerate(LIST_INIT.splitlines(), 1) if "for layer in self.body" in text)
    assert (line, "T2J302") in at
    assert not [d for d in result.diagnostics if d.code == "T2J302" and d.line != line], result.diagnostics
    model = load_source(result.code, "jax_list_init")["Tables"](key=jax.random.key(0))
    expected = dict((n, p.detach().numpy()) for n, p in torch_model.named_parameters() if not n.startswith("body"))
    got = dict(t2j.named_parameters(model))
    for name, value in expected.items():
        np.testing.assert_array_equal(np.asarray(got[name]), value, err_msg=name)


HELPER_INIT = """
import torch
import torch.nn as nn

class Tables(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])
        self.embs = nn.ModuleDict({"user": nn.Embedding(5, 4), "item": nn.Embedding(7, 4)})
        self._reset()

    def _reset(self):
        for layer in self.layers:
            nn.init.constant_(layer.weight, 0.3)
            layer.weight.data.mul_(0.5)
            layer.bias.data.zero_()
        for emb in self.embs.values():
            nn.init.constant_(emb.weight, 1.0)
            emb.weight.data.mul_(2.0)

    def forward(self, a):
        return self.layers[1](self.layers[0](self.embs["user"](a)))
"""


def test_in_place_updates_in_a_loop_in_an_init_helper_are_put_back_without_a_stale_report():
    """In-place updates of a list field's elements, and of a dict field's values, in a method only __init__ calls:
    the elements are rebuilt and put back, with the numbers torch's initialisation gives, and no T2J302 (the in-place
    pass knows the module-updates pass puts them back). A loop over pairs cannot be put back: reported."""
    torch_model = load_source(HELPER_INIT, "torch_helper_init")["Tables"]()
    result = translate_clean(HELPER_INIT)
    assert not [d for d in result.diagnostics if d.code == "T2J302"], result.diagnostics
    model = load_source(result.code, "jax_helper_init")["Tables"](key=jax.random.key(0))
    got = dict(t2j.named_parameters(model))
    for name, value in torch_model.named_parameters():
        np.testing.assert_array_equal(np.asarray(got[name]), value.detach().numpy(), err_msg=name)
    pairs = HELPER_INIT.replace("for layer in self.layers:", "for layer, _ in zip(self.layers, self.layers):")
    reported = {d.line for d in translate(pairs).diagnostics if d.code == "T2J302"}
    assert next(i for i, text in enumerate(pairs.splitlines(), 1) if "layer.bias.data.zero_()" in text) in reported


DATA_INIT = """
import torch
import torch.nn as nn


def init_weights(m):
    for name, param in m.named_parameters():
        if "weight" in name:
            nn.init.constant_(param.data, 0.3)
        else:
            nn.init.zeros_(param.data)


def build():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model.apply(init_weights)
    return model
"""


def test_inits_of_param_data_in_an_applied_function_fill_the_parameters():
    """`nn.init.constant_(param.data, v)` in a function handed to model.apply: `param.data` is `param` (left as it
    was, the translation assigned to `.data` of an array and raised AttributeError)."""
    torch_model = load_source(DATA_INIT, "torch_data_init")["build"]()
    model = load_source(translate_clean(DATA_INIT).code, "jax_data_init")["build"](key=jax.random.key(0))
    got = t2j.named_parameters(model)
    expected = [(n, p.detach().numpy()) for n, p in torch_model.named_parameters()]
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (name, g), (_, e) in zip(got, expected):
        np.testing.assert_array_equal(np.asarray(g), e, err_msg=name)


def test_tied_weights_are_one_parameter():
    """torch lists a shared Parameter once, under its first name: so do the translation's parameter listings, its
    state_dict holds both keys, and an optimizer step keeps the two places equal."""
    pair = Pair(SOURCE, "TiedLM")
    names = [n for n, _ in t2j.named_parameters(pair.model)]
    # sorted: a ModuleDict is a plain dict in the translation, and pytree operations sort a dict's keys
    assert sorted(names) == sorted(n for n, _ in pair.torch.named_parameters())
    assert set(t2j.to_state_dict(pair.model)) == set(pair.torch.state_dict())
    optimizer = t2j.optim.AdamW(lr=0.1, weight_decay=0.1)
    opt_state = optimizer.init(eqx.filter(pair.model, eqx.is_array))
    grads = eqx.filter_grad(lambda m: m(jax.numpy.arange(5)[None]).sum())(pair.model)
    updates, _ = optimizer.update(grads, opt_state, eqx.filter(pair.model, eqx.is_array))
    model = eqx.apply_updates(pair.model, updates)
    np.testing.assert_array_equal(model.transformer["wte"].weight, model.lm_head.weight)
    assert not np.allclose(model.lm_head.weight, pair.model.lm_head.weight)


GCN = '''
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class GraphConvolution(nn.Module):
    """pygcn's layer: legacy torch.FloatTensor(sizes) parameters, re-initialised in reset_parameters."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.FloatTensor(in_features, out_features))
        if bias:
            self.bias = nn.Parameter(torch.FloatTensor(out_features))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1. / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        if self.bias is not None:
            self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input, adj):
        support = torch.mm(input, self.weight)
        output = torch.mm(adj, support)
        if self.bias is not None:
            return output + self.bias
        else:
            return output


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass, bias=False)

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        return F.log_softmax(self.gc2(x, adj), dim=1)
'''


@pytest.mark.parametrize("cls,args", [("GraphConvolution", (6, 4)), ("GraphConvolution", (6, 4, False)),
                                      ("GCN", (6, 5, 3))])
def test_legacy_float_tensor_parameters(cls, args):
    """pygcn: `nn.Parameter(torch.FloatTensor(i, o))` allocates (jnp.empty), reset_parameters draws uniform values;
    with torch's state_dict loaded, the translation gives torch's outputs and gradients."""
    pair = Pair(GCN, cls, args)
    code = pair.result.code
    assert "jnp.empty((in_features, out_features), dtype=jnp.float32)" in code, code
    adj = RNG.random((7, 7)).astype(np.float32)
    inputs = [RNG.standard_normal((7, 6)).astype(np.float32), adj / adj.sum(1, keepdims=True)]
    pair.compare_eval(inputs)
    pair.compare_train(inputs)
    bound = 1 / np.sqrt(args[1])  # the translation's own draw: torch's distribution
    weight = np.asarray(pair.model.weight if cls == "GraphConvolution" else pair.model.gc1.weight)
    fresh = load_source(code, "jax_case")[cls](*args, key=jax.random.key(1))
    fresh_weight = np.asarray(fresh.weight if cls == "GraphConvolution" else fresh.gc1.weight)
    assert fresh_weight.shape == weight.shape and np.abs(fresh_weight).max() <= bound
    assert np.unique(fresh_weight).size == fresh_weight.size  # drawn, not the zeros jnp.empty gives


CASTS = '''
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.float())


def build():
    net = Net().float()
    net.double()
    head = nn.Linear(2, 1).half()
    net.float()
    return net, head
'''


def test_module_dtype_casts_are_dropped_and_reported():
    """`model.double()` / `.half()` / `.float()` cast a torch module's parameters in place: the translation keeps
    float32 layers (no .astype on a module, which has none), says so for double and half, and the model runs."""
    result = translate(CASTS, filename="casts.py")
    code = result.code
    statements = "\n".join(line.split("  # torch2jax:")[0] for line in code.splitlines())
    assert ".double()" not in statements and ".half()" not in statements and "net.float()" not in statements, code
    assert "# torch2jax: T2J109 module .half() dropped" in code
    assert "Net(key=" in code and "t2j.nn.Linear(2, 1, key=" in code and "astype(jnp.float16)" not in code
    assert "self.fc(x.astype(jnp.float32))" in code  # a tensor's cast stays
    warned = sorted(d.line for d in result.diagnostics if d.code == "T2J109")
    assert warned == [_line(CASTS, "net.double()"), _line(CASTS, "head = nn.Linear(2, 1).half()")]
    net, head = load_source(code, "casts_jax")["build"](key=jax.random.key(0))
    out = head(net(np.ones((4, 3), np.float32)))
    assert out.shape == (4, 1) and out.dtype == np.float32


def _line(source: str, fragment: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if fragment in line)


def test_field_set_after_init_is_an_error():
    """A counter kept in a field and updated in forward cannot live in a frozen Equinox module: an error on the
    line (a field __init__ leaves None is a cache instead, made a local: the MaskCache case)."""
    source = ("import torch.nn as nn\n\n\nclass Counter(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
              "        self.fc = nn.Linear(2, 2)\n        self.calls = 0\n\n    def forward(self, x):\n"
              "        self.calls = self.calls + 1\n        return self.fc(x)\n")
    result = translate(source, filename="counter.py")
    assert ("T2J303", 11) in [(d.code, d.line) for d in result.diagnostics if d.severity == "error"], result.code


def test_a_module_method_named_like_a_tensor_method_is_left_alone():
    """`layer.inverse(x)` on a flow layer that defines inverse is that method, not Tensor.inverse (which takes no
    argument): no diagnostic, no rewrite; `square.inverse()` on a tensor is still translated."""
    pair = Pair(SOURCE, "AffineFlow")
    assert not [d for d in pair.result.diagnostics if d.code == "T2J102"], pair.result.diagnostics
    code = pair.result.code.split("class AffineFlow")[1]
    assert "back = layer.inverse(back)" in code and "jnp.linalg.inv(square)" in code


def test_fields_that_are_also_layers_of_a_sequential_are_one_parameter():
    """The TCN's layout: `self.net = nn.Sequential(self.conv1, ...)` holds the very conv1 torch also calls
    directly, so torch lists its weight once. Built by the translation (not loaded from torch), both places hold the
    re-initialised weight, and the parameter listings match torch's names."""
    pair = Pair(SOURCE, "SharedConvBlock")
    assert sorted(n for n, _ in t2j.named_parameters(pair.model)) == sorted(
        n for n, _ in pair.torch.named_parameters())
    built = load_source(pair.result.code, "shared")["SharedConvBlock"](key=jax.random.key(0))
    tied = t2j.tied(built)
    np.testing.assert_array_equal(tied.net[0].weight, tied.conv1.weight)
    assert float(np.abs(np.asarray(tied.conv1.weight)).max()) < 0.5, "conv1's normal_(0, 0.1) reached both places"
    np.testing.assert_array_equal(built.branches[0].bias, np.zeros(4))
    np.testing.assert_array_equal(t2j.tied(built).net[2].bias, np.zeros(4))  # zeros_ through branches[0]
