"""The input spec language of the mapping tables' tests, and the torch/JAX comparison helpers they share.

A spec is `dtype[shape]` with an optional value range: "float32[3,4]", "int64[5]:0..4", "bool[2,3]",
"float32[3]:0.1..2" (positive), "float32[]" (a 0-d tensor). Values are drawn by hypothesis.
"""
from __future__ import annotations

import re

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

SPEC = re.compile(r"^(?P<dtype>\w+)\[(?P<shape>[\d,\s]*)\](?::(?P<lo>-?[\d.e+-]+)\.\.(?P<hi>-?[\d.e+-]+))?$")
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


def array_strategy(spec: str) -> st.SearchStrategy:
    dtype, shape, lo, hi = parse_spec(spec)
    if dtype.kind == "b":
        elements = st.booleans()
    elif dtype.kind in "iu":
        elements = st.integers(int(lo), int(hi))
    else:
        elements = st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)
    return hnp.arrays(dtype, shape, elements=elements)


def to_numpy_tree(value):
    """A torch or JAX result as nested tuples of numpy arrays (ints, floats and bools as 0-d arrays)."""
    if isinstance(value, (tuple, list)):
        return tuple(to_numpy_tree(v) for v in value)
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.dtype.is_floating_point and value.dtype != __import__("torch").float32:
            value = value.float()
        return value.numpy()
    return np.asarray(value)


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
