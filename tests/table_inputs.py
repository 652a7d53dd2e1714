"""The input spec language of the mapping tables' tests, and the torch/JAX comparison helpers they share.

A spec is `dtype[shape]` with an optional value range: "float32[3,4]", "int64[5]:0..4", "bool[2,3]",
"float32[3]:0.1..2" (positive), "float32[]" (a 0-d tensor), and optional words after it:
  signed   the range is of magnitudes, each value gets a random sign: "float32[3,4]:0.1..3 signed" keeps away from
           0 (kinks such as abs, or a divisor)
  unique   no two values equal (sort/topk indices, where torch leaves the order of ties unspecified; normalisation
           and std, where a constant group leaves only rounding noise, which torch and JAX round differently)
Values are drawn by hypothesis.
"""
from __future__ import annotations

import re

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SPEC = re.compile(r"^(?P<dtype>\w+)\[(?P<shape>[\d,\s]*)\](?::(?P<lo>-?[\d.e+-]+)\.\.(?P<hi>-?[\d.e+-]+))?"
                  r"(?P<flags>(?:\s+(?:signed|unique))*)$")
DEFAULT_RANGE = {"f": (-3.0, 3.0), "i": (-5, 5), "u": (0, 5)}


def parse_spec(spec: str):
    m = SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"bad input spec {spec!r}")
    dtype = np.dtype(m["dtype"])
    shape = tuple(int(s) for s in m["shape"].replace(" ", "").split(",") if s)
    lo, hi = DEFAULT_RANGE.get(dtype.kind, (0, 1))
    if m["lo"] is not None:
        lo, hi = float(m["lo"]), float(m["hi"])
    return dtype, shape, lo, hi


def spec_flags(spec: str) -> set[str]:
    m = SPEC.match(spec.strip())
    return set(m["flags"].split()) if m else set()


def array_strategy(spec: str) -> st.SearchStrategy:
    dtype, shape, lo, hi = parse_spec(spec)
    flags = spec_flags(spec)
    if "signed" in flags:
        magnitudes = hnp.arrays(dtype, shape, elements=_elements(dtype, lo, hi), unique="unique" in flags)
        signs = hnp.arrays(np.int8, shape, elements=st.sampled_from([-1, 1]))
        return st.tuples(magnitudes, signs).map(lambda ms: (ms[0] * ms[1]).astype(dtype))
    return hnp.arrays(dtype, shape, elements=_elements(dtype, lo, hi), unique="unique" in flags)


def _elements(dtype, lo, hi) -> st.SearchStrategy:
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        return st.integers(int(lo), int(hi))
    # bounds rounded inward to float32 (hypothesis wants them exact); no subnormals: XLA on CPU flushes them to zero
    # and torch does not, so kinks at 0 would compare unequal
    lo32, hi32 = np.float32(lo), np.float32(hi)
    if lo32 < lo:
        lo32 = np.nextafter(lo32, np.float32(np.inf))
    if hi32 > hi:
        hi32 = np.nextafter(hi32, np.float32(-np.inf))
    return st.floats(float(lo32), float(hi32), width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def to_numpy_tree(value):
    """A torch or JAX result as nested tuples of numpy arrays (ints, floats and bools as 0-d arrays)."""
    if isinstance(value, (tuple, list)):
        return tuple(to_numpy_tree(v) for v in value)
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.dtype.is_floating_point and value.dtype != __import__("torch").float32:
            value = value.float()
        return value.numpy()
    value = np.asarray(value)
    if value.dtype.kind == "V" or (value.dtype.kind == "f" and value.dtype != np.float32):
        value = value.astype(np.float32)  # bfloat16 (kind V in numpy), float16, float64: compared as torch's are
    return value


def flatten(tree) -> list:
    if isinstance(tree, tuple):
        return [leaf for item in tree for leaf in flatten(item)]
    return [tree]


def assert_close(expected, actual, rtol: float, atol: float, what: str) -> None:
    exp, act = flatten(to_numpy_tree(expected)), flatten(to_numpy_tree(actual))
    assert len(exp) == len(act), f"{what}: torch gives {len(exp)} outputs, JAX {len(act)}"
    for i, (e, a) in enumerate(zip(exp, act)):
        assert e.shape == a.shape, f"{what}[{i}]: shape torch {e.shape} vs JAX {a.shape}"
        assert e.dtype.kind == a.dtype.kind or {e.dtype.kind, a.dtype.kind} <= {"i", "u"}, \
            f"{what}[{i}]: dtype torch {e.dtype} vs JAX {a.dtype}"
        if e.dtype.kind == "f":
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what}[{i}]")
        else:
            np.testing.assert_array_equal(a, e, err_msg=f"{what}[{i}]")
