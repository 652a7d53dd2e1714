"""Named handlers for the torch APIs that a table template cannot express.

A handler gets the pass, the record, the bound arguments and the call node, and returns the replacement
expression, or None to fall back to the record's templates.
"""
from __future__ import annotations


def unwrap_sequence(pass_, record, bound, node):
    """nn.ModuleList([...]) -> [...] and nn.ModuleDict({...}) -> {...}: a plain list or dict is the container."""
    import libcst as cst

    modules = bound.args.get("modules")
    if isinstance(modules, (cst.List, cst.ListComp, cst.Dict, cst.DictComp)):
        return modules
    return None
