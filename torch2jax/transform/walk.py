"""Cheaper tree walks than libcst's defaults.

libcst looks up `visit_<Type>`, `leave_<Type>`, `visit_<Type>_<attribute>` and `leave_<Type>_<attribute>` by name
at every node, and finds its own no-op stubs for almost all of them. `Visitor` and `Transformer` look each hook up
once per (class, node type), skip the stubs, and have no per-attribute hooks (nothing here defines one).
"""
from __future__ import annotations

import libcst as cst


def _hook(cls: type, prefix: str, node_type: type):
    fn = getattr(cls, prefix + node_type.__name__, None)
    return None if fn is None or getattr(fn, "_is_no_op", False) else fn


def _hooks(cls: type, name: str) -> dict:
    table = cls.__dict__.get(name)
    if table is None:
        table = {}
        setattr(cls, name, table)
    return table


class Visitor(cst.CSTVisitor):
    def on_visit(self, node: cst.CSTNode) -> bool:
        hooks = _hooks(type(self), "_t2j_visit_hooks")
        try:
            fn = hooks[type(node)]
        except KeyError:
            fn = hooks[type(node)] = _hook(type(self), "visit_", type(node))
        return fn is None or fn(self, node) is not False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        hooks = _hooks(type(self), "_t2j_leave_hooks")
        try:
            fn = hooks[type(original_node)]
        except KeyError:
            fn = hooks[type(original_node)] = _hook(type(self), "leave_", type(original_node))
        if fn is not None:
            fn(self, original_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


class Transformer(cst.CSTTransformer):
    def on_visit(self, node: cst.CSTNode) -> bool:
        hooks = _hooks(type(self), "_t2j_visit_hooks")
        try:
            fn = hooks[type(node)]
        except KeyError:
            fn = hooks[type(node)] = _hook(type(self), "visit_", type(node))
        return fn is None or fn(self, node) is not False

    def on_leave(self, original_node, updated_node):
        hooks = _hooks(type(self), "_t2j_leave_hooks")
        try:
            fn = hooks[type(original_node)]
        except KeyError:
            fn = hooks[type(original_node)] = _hook(type(self), "leave_", type(original_node))
        return updated_node if fn is None else fn(self, original_node, updated_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass
