"""Cheaper tree walks than libcst's defaults.

libcst looks up `visit_<Type>`, `leave_<Type>`, `visit_<Type>_<attribute>` and `leave_<Type>_<attribute>` by name
at every node, and finds its own no-op stubs for almost all of them. `Visitor` and `Transformer` look each hook up
once per (class, node type), skip the stubs, and have no per-attribute hooks (nothing here defines one).

libcst's `node.visit(visitor)` also rebuilds every node of the tree even for a visitor that changes nothing.
`walk(node, visitor)` calls a visitor's hooks on the same nodes in the same order, without the rebuilding, and
`transform(node, transformer)` rebuilds only the nodes below which something changed.
`words(node)` is a cheaper still summary of a subtree for the passes to decide whether to visit it at all.
"""
from __future__ import annotations

import dataclasses
import typing

import libcst as cst

from torch2jax.transform import node_identity  # noqa: F401  (node hashing in C)


# Layout: whitespace and comments, brackets, commas, dots, colons, operators. No pass looks at these nodes, and they
# are more than half of all nodes: transformers leave them as they are, unvisited.
_LAYOUT_BASES = (cst.BaseParenthesizableWhitespace, cst.EmptyLine, cst.TrailingWhitespace, cst.Newline, cst.Comment,
                 cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace,
                 cst.RightCurlyBrace, cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual, cst.BaseBinaryOp,
                 cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp, cst.Asynchronous)
_IS_LAYOUT: dict[type, bool] = {}


def is_layout(tp: type) -> bool:
    known = _IS_LAYOUT.get(tp)
    if known is None:
        known = _IS_LAYOUT[tp] = issubclass(tp, _LAYOUT_BASES)
    return known


# libcst's concrete node classes (all of them are in its namespace): what the tables and patches by class go over
NODE_CLASSES = tuple(tp for tp in vars(cst).values() if isinstance(tp, type) and issubclass(tp, cst.CSTNode)
                     and not getattr(tp, "__abstractmethods__", None))


def _hook_names(cls: type) -> frozenset[str]:
    """The visit_/leave_ names that cls and its bases define outside libcst (libcst's own are no-op stubs). Kept
    on the class: visitors are made by the thousand, and most node types have no hook."""
    names = cls.__dict__.get("_hook_names_")
    if names is None:
        names = frozenset(n for k in cls.__mro__ if not k.__module__.startswith("libcst") for n in k.__dict__
                          if n.startswith(("visit_", "leave_")))
        setattr(cls, "_hook_names_", names)
    return names


def _class_hooks(cls: type, prefix: str) -> dict:
    """node type -> cls's hook for it or None, filled as types are met: one table per class, shared by its
    instances (visitors are made by the thousand)."""
    attr = "_hooks_" + prefix
    hooks = cls.__dict__.get(attr)
    if hooks is None:
        hooks = {}
        setattr(cls, attr, hooks)
    return hooks


def _hook(cls: type, prefix: str, node_type: type):
    name = prefix + node_type.__name__
    if name not in _hook_names(cls):
        return None
    fn = getattr(cls, name, None)
    return None if fn is None or getattr(fn, "_is_no_op", False) else fn


