"""libcst nodes hash and compare by identity, as object's own methods do, but through Python functions
(CSTNode.__hash__ returns id(self)): every dict and set keyed by nodes (positions, word caches, the nodes a pass
visits) pays a Python call per lookup. Each node class gets object's methods back: the same identity semantics,
computed in C. (Hash values differ from id(); nothing may rely on them.)"""
from __future__ import annotations

import libcst as cst
from libcst._nodes.base import CSTNode


def subclasses(cls: type):
    """Every class below cls (not cls itself), abstract ones included."""
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def use_object_identity() -> None:
    libcst_hash, libcst_eq = CSTNode.__dict__.get("__hash__"), CSTNode.__dict__.get("__eq__")
    a, b = cst.Name("x"), cst.Name("x")
    if libcst_hash is None or hash(a) != id(a) or a == b or not a == a:
        return  # not the identity semantics this reproduces: left as it is
    for cls in {CSTNode, *subclasses(CSTNode)}:
        if cls.__dict__.get("__hash__") is libcst_hash:
            cls.__hash__ = object.__hash__
        if cls.__dict__.get("__eq__") is libcst_eq:
            cls.__eq__ = object.__eq__


use_object_identity()
