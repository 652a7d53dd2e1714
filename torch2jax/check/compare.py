"""Comparing torch's results with JAX's: structure, shape, dtype kind, then values with tolerances by dtype.

Tolerances (the coarser dtype of the two sides decides; JAX runs without x64, so a torch float64 result is compared
at float32's):

    float16 / bfloat16   rtol 1e-2   atol 1e-2
    float32              rtol 1e-4   atol 1e-5      (gradients and modules: rtol 1e-3, atol 1e-4)
    float64              rtol 1e-7   atol 1e-9
    ints / bools         exact

atol is scaled by the largest magnitude of torch's result when that exceeds 1 (large inputs round in absolute
terms). NaN must meet NaN, and inf the same inf.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TOLERANCES = {  # itemsize of the float -> (rtol, atol)
    2: (1e-2, 1e-2),
    4: (1e-4, 1e-5),
    8: (1e-7, 1e-9),
}
LOOSE = {2: (3e-2, 3e-2), 4: (1e-3, 1e-4), 8: (1e-6, 1e-8)}  # gradients, modules, training


def to_numpy(value):
    """A torch tensor, JAX array or Python number as a numpy array (bfloat16 as float32)."""
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            return value.float().numpy().astype(np.float16 if str(value.dtype) == "torch.float16" else np.float32)
        return value.resolve_conj().numpy() if value.is_complex() else value.numpy()
    arr = np.asarray(value)
    if arr.dtype.name == "bfloat16":
        return arr.astype(np.float32)
    return arr


def _is_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def flatten(tree, path: str = "") -> list[tuple[str, object]]:
    """(path, leaf) pairs of a result: tuples, lists, dicts and namedtuples are walked; arrays, numbers, None and
    anything else are leaves."""
    if isinstance(tree, dict):  # by key: JAX's tree operations (vmap, tree.map) give dicts back with sorted keys
        return [leaf for k in sorted(tree, key=repr) for leaf in flatten(tree[k], f"{path}[{k!r}]")]
    if isinstance(tree, (tuple, list)) and not _is_array(tree):
        return [leaf for i, v in enumerate(tree) for leaf in flatten(v, f"{path}[{i}]")]
    return [(path, tree)]


def is_numeric(leaf) -> bool:
    return _is_array(leaf) or isinstance(leaf, (bool, int, float, complex, np.number, np.bool_))


def tolerance(dtypes, loose: bool = False) -> tuple[float, float]:
    table = LOOSE if loose else TOLERANCES
    floats = [d for d in dtypes if d.kind in "fc"]
    if not floats:
        return 0.0, 0.0
    size = min((d.itemsize // (2 if d.kind == "c" else 1)) for d in floats)
    return table.get(size, table[4])


@dataclass
class Comparison:
    ok: bool = True
    max_abs: float = 0.0
    max_rel: float = 0.0
    problems: list[str] = field(default_factory=list)

    def merge(self, other: "Comparison") -> "Comparison":
        self.ok &= other.ok
        self.max_abs = max(self.max_abs, other.max_abs)
        self.max_rel = max(self.max_rel, other.max_rel)
        self.problems += other.problems
        return self

    @property
    def message(self) -> str:
        return "; ".join(self.problems[:3]) + (f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3
                                                else "")


def _kind(dtype) -> str:
    return {"f": "float", "c": "complex", "i": "int", "u": "int", "b": "bool"}.get(dtype.kind, dtype.kind)


def compare_arrays(expected, actual, what: str, loose: bool = False, rtol=None, atol=None) -> Comparison:
    e, a = to_numpy(expected), to_numpy(actual)
    c = Comparison()
    if e.shape != a.shape:
        c.ok = False
        c.problems.append(f"{what}: shape torch {e.shape} vs JAX {a.shape}")
        return c
    if _kind(e.dtype) != _kind(a.dtype) and not (e.ndim == 0 and {_kind(e.dtype), _kind(a.dtype)} <= {"int", "float"}
                                                 and not _is_array(expected)):
        c.ok = False
        c.problems.append(f"{what}: dtype torch {e.dtype} vs JAX {a.dtype}")
        return c
    r, t = tolerance([e.dtype, a.dtype], loose)
    rtol = r if rtol is None else rtol
    atol = t if atol is None else atol
    if e.size == 0:
        return c
    if e.dtype.kind == "b" or a.dtype.kind == "b":
        diff = e != a
        c.max_abs = float(diff.sum() > 0)
        if diff.any():
            c.ok = False
            idx = tuple(int(i) for i in np.argwhere(diff)[0])
            c.problems.append(f"{what}: {int(diff.sum())} of {e.size} elements differ; first at {idx}: "
                              f"torch {e[idx]} vs JAX {a[idx]}")
        return c
    e64, a64 = e.astype(np.complex128 if "c" in (e.dtype.kind, a.dtype.kind) else np.float64), a.astype(
        np.complex128 if "c" in (e.dtype.kind, a.dtype.kind) else np.float64)
    finite = np.isfinite(e64) & np.isfinite(a64)
    same_special = (np.isnan(e64) & np.isnan(a64)) | (~np.isnan(e64) & ~np.isnan(a64) & ~np.isfinite(e64)
                                                      & (e64 == a64))
    scale = float(np.max(np.abs(e64[np.isfinite(e64)]), initial=0.0))
    atol_eff = atol * max(1.0, scale)
    err = np.where(finite, np.abs(e64 - a64), 0.0)
    bad = (finite & (err > atol_eff + rtol * np.abs(e64))) | (~finite & ~same_special)
    c.max_abs = float(err.max(initial=0.0))
    rel = np.where(finite, err / np.maximum(np.abs(e64), atol_eff if atol_eff > 0 else 1e-30), 0.0)
    c.max_rel = float(rel.max(initial=0.0))
    if bad.any():
        c.ok = False
        worst = np.where(bad, np.where(finite, err - rtol * np.abs(e64), np.inf), -np.inf)
        idx = np.unravel_index(int(np.argmax(worst)), e.shape)
        idx_t = tuple(int(i) for i in idx)
        c.problems.append(
            f"{what}: {int(bad.sum())} of {e.size} elements differ beyond rtol={rtol:g} atol={atol_eff:.3g}; "
            f"worst at {idx_t}: torch {e64[idx]:.6g} vs JAX {a64[idx]:.6g}")
    return c


def compare_trees(expected, actual, what: str = "output", loose: bool = False) -> Comparison:
    """Compare two results leaf by leaf (structure first)."""
    exp, act = flatten(expected), flatten(actual)
    c = Comparison()
    if len(exp) != len(act):
        c.ok = False
        c.problems.append(f"{what}: torch returns {len(exp)} value(s) "
                          f"({', '.join(_short(v) for _, v in exp[:4])}), JAX {len(act)} "
                          f"({', '.join(_short(v) for _, v in act[:4])})")
        return c
    for (path, e), (_, a) in zip(exp, act):
        name = f"{what}{path}"
        if e is None or a is None:
            if (e is None) != (a is None):
                c.ok = False
                c.problems.append(f"{name}: torch {_short(e)} vs JAX {_short(a)}")
            continue
        if is_numeric(e) and is_numeric(a):
            c.merge(compare_arrays(e, a, name, loose))
        elif is_numeric(e) != is_numeric(a) or (not is_numeric(e) and repr(e) != repr(a)):
            if isinstance(e, str) or isinstance(a, str) or is_numeric(e) != is_numeric(a):
                c.ok = False
                c.problems.append(f"{name}: torch {_short(e)} vs JAX {_short(a)}")
    return c


def _short(v) -> str:
    if _is_array(v):
        return f"{getattr(v, 'dtype', '?')}{list(v.shape)}".replace("torch.", "")
    text = repr(v)
    return text if len(text) < 40 else text[:37] + "..."


def float_leaves(tree) -> list[tuple[str, object]]:
    """The floating array leaves of a result (what gradients flow through)."""
    out = []
    for path, leaf in flatten(tree):
        if _is_array(leaf):
            kind = str(leaf.dtype)
            if ("float" in kind or "complex" in kind) and "float0" not in kind:
                out.append((path, leaf))
    return out