class Visitor:
    """A visitor for walk(): visit_<Type>(node) (False: not into its children) and leave_<Type>(node) hooks, as a
    cst.CSTVisitor's. Not a cst.CSTVisitor itself: that is an ABC with hundreds of stub methods, and making one of
    its subclasses costs more than most walks (the passes define visitor classes inside functions)."""

    # False: the visitor's hooks look at no layout node (whitespace, brackets, commas, operators), which walk() then
    # leaves out (about half of all nodes). No visitor here looks at layout; a plain cst.CSTVisitor is shown it.
    SEES_LAYOUT = False
    # node type -> the visit_/leave_ hook or None: the class's table (_class_hooks), looked up once per instance
    _visit_hooks: dict | None = None
    _leave_hooks: dict | None = None

    def on_visit(self, node: cst.CSTNode) -> bool:
        hooks = self._visit_hooks
        if hooks is None:
            hooks = self._visit_hooks = _class_hooks(type(self), "visit_")
        try:
            fn = hooks[type(node)]
        except KeyError:
            fn = hooks[type(node)] = _hook(type(self), "visit_", type(node))
        return fn is None or fn(self, node) is not False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        hooks = self._leave_hooks
        if hooks is None:
            hooks = self._leave_hooks = _class_hooks(type(self), "leave_")
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
    _visit_hooks: dict | None = None  # as Visitor's
    _leave_hooks: dict | None = None

    def on_visit(self, node: cst.CSTNode) -> bool:
        if is_layout(type(node)):
            return False
        return self._visit_hook(node)

    def _visit_hook(self, node: cst.CSTNode) -> bool:
        """The class's visit_<Type> hook for node, if any (False: not into its children)."""
        hooks = self._visit_hooks
        if hooks is None:
            hooks = self._visit_hooks = _class_hooks(type(self), "visit_")
        try:
            fn = hooks[type(node)]
        except KeyError:
            fn = hooks[type(node)] = _hook(type(self), "visit_", type(node))
        return fn is None or fn(self, node) is not False

    def on_leave(self, original_node, updated_node):
        hooks = self._leave_hooks
        if hooks is None:
            hooks = self._leave_hooks = _class_hooks(type(self), "leave_")
        try:
            fn = hooks[type(original_node)]
        except KeyError:
            fn = hooks[type(original_node)] = _hook(type(self), "leave_", type(original_node))
        return updated_node if fn is None else fn(self, original_node, updated_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


# Fields that hold only layout (whitespace, brackets, commas, operators): nothing a pass looks for.
_LAYOUT_FIELDS = frozenset({
    "lpar", "rpar", "lbrace", "rbrace", "lbracket", "rbracket", "comma", "semicolon", "colon", "first_colon",
    "second_colon", "dot", "equal", "operator", "asynchronous", "leading_lines", "lines_after_decorators", "header",
    "footer", "trailing_whitespace", "leading_whitespace", "empty_lines", "first_line", "last_line", "indent",
    "newline", "comment", "separator", "trailing_comma", "relative", "posonly_ind", "star", "conversion", "start",
    "end", "default_indent", "default_newline", "encoding", "has_trailing_newline"})

# --- walking a tree for a Visitor: the same hooks, in libcst's order, nothing rebuilt ------------------------------
_ORDER: dict[type, tuple[str, ...]] = {}  # every field, in libcst's visiting order
_CONTENT_ORDER: dict[type, tuple[str, ...]] = {}  # the same without the layout fields


class _FieldOrder(cst.CSTVisitor):
    """The order in which libcst visits one node's fields: it visits the node without descending further."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return node is self.root

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if node is self.root and attribute not in self.fields:
            self.fields.append(attribute)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


def _field_order(node: cst.CSTNode) -> tuple[str, ...]:
    order = _ORDER.get(type(node))
    if order is None:
        recorder = _FieldOrder(node)
        node.visit(recorder)
        # a field libcst visits only when it is set (an f-string's format_spec) comes last, as libcst visits it
        rest = [f.name for f in dataclasses.fields(node) if f.name not in recorder.fields]
        order = _ORDER[type(node)] = tuple(recorder.fields + rest)
    return order


def _content_order(node: cst.CSTNode) -> tuple[str, ...]:
    order = _CONTENT_ORDER.get(type(node))
    if order is None:
        order = _CONTENT_ORDER[type(node)] = tuple(
            f for f in _field_order(node) if f not in _LAYOUT_FIELDS and not f.startswith("whitespace"))
    return order


def content_children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """node's children in libcst's order, without layout (whitespace, brackets, commas, operators)."""
    out = []
    node_types = _IS_NODE
    names = _NODE_FIELDS.get(type(node))
    for name in _node_fields(node) if names is None else names:
        value = getattr(node, name)
        tv = type(value)
        if tv is tuple or tv is list:
            out.extend(value)
        elif node_types[tv]:
            out.append(value)
    return out


_DATA = (str, bool, int, float, typing.Optional[str])  # field types that never hold a node
_NODE_FIELDS: dict[type, tuple[str, ...]] = {}  # content fields that may hold nodes, in libcst's order


def _node_fields(node: cst.CSTNode) -> tuple[str, ...]:
    tp = type(node)
    names = _NODE_FIELDS.get(tp)
    if names is None:
        data = {f.name for f in dataclasses.fields(tp) if f.type in _DATA}
        names = _NODE_FIELDS[tp] = tuple(f for f in _content_order(node) if f not in data)
    return names


def find_all(node: cst.CSTNode, *types: type) -> list:
    """Every node of one of these exact types in node (node included), in source order: a walk without a visitor
    class (a class made per call costs more than the walk)."""
    out = []
    stack = [node]
    backwards = _BACKWARD_FIELDS
    node_types = _IS_NODE
    while stack:
        n = stack.pop()
        tp = type(n)
        if tp in types:
            out.append(n)
        names = backwards.get(tp)
        if names is None:
            names = backwards[tp] = tuple(reversed(_node_fields(n)))
        for name in names:  # children pushed last first: they come off the stack in source order
            value = getattr(n, name)
            tv = type(value)
            if tv is tuple or tv is list:
                stack.extend(reversed(value))
            elif node_types[tv]:
                stack.append(value)
    return out


_BACKWARD_FIELDS: dict[type, tuple[str, ...]] = {}  # _node_fields, last first


def walk(node: cst.CSTNode, visitor: cst.CSTVisitor) -> None:
    """`node.visit(visitor)` for a visitor (no changes): the same on_visit/on_leave calls on the same nodes in the
    same order, several times faster. A visitor whose SEES_LAYOUT is False is not shown layout nodes."""
    if not getattr(visitor, "SEES_LAYOUT", True):
        cls = type(visitor)
        if cls.on_visit is Visitor.on_visit and cls.on_leave is Visitor.on_leave:
            # the hooks called directly: a third of the time of going through on_visit and on_leave
            if visitor._visit_hooks is None:
                visitor._visit_hooks = _class_hooks(cls, "visit_")
            if visitor._leave_hooks is None:
                visitor._leave_hooks = _class_hooks(cls, "leave_")
            _walk_hooks(node, visitor, visitor._visit_hooks, visitor._leave_hooks, cls)
        else:
            _walk(node, visitor, _node_fields)
    else:
        _walk(node, visitor, _field_order)


def _walk_hooks(node: cst.CSTNode, visitor, visit_hooks: dict, leave_hooks: dict, cls: type) -> None:
    tp = type(node)
    try:
        fn = visit_hooks[tp]
    except KeyError:
        fn = visit_hooks[tp] = _hook(cls, "visit_", tp)
    if fn is None or fn(visitor, node) is not False:
        names = _NODE_FIELDS.get(tp)
        for name in _node_fields(node) if names is None else names:
            value = getattr(node, name)
            tv = type(value)
            if tv is tuple or tv is list:
                for child in value:
                    _walk_hooks(child, visitor, visit_hooks, leave_hooks, cls)
            elif value is not None and _IS_NODE[tv]:
                _walk_hooks(value, visitor, visit_hooks, leave_hooks, cls)
    try:
        fn = leave_hooks[tp]
    except KeyError:
        fn = leave_hooks[tp] = _hook(cls, "leave_", tp)
    if fn is not None:
        fn(visitor, node)


def _walk(node: cst.CSTNode, visitor: cst.CSTVisitor, order) -> None:
    if visitor.on_visit(node):
        for name in order(node):
            value = getattr(node, name)
            tv = type(value)
            if tv is tuple or tv is list:
                for child in value:
                    _walk(child, visitor, order)
            elif is_node(tv):
                _walk(value, visitor, order)
    visitor.on_leave(node)


# --- the words of a subtree: what a pass tests before it walks a statement -------------------------------------
_FIELDS: dict[type, tuple[str, ...]] = {}


class _NodeTypes(dict):
    """type -> whether its values are libcst nodes, found on first lookup (a dict: hot loops read it directly)."""

    def __missing__(self, tp: type) -> bool:
        known = self[tp] = isinstance(tp, type) and issubclass(tp, cst.CSTNode)
        return known


_IS_NODE = _NodeTypes()
_STATEMENTS = (cst.SimpleStatementLine, cst.BaseCompoundStatement)

# markers for constructs a pass looks for that no identifier reveals (not identifiers, so they never clash)
AUGASSIGN = "<augassign>"  # x += y
SETITEM = "<setitem>"  # x[i] = v (also inside a tuple target)
SETATTR = "<setattr>"  # x.a = v or x[i] = v (not self.a = v, the plain field assignment)
CLASS = "<class>"  # a class definition
SEMICOLON = "<;>"  # a statement ended by a semicolon
LAMBDA = "<lambda>"  # a lambda


_IS_STATEMENT: dict[type, bool] = {}


def is_statement(tp: type) -> bool:
    """isinstance(node, (SimpleStatementLine, BaseCompoundStatement)) by the node's type, cached: this runs at every
    node of every pass, and an isinstance test against libcst's abstract classes is slow."""
    known = _IS_STATEMENT.get(tp)
    if known is None:
        known = _IS_STATEMENT[tp] = issubclass(tp, _STATEMENTS)
    return known


def _fields(tp: type) -> tuple[str, ...]:
    names = _FIELDS.get(tp)
    if names is None:
        names = _FIELDS[tp] = tuple(f.name for f in dataclasses.fields(tp) if f.name not in _LAYOUT_FIELDS
                                    and not f.name.startswith("whitespace") and f.type not in _DATA)
    return names


def is_node(tp: type) -> bool:
    """isinstance(value, cst.CSTNode) by the value's type, cached (libcst's abstract classes make isinstance slow)."""
    return _IS_NODE[tp]


def _has_subscript(target) -> bool:
    tp = type(target)  # exact types: isinstance against libcst's abstract classes is slow
    if tp is cst.Subscript:
        return True
    if tp is cst.Tuple or tp is cst.List:
        return any(_has_subscript(e.value) for e in target.elements)
    return False


# what words() notes at a node besides its identifiers, by the node's type (one lookup per node)
_W_OTHER, _W_NAME, _W_ASSIGN, _W_AUG, _W_CLASS, _W_LAMBDA, _W_ATTRIBUTE, _W_ARG, _W_LINE = range(9)
_WORD_KIND = {cst.Name: _W_NAME, cst.Assign: _W_ASSIGN, cst.AugAssign: _W_AUG, cst.ClassDef: _W_CLASS,
              cst.Lambda: _W_LAMBDA, cst.Attribute: _W_ATTRIBUTE, cst.Arg: _W_ARG,
              cst.SimpleStatementLine: _W_LINE, cst.SimpleStatementSuite: _W_LINE}
_WORD_PLANS: dict[type, tuple[int, bool, tuple[str, ...]]] = {}  # type -> (kind, is a statement, its node fields)


def _word_plan(tp: type) -> tuple[int, bool, tuple[str, ...]]:
    plan = _WORD_PLANS[tp] = (_WORD_KIND.get(tp, _W_OTHER), is_statement(tp), _fields(tp))
    return plan


def words(node: cst.CSTNode, cache: dict) -> set[str]:
    """Every identifier in node (names, attribute names, keywords, def, class and parameter names), plus the
    markers above. Cached by node (nodes are immutable) for node and every statement inside it: a pass that left a
    statement alone hands the same node to the next pass, which finds its words already there."""
    found = cache.get(node)
    if found is not None:
        return found
    out: set[str] = set()
    stack = [node]
    plans = _WORD_PLANS
    node_types = _IS_NODE
    while stack:
        n = stack.pop()
        tp = type(n)
        plan = plans.get(tp) or _word_plan(tp)
        kind = plan[0]
        if kind == _W_NAME:
            out.add(n.value)
            continue
        if plan[1] and n is not node:
            out |= words(n, cache)
            continue
        if kind:
            if kind == _W_ATTRIBUTE:
                out.add("." + n.attr.value)  # an attribute name: x.view has the words x, view and .view
            elif kind == _W_ARG:
                if n.keyword is not None:
                    out.add(n.keyword.value + "=")  # a keyword argument: f(out=y) has the words out and out=
            elif kind == _W_ASSIGN:
                for t in n.targets:
                    target = t.target
                    if type(target) is cst.Subscript or type(target) is cst.Attribute and not (
                            type(target.value) is cst.Name and target.value.value == "self"):
                        out.add(SETATTR)
                    if _has_subscript(t.target):
                        out.add(SETITEM)
            elif kind == _W_AUG:
                out.add(AUGASSIGN)
            elif kind == _W_CLASS:
                out.add(CLASS)
            elif kind == _W_LAMBDA:
                out.add(LAMBDA)
            elif kind == _W_LINE:
                if any(type(small.semicolon) is cst.Semicolon for small in n.body):
                    out.add(SEMICOLON)
        for name in plan[2]:
            value = getattr(n, name)
            tv = type(value)
            if tv is tuple or tv is list:
                stack.extend(value)
            elif node_types[tv]:
                stack.append(value)
    cache[node] = out
    return out


def names_read(node: cst.CSTNode, skip: tuple[type, ...] = (), among: frozenset[str] | None = None) -> set[str]:
    """The names used in node: every Name but an attribute's (`self.key` does not use `key`) and a keyword's
    (`f(key=k)` neither), and none inside a node of a type in `skip` (concrete node types; node itself
    included). With `among`: only those names (the search stops when it has found them all)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        tp = type(n)
        if tp is cst.Name:
            if among is None:
                out.add(n.value)
            elif n.value in among:
                out.add(n.value)
                if len(out) == len(among):
                    return out
        elif tp is cst.Attribute or tp is cst.Arg:
            stack.append(n.value)
        elif not (skip and tp in skip):
            for name in _fields(tp):
                value = getattr(n, name)
                tv = type(value)
                if tv is tuple or tv is list:
                    stack.extend(value)
                elif is_node(tv):
                    stack.append(value)
    return out


_BLOCKS = (cst.BaseSuite, cst.Else, cst.ExceptHandler, cst.ExceptStarHandler, cst.Finally, cst.MatchCase)


_SMALL, _STATEMENT, _BLOCK = 1, 2, 3
_STATEMENT_KIND: dict[type, int] = {}


def _statement_kind(tp: type) -> int:
    kind = _STATEMENT_KIND.get(tp)
    if kind is None:
        kind = _STATEMENT_KIND[tp] = (
            _SMALL if issubclass(tp, cst.BaseSmallStatement)
            else _STATEMENT if issubclass(tp, (cst.BaseCompoundStatement, cst.SimpleStatementLine))
            else _BLOCK if issubclass(tp, _BLOCKS) else 0)
    return kind


def iter_statements(node: cst.CSTNode, enter=None):
    """Every statement under node, in source order: compound statements, simple statement lines and the small
    statements in them (what a visitor meets first, without looking inside any expression). `enter(statement)`
    false: what is inside that statement is left out."""
    # a stack of the children lists being gone through (nested generators would pass each statement up through
    # every level of nesting)
    kinds = _STATEMENT_KIND
    stack = [iter(content_children(node))]
    while stack:
        for child in stack[-1]:
            tp = type(child)
            kind = kinds.get(tp)
            if kind is None:
                kind = _statement_kind(tp)
            if kind == _SMALL:
                yield child
            elif kind == _STATEMENT:
                yield child
                if enter is None or enter(child):
                    stack.append(iter(content_children(child)))
                    break
            elif kind == _BLOCK:
                stack.append(iter(content_children(child)))
                break
        else:
            stack.pop()


_HOLDS_STATEMENTS: dict[type, bool] = {}


def _holds_statements(tp: type) -> bool:
    """A statement, or an indented block (nothing but statements)."""
    known = _HOLDS_STATEMENTS.get(tp)
    if known is None:
        known = _HOLDS_STATEMENTS[tp] = issubclass(tp, (cst.SimpleStatementLine, cst.BaseCompoundStatement,
                                                        cst.IndentedBlock))
    return known


def nodes_reaching(stmt: cst.CSTNode, targets: set[str]) -> set[cst.CSTNode]:
    """The nodes of statement `stmt` (not of the statements nested in it, and no layout) that have a Name from
    `targets` in them, or an attribute (".name" in targets): the way down to each."""
    found: set[cst.CSTNode] = set()

    def reaches(n: cst.CSTNode) -> bool:
        tp = type(n)
        if tp is cst.Name:
            hit = n.value in targets
        else:
            hit = tp is cst.Attribute and "." + n.attr.value in targets
            for child in content_children(n):
                if not _holds_statements(type(child)) and reaches(child):
                    hit = True
        if hit:
            found.add(n)
        return hit

    for child in content_children(stmt):
        if not _holds_statements(type(child)):
            reaches(child)
    return found


# --- transforming a tree: libcst's visit without rebuilding what did not change -----------------------------------
def _removed_value(node: cst.CSTNode, name: str):
    """What a field becomes when the transformer removed the node in it (libcst's visit_optional/visit_sentinel)."""
    for f in dataclasses.fields(node):
        if f.name == name:
            if f.default is None:
                return None
            if isinstance(f.default, cst.MaybeSentinel):
                return cst.MaybeSentinel.DEFAULT
    raise TypeError(f"We got a RemovalSentinel while visiting a {type(getattr(node, name)).__name__}. This node's "
                    "parent does not allow it to be removed.")


def transform(node: cst.CSTNode, transformer: cst.CSTTransformer):
    """`node.visit(transformer)` for a transformer that leaves layout alone (walk.Transformer): the same on_visit and
    on_leave calls on the same content nodes in the same order, but a node whose children all came back unchanged
    is handed to on_leave as it is instead of being rebuilt, and an unchanged tree comes back as the same object."""
    result = _transform(node, transformer)
    if type(node) is cst.Module and isinstance(result, cst.RemovalSentinel):
        return node.with_changes(body=(), header=(), footer=())
    return result


def _transform(node: cst.CSTNode, t: cst.CSTTransformer):
    updated = node
    if t.on_visit(node):
        changes = None
        names = _NODE_FIELDS.get(type(node))
        for name in _node_fields(node) if names is None else names:
            value = getattr(node, name)
            tv = type(value)
            if tv is tuple or tv is list:
                # a block's statements (libcst's visit_body_sequence): a line whose statements were all removed goes
                body = name == "body" and (type(node) is cst.Module or type(node) is cst.IndentedBlock)
                items = None
                for i, child in enumerate(value):
                    new = _transform(child, t)
                    if new is not child and items is None:
                        items = list(value[:i])
                    if items is not None:
                        if new is child:
                            items.append(new)
                        elif type(new) is cst.FlattenSentinel:
                            items.extend(n for n in new if not (body and n._is_removable()
                                                                and not child._is_removable()))
                        elif type(new) is not cst.RemovalSentinel and not (
                                body and new._is_removable() and not child._is_removable()):
                            items.append(new)
                if items is not None:
                    if changes is None:
                        changes = {}
                    changes[name] = tuple(items)
            elif is_node(tv):
                new = _transform(value, t)
                if new is not value:
                    if type(new) is cst.FlattenSentinel:
                        raise TypeError(f"We got a FlattenSentinel while visiting a {tv.__name__}. This node's "
                                        "parent does not allow for it to be replaced with a sequence.")
                    if changes is None:
                        changes = {}
                    changes[name] = _removed_value(node, name) if type(new) is cst.RemovalSentinel else new
        if changes:
            updated = node.with_changes(**changes)
    return t.on_leave(node, updated)
