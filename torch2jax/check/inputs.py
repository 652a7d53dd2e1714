"""Inputs: the spec language, shape probing, and the hypothesis strategy that draws values.

A spec gives one parameter: `x: float32[8,3,32,32]`, `idx: int64[4]:0..9` (an integer range), `dim: 1` (a Python
value, any literal). Tensors are numpy arrays here; each side converts them (torch.from_numpy / jnp.asarray).

Probing (no spec given): functions try candidate shapes and dtypes until torch runs (all tensors one shape, several
ranks; integers where a parameter's name says index/label/dim or where floats fail); modules read their first
layers (`named_modules()` order: Linear in_features, Conv in_channels, Embedding num_embeddings -> integer input,
LSTM/GRU input_size and batch_first, LayerNorm normalized_shape, ...) and then try generic shapes.

Values (`draw_values`): "random" (normal), "hypothesis" (hypothesis' own floats: repeated values, zeros,
boundaries), "zeros", "negative", "large" (x 1e3), over shape variants (one dimension set to 1, or to 0 where torch
accepts empty tensors). Gradients are compared on "random" values only (no ties, no kinks hit exactly).
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace

import numpy as np

SPEC = re.compile(r"^(?P<dtype>[a-z]+\d*)\[(?P<shape>[\d,\s]*)\](?::(?P<lo>-?[\d.e+-]+)\.\.(?P<hi>-?[\d.e+-]+))?$")
FLOAT_RANGE = (-3.0, 3.0)


@dataclass(frozen=True)
class ArgSpec:
    """One argument: a tensor (dtype, shape, value range) or a Python value."""

    name: str
    kind: str  # "tensor" or "value"
    dtype: str = "float32"
    shape: tuple = ()
    lo: float | None = None
    hi: float | None = None
    value: object = None
    keyword: bool = False  # passed by keyword (a keyword-only parameter)
    auto_hi: bool = False  # an index: hi follows the smallest dimension of the float tensors

    @property
    def is_float(self) -> bool:
        return self.kind == "tensor" and np.dtype(self.dtype).kind in "fc"

    def format(self) -> str:
        if self.kind == "value":
            return f"{self.name}={self.value!r}"
        rng = f":{_num(self.lo)}..{_num(self.hi)}" if self.lo is not None and self.hi is not None else ""
        return f"{self.name}: {self.dtype}[{','.join(map(str, self.shape))}]{rng}"


def _num(v):
    return int(v) if float(v).is_integer() else v


def parse_spec(text: str) -> ArgSpec:
    """`name: float32[3,4]`, `name: int64[5]:0..4`, `name: 1` (a Python literal)."""
    if ":" not in text:
        raise ValueError(f"input spec {text!r}: expected NAME: SPEC, e.g. 'x: float32[8,3,32,32]'")
    name, spec = (s.strip() for s in text.split(":", 1))
    m = SPEC.match(spec.replace(" ", ""))
    if m:
        dtype = str(np.dtype(m["dtype"]))
        shape = tuple(int(s) for s in m["shape"].split(",") if s.strip())
        lo = hi = None
        if m["lo"] is not None:
            lo, hi = float(m["lo"]), float(m["hi"])
        elif np.dtype(dtype).kind in "iu":
            lo, hi = 0, 4
        elif np.dtype(dtype).kind == "b":
            lo, hi = 0, 1
        return ArgSpec(name, "tensor", dtype, shape, lo, hi)
    try:
        value = ast.literal_eval(spec)
    except (ValueError, SyntaxError):
        raise ValueError(f"input spec {text!r}: {spec!r} is neither dtype[shape] nor a Python literal") from None
    return ArgSpec(name, "value", value=value)


def parse_specs(texts) -> dict[str, ArgSpec]:
    """`--input` strings (or a {name: spec} dict) as {name: ArgSpec}. A name may be qualified: `Net.x`."""
    if isinstance(texts, dict):
        texts = [f"{k}: {v}" for k, v in texts.items()]
    if isinstance(texts, str):
        texts = [texts]
    out = {}
    for t in texts or ():
        spec = parse_spec(t)
        out[spec.name] = spec
    return out


def specs_for(entry: str, params: list[str], given: dict[str, ArgSpec]) -> dict[str, ArgSpec]:
    """The user's specs that apply to `entry`'s parameters (`Entry.x` before plain `x`)."""
    out = {}
    for p in params:
        spec = given.get(f"{entry}.{p}") or given.get(p)
        if spec is not None:
            out[p] = replace(spec, name=p)
    return out


def format_specs(specs) -> str:
    return ", ".join(s.format() for s in specs)


# ------------------------------------------------------------------------------------------- values
def shape_variants(specs, allow_empty: bool = True) -> list:
    """None (the shape as given), then ("one", d) and ("empty", d) for each dimension index d."""
    rank = max((len(s.shape) for s in specs if s.kind == "tensor"), default=0)
    out = [None] + [("one", d) for d in range(rank)]
    if allow_empty:
        out += [("empty", d) for d in range(rank)]
    return out


def apply_variant(shape: tuple, variant) -> tuple:
    if variant is None:
        return tuple(shape)
    what, d = variant
    if d >= len(shape):
        return tuple(shape)
    shape = list(shape)
    shape[d] = 1 if what == "one" else 0
    return tuple(shape)


def settle(specs) -> list:
    """Probed index tensors with their range made explicit (it stays tied to the smallest dimension)."""
    bound = index_bound(specs)
    return [replace(s, hi=max(s.lo or 0, min(s.hi, bound - 1))) if s.auto_hi else s for s in specs]


def index_bound(specs, variant=None) -> int:
    """Indices go up to the smallest dimension of the float tensors (exclusive)."""
    dims = [n for s in specs if s.is_float for n in apply_variant(s.shape, variant)]
    return min(dims) if dims else 5


def draw_values(specs, mode: str = "random", seed: int = 0, variant=None, hyp_arrays=None) -> dict:
    """{name: numpy array or Python value} for `specs`."""
    rng = np.random.default_rng(seed)
    bound = index_bound(specs, variant)
    out = {}
    for s in specs:
        if s.kind == "value":
            out[s.name] = s.value
            continue
        shape = apply_variant(s.shape, variant)
        dtype = np.dtype(s.dtype)
        if dtype.kind == "b":
            out[s.name] = rng.random(shape) < 0.5
        elif dtype.kind in "iu":
            lo, hi = int(s.lo if s.lo is not None else 0), int(s.hi if s.hi is not None else 4)
            if s.auto_hi:
                hi = min(hi, bound - 1)
            hi = max(hi, lo)
            out[s.name] = rng.integers(lo, hi + 1, shape).astype(dtype)
        elif hyp_arrays is not None and s.name in hyp_arrays:
            out[s.name] = hyp_arrays[s.name]
        else:
            x = rng.standard_normal(shape)
            if s.lo is not None and s.hi is not None and (s.lo, s.hi) != FLOAT_RANGE:
                x = rng.uniform(s.lo, s.hi, shape)
            if mode == "zeros":
                x = np.zeros(shape)
            elif mode == "negative":
                x = -np.abs(x) - 0.05
            elif mode == "large":
                x = x * 1e3
            out[s.name] = x.astype(dtype)
    return out


MODES = ("hypothesis", "random", "zeros", "negative", "large")  # hypothesis first: it shrinks to the plainest arrays


def example_strategy(specs, allow_empty: bool = True):
    """A hypothesis strategy of (variant, mode, seed, values). It shrinks towards the probed shape with normal
    values (seed 0), so a shrunk failure is as plain as the bug allows."""
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    variants = shape_variants(specs, allow_empty)

    @st.composite
    def examples(draw):
        variant = draw(st.sampled_from(variants))
        mode = draw(st.sampled_from(MODES))
        seed = draw(st.integers(0, 2**16))
        hyp = None
        if mode == "hypothesis":
            hyp = {}
            for s in specs:
                if s.is_float:
                    lo, hi = (s.lo, s.hi) if s.lo is not None else FLOAT_RANGE
                    hyp[s.name] = draw(hnp.arrays(
                        np.dtype(s.dtype), apply_variant(s.shape, variant),
                        elements=st.floats(lo, hi, width=32 if np.dtype(s.dtype).itemsize <= 4 else 64,
                                           allow_nan=False, allow_infinity=False, allow_subnormal=False)))
        return Example(variant, mode, seed, draw_values(specs, mode, seed, variant, hyp))

    return examples()


@dataclass
class Example:
    variant: object
    mode: str
    seed: int
    values: dict

    def describe(self) -> str:
        shapes = ", ".join(f"{k}: {v.dtype}[{','.join(map(str, v.shape))}]" if isinstance(v, np.ndarray)
                           else f"{k}={v!r}" for k, v in self.values.items())
        what = "" if self.variant is None else f", {self.variant[0]} dim {self.variant[1]}"
        return f"{shapes} ({self.mode} values, seed {self.seed}{what})"

    def show(self, limit: int = 6) -> list[str]:
        """The values, printed small."""
        lines = []
        with np.printoptions(precision=4, threshold=40, edgeitems=3, linewidth=100):
            for k, v in self.values.items():
                text = repr(v) if not isinstance(v, np.ndarray) else np.array2string(v, separator=", ")
                text = text.splitlines()
                more = [" ..."] if len(text) > limit else []
                lines.append(f"{k} = " + "\n    ".join(text[:limit] + more))
        return lines


# ------------------------------------------------------------------------------------------- probing
SHAPES = [(3, 4), (2, 3, 4), (5,), (2, 3, 4, 5), (2, 3, 8, 8), (4, 4), (6, 6), ()]
INT_NAMES = re.compile(r"^(dim|axis|n|k|num\w*|\w*_size|size|\w*_dim|groups|heads|n_\w+|steps|count|depth)$")
INDEX_NAMES = re.compile(r"^(idx|index|indices|\w*_idx|\w*_ids|ids|labels?|targets?|tokens?|classes)$")


def function_candidates(params: list[str], keyword: set = frozenset()):
    """Candidate argument specs for a function's required parameters, most plausible first."""
    seen = set()

    def mk(name, kind, shape, **kw):
        return ArgSpec(name, kind, shape=shape, keyword=name in keyword, **kw)

    def floats(shape, name):
        return mk(name, "tensor", shape, dtype="float32")

    def ints(shape, name):
        return mk(name, "tensor", shape, dtype="int64", lo=0, hi=4, auto_hi=True)

    def by_name(shape, name):
        if INT_NAMES.match(name):
            return mk(name, "value", (), value=1)
        if INDEX_NAMES.match(name):
            return ints(shape, name)
        return floats(shape, name)

    def emit(cand):
        cand = list(cand)
        key = tuple(cand)
        if key not in seen:
            seen.add(key)
            yield cand

    for shape in SHAPES:
        yield from emit(by_name(shape, p) for p in params)
    for shape in SHAPES[:4]:
        yield from emit(floats(shape, p) for p in params)
        for i in range(len(params)):  # one parameter an index tensor (same shape, or without the last dimension)
            for sub in (shape, shape[:-1], shape[:1]):
                yield from emit(ints(sub, p) if j == i else floats(shape, p) for j, p in enumerate(params))
        for i in range(len(params)):  # one parameter a Python number
            for value in (1, 0.5, 2):
                yield from emit(mk(p, "value", (), value=value) if j == i else by_name(shape, p)
                                for j, p in enumerate(params))
    if len(params) > 1:  # first a tensor, the rest numbers
        for shape in SHAPES[:4]:
            for value in (1, 2, 0.5):
                yield from emit([floats(shape, params[0])] + [mk(p, "value", (), value=value) for p in params[1:]])


