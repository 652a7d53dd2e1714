"""Name resolution from a file's imports: a small alias table, much faster than libcst's QualifiedNameProvider.

`import torch as t`, `from torch import nn`, `import torch.nn.functional as F` and `from torch.nn.functional import
relu` all become entries local name -> qualified name. A function that binds one of those names itself (a
parameter or a local variable called `torch`) shadows it inside that function.
"""
from __future__ import annotations

from functools import lru_cache

import libcst as cst

from torch2jax.transform.walk import Visitor, content_children, find_all, is_statement, iter_statements, walk, words


def dotted(node: cst.BaseExpression) -> str | None:
    """`a.b.c` as a string, or None when the expression is not a plain dotted name."""
    tp = type(node)  # exact types: libcst's classes are ABCs, slow in isinstance, and this runs everywhere
    if tp is cst.Name:
        return node.value
    if tp is cst.Attribute:
        base = dotted(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def self_calls(node: cst.CSTNode) -> set[str]:
    """The X of every `self.X(...)` under node: methods called, or fields used as callables."""
    return {n.func.attr.value for n in find_all(node, cst.Call)
            if type(n.func) is cst.Attribute and dotted(n.func.value) == "self"}


def root_name(node: cst.BaseExpression) -> str | None:
    while type(node) in (cst.Attribute, cst.Call, cst.Subscript):
        node = node.value if type(node) is not cst.Call else node.func
    return node.value if type(node) is cst.Name else None


class ImportCollector(Visitor):
    """Collects every import in the file: local name -> qualified name."""
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []

    def scan(self, module: cst.Module) -> "ImportCollector":
        """What walking the module would collect: imports are statements, so no expression needs reading."""
        for stmt in iter_statements(module):
            if type(stmt) is cst.Import:  # exact types: isinstance against libcst's abstract classes is slow
                self.visit_Import(stmt)
            elif type(stmt) is cst.ImportFrom:
                self.visit_ImportFrom(stmt)
        return self

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted(alias.name)
            if alias.asname is not None:
                self.aliases[alias.asname.name.value] = full
            else:
                top = full.split(".")[0]
                self.aliases[top] = top

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        module = dotted(node.module)
        if type(node.names) is cst.ImportStar:
            self.star_modules.append(module)
            return
        for alias in node.names:
            name = alias.name.value
            local = alias.asname.name.value if alias.asname is not None else name
            self.aliases[local] = f"{module}.{name}"


def _targets(target: cst.BaseExpression, bound: set[str]) -> None:
    if type(target) is cst.Name:
        bound.add(target.value)
    elif type(target) in (cst.Tuple, cst.List):
        for el in target.elements:
            _targets(el.value, bound)
    elif type(target) is cst.StarredElement:
        _targets(target.value, bound)


# nodes that bind their `target`: x = ..., x: T = ..., x += ..., for x in ..., [... for x in ...], (x := ...)
_TARGET_BINDERS = (cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor, cst.NamedExpr)


def _imported(node: cst.Import | cst.ImportFrom, bound: set[str]) -> None:
    """The names an import inside a function binds, but for torch's modules: `import torch.nn as nn` in a function
    (DCGAN's weights_init) names what the file's own `nn` names, so it does not hide that alias."""
    if type(node) is cst.ImportFrom:
        module = dotted(node.module) if node.module is not None else None
        if module is not None and module.split(".")[0] == "torch" or type(node.names) is cst.ImportStar:
            return
        for alias in node.names:
            _targets(alias.asname.name if alias.asname else alias.name, bound)
        return
    for alias in node.names:
        name = dotted(alias.name) or ""
        if name.split(".")[0] == "torch":
            continue
        if alias.asname is not None:
            _targets(alias.asname.name, bound)
        else:
            bound.add(name.split(".")[0])


@lru_cache(maxsize=1024)  # by node (nodes are immutable): the passes ask about the same function one after another
def bound_in_function(fn: cst.FunctionDef) -> frozenset[str]:
    """Names bound inside one function: its parameters (and its lambdas'), assignment, loop, comprehension, walrus
    and `as` targets, and the names of the functions and classes it defines; not inside those."""
    return frozenset(_bound(fn))


def bound_among(fn: cst.FunctionDef, names, word_cache: dict) -> frozenset[str]:
    """bound_in_function(fn) & names, without looking into the statements that hold none of those names (by their
    walk.words: a statement binds a name only where the name occurs in it)."""
    names = frozenset(names)
    if names.isdisjoint(words(fn, word_cache)):
        return frozenset()
    return frozenset(_bound(fn, lambda stmt: not names.isdisjoint(words(stmt, word_cache))) & names)


def _bound(fn: cst.FunctionDef, holds=None) -> set[str]:
    """bound_in_function's names; with holds(statement) false, what is in that statement is left out."""
    bound: set[str] = set()
    stack: list[cst.CSTNode] = [fn]
    while stack:
        node = stack.pop()
        tp = type(node)
        if holds is not None and node is not fn and is_statement(tp) and not holds(node):
            continue
        if tp is cst.ClassDef or (tp is cst.FunctionDef and node is not fn):
            bound.add(node.name.value)  # a nested def or class binds its name here (and may hide an import)
            continue
        if tp in (cst.Import, cst.ImportFrom):
            _imported(node, bound)
            continue
        if tp is cst.Param:
            bound.add(node.name.value)
        elif tp in _TARGET_BINDERS:
            _targets(node.target, bound)
        elif tp is cst.AsName:
            _targets(node.name, bound)
        stack.extend(content_children(node))
    return bound


def module_level_rebinds(module: cst.Module, aliases: dict[str, str]) -> set[str]:
    """Alias names that the module body rebinds with something other than an import (so they are not torch)."""
    out = set()
    for stmt in module.body:
        if type(stmt) is cst.SimpleStatementLine:
            for small in stmt.body:
                if type(small) is cst.Assign:
                    for t in small.targets:
                        if type(t.target) is cst.Name and t.target.value in aliases:
                            out.add(t.target.value)
        elif type(stmt) in (cst.FunctionDef, cst.ClassDef) and stmt.name.value in aliases:
            out.add(stmt.name.value)
    return out


class Scopes:
    """The alias table plus a stack of function scopes, to resolve a dotted expression to a qualified name."""

    def __init__(self, aliases: dict[str, str], rebound: set[str] = frozenset(), positions: dict | None = None,
                 word_cache: dict | None = None) -> None:
        self.aliases = aliases
        self.word_cache = word_cache  # walk.words': a function none of whose words is an alias shadows none
        self.rebound = set(rebound)  # import names the module rebinds to something else (`F = np`)
        self.shadow_stack: list[set[str]] = []
        self.positions = positions if positions is not None else {}
        self._shadowed: dict = {}  # function's stored source position -> the aliases it shadows

    def push(self, fn: cst.FunctionDef) -> None:
        # the function's source position as stored (a rebuilt function carries its original's): one cache entry
        # for the function in every pass
        where = dict.get(self.positions, fn)
        if where is None or where not in self._shadowed:
            if self.word_cache is None:
                shadowed = bound_in_function(fn) & self.aliases.keys()
            else:
                shadowed = bound_among(fn, self.aliases.keys(), self.word_cache)
            if where is None:
                self.shadow_stack.append(shadowed)
                return
            self._shadowed[where] = shadowed
        self.shadow_stack.append(self._shadowed[where])

    def pop(self) -> None:
        self.shadow_stack.pop()

    def is_shadowed(self, name: str) -> bool:
        return any(name in s for s in self.shadow_stack)

    def qualname(self, node: cst.BaseExpression) -> str | None:
        path = dotted(node)
        if path is None:
            return None
        head, _, rest = path.partition(".")
        full = self.aliases.get(head)
        if full is None or self.is_shadowed(head):
            return None
        return f"{full}.{rest}" if rest else full

    def is_import(self, name: str) -> bool:
        return name in self.aliases and not self.is_shadowed(name)


def return_values(fn: cst.FunctionDef) -> list:
    """The values of fn's `return` statements (None for a bare return), not counting nested functions."""
    found = []

    class V(Visitor):
        def visit_FunctionDef(self, node) -> bool:
            return node is fn

        def visit_Lambda(self, node) -> bool:
            return False

        def visit_Return(self, node) -> None:
            found.append(node.value)

    walk(fn, V())
    return found