def _first_layers(module, limit: int = 3):
    """The first `limit` leaf layers that tell an input shape, in named_modules() order."""
    out = []
    for _, m in module.named_modules():
        if _layer_shapes(m, 3):
            out.append(m)
            if len(out) == limit:
                break
    return out


def _layer_shapes(m, B: int):
    """[(dtype, shape, int range)] inputs this layer accepts, most plausible first ([] if it says nothing)."""
    name = type(m).__name__
    T = 5
    f = lambda *shape: ("float32", shape, None)  # noqa: E731
    if name in ("Linear", "LazyLinear") and getattr(m, "in_features", 0):
        return [f(B, m.in_features), f(B, T, m.in_features)]
    if name in ("Bilinear",):
        return [f(B, m.in1_features)]
    sides = (16, 8, 32, 28, 10, 12, 14, 24, 20, 7, 6, 4, 64, 9, 11, 13, 15, 5, 18, 22, 26, 30)
    for n, sizes in (("1d", [(s,) for s in sides]), ("2d", [(s, s) for s in sides]), ("3d", [(8, 8, 8), (4, 4, 4)])):
        if name in (f"Conv{n}", f"ConvTranspose{n}"):
            return [f(B, m.in_channels, *s) for s in sizes]
        if name in (f"BatchNorm{n}", f"InstanceNorm{n}", f"LazyBatchNorm{n}"):
            extra = [f(B, m.num_features)] if n == "1d" else []
            return extra + [f(B, m.num_features, *s) for s in sizes]
    if name == "GroupNorm":
        return [f(B, m.num_channels, 16), f(B, m.num_channels, 8, 8)]
    if name in ("Embedding", "EmbeddingBag"):
        hi = m.num_embeddings - 1
        return [("int64", (B, t), (0, hi)) for t in (T, 4, 8, 1)] + [("int64", (B,), (0, hi))]
    if name in ("LSTM", "GRU", "RNN"):
        size = m.input_size
        return [f(B, T, size), f(T, B, size)] if m.batch_first else [f(T, B, size), f(B, T, size)]
    if name in ("LSTMCell", "GRUCell", "RNNCell"):
        return [f(B, m.input_size), f(m.input_size)]
    if name in ("LayerNorm", "RMSNorm") and m.normalized_shape:
        ns = tuple(m.normalized_shape)
        return [f(B, T, *ns), f(B, *ns)]
    if name == "MultiheadAttention":
        e = m.embed_dim
        return [f(B, T, e), f(T, B, e)] if getattr(m, "batch_first", False) else [f(T, B, e), f(B, T, e)]
    if name in ("TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder", "Transformer"):
        attn = next((c for c in m.modules() if type(c).__name__ == "MultiheadAttention"), None)
        if attn is not None:
            e, bf = attn.embed_dim, getattr(attn, "batch_first", False)
            return [f(B, T, e), f(T, B, e)] if bf else [f(T, B, e), f(B, T, e)]
    return []


GENERIC = [(8,), (3, 16, 16), (1, 28, 28), (3, 32, 32), (16,), (5, 8), (1, 16, 16), (4,), (10,), (3, 8, 8)]


def module_candidates(module, params: list[str], B: int = 3):
    """(specs, where) candidates for a torch module's forward inputs (every required input gets the same shape).
    Integer inputs stay below every embedding table's size: the inputs may index different tables (a user and an
    item id), or one input several tables."""
    tables = [m.num_embeddings for m in module.modules() if type(m).__name__ in ("Embedding", "EmbeddingBag")]
    seen = set()
    for layer in _first_layers(module):
        for dtype, shape, rng in _layer_shapes(layer, B):
            if (dtype, shape) in seen:
                continue
            seen.add((dtype, shape))
            lo, hi = rng if rng else (None, None)
            if rng and tables:
                hi = min(hi, min(tables) - 1)
            specs = [ArgSpec(p, "tensor", dtype, shape, lo, hi) for p in params]
            yield specs, f"probed from {type(layer).__name__}"
    for rest in GENERIC:
        shape = (B, *rest)
        if ("float32", shape) not in seen:
            seen.add(("float32", shape))
            yield [ArgSpec(p, "tensor", "float32", shape) for p in params], "probed (generic)"
