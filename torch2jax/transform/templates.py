"""Binding a torch call's arguments to a table record and rendering the record's JAX template.

A record's `to` is a list of templates, most specific first. A template covers a call when
- every argument the call gives (except ignored ones) is used by the template, and
- every parameter the template uses outside a plain `kw=param` argument is given (or has a table default).
A plain `kw=param` argument whose parameter was not given is dropped, so the target's own default applies;
that is only right when the target's default equals torch's, which the table tests check.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import libcst as cst

from torch2jax.mappings import ALWAYS_IGNORED, Record
from torch2jax.transform.walk import Transformer, Visitor, transform, walk

ATOMIC = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.Imaginary,
          cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Dict, cst.Set,
          cst.ListComp, cst.DictComp, cst.SetComp, cst.GeneratorExp, cst.Ellipsis)


# expressions whose parentheses mean something, or are needed, as a call argument: f((a, b)), f((x for x in y))
NEEDS_PARENS_AS_ARG = (cst.Tuple, cst.GeneratorExp, cst.NamedExpr, cst.Yield)


class BindError(Exception):
    """The call cannot be bound to the record's signature: a reason for the diagnostic."""


@dataclass
class Bound:
    args: dict[str, cst.BaseExpression]  # parameter -> the call's (already translated) expression
    given: set[str]  # parameters the call spelled out (not filled from table defaults)
    varargs: dict[str, list[cst.Arg]] | None = None  # *param -> the call's arguments, spliced where a template
    # says *param
    kwargs: list[cst.Arg] | None = None  # `**options` of a pass_kwargs record: appended to the target call


def bind(record: Record, args: list[cst.Arg], receiver: cst.BaseExpression | None = None) -> Bound:
    params = list(record.params)
    out: dict[str, cst.BaseExpression] = {}
    if receiver is not None:
        if not params:
            raise BindError("the record takes no receiver")
        out[params[0].name] = receiver
        params = params[1:]
    positional = [p for p in params if p.kind == "pos"]
    var = next((p for p in params if p.kind == "var"), None)
    extra: list[cst.Arg] = []
    kwargs: list[cst.Arg] = []
    i = 0
    for arg in args:
        if arg.keyword is not None:
            name = arg.keyword.value
            p = record.param(name)
            if p is None or p.kind == "var":
                raise BindError(f"argument '{name}' of {record.name} is not supported")
            if name in out:
                raise BindError(f"argument '{name}' given twice")
            out[name] = arg.value
        elif arg.star == "**":
            if not record.pass_kwargs:
                raise BindError("**kwargs cannot be mapped")
            kwargs.append(arg)
        elif arg.star == "*":
            if var is None or i < len(positional):
                raise BindError("*args cannot be mapped here")
            extra.append(arg)
        elif i < len(positional):
            out[positional[i].name] = arg.value
            i += 1
        elif var is not None:
            extra.append(arg)
        else:
            raise BindError(f"too many positional arguments for {record.name}")
    if var is not None and extra:
        if len(extra) == 1:
            # x.view(shape) / x.view(*shape) / torch.zeros(n): one argument is already the whole size
            out[var.name] = extra[0].value
        else:
            out[var.name] = cst.Tuple([cst.StarredElement(a.value) if a.star == "*" else cst.Element(a.value)
                                       for a in extra])  # torch.zeros(2, *rest) -> (2, *rest)
    given = set(out)
    for name, default in record.defaults.items():
        if name not in out:
            out[name] = cst.parse_expression(default)
    return Bound(out, given, {var.name: extra} if var is not None else None, kwargs or None)


def ignored(record: Record) -> frozenset:
    return record.ignore | ALWAYS_IGNORED


@cache
def parsed(template: str) -> tuple[cst.BaseExpression, frozenset, frozenset]:
    """The template's CST, the parameters used as plain `kw=param` arguments, and all names it uses."""
    expr = cst.parse_expression(template)
    droppable, used = set(), set()

    class Scan(Visitor):
        def visit_Arg(self, node: cst.Arg) -> bool:
            if (node.keyword is not None or node.star == "*") and type(node.value) is cst.Name:
                droppable.add(node.value.value)
            walk(node.value, self)  # not the keyword: `axis=` is not a use of a parameter named axis
            return False

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            walk(node.value, self)  # not the attribute name: `input.shape` does not use a parameter `shape`
            return False

        def visit_Name(self, node: cst.Name) -> None:
            used.add(node.value)

    walk(expr, Scan())
    return expr, frozenset(droppable), frozenset(used)


def choose(record: Record, bound: Bound) -> str | None:
    """The first template that covers the call, or None."""
    params = {p.name for p in record.params}
    relevant = {n for n in bound.args if n not in ignored(record) or n in record.defaults}
    for template in record.templates:
        _, droppable, used = parsed(template)
        uses = used & params
        if not relevant <= uses:
            continue
        missing = uses - bound.args.keys()
        if missing - droppable:
            continue
        return template
    return None


def expression(text: str) -> cst.BaseExpression:
    """cst.parse_expression(text), built directly for a dotted name (`jax.nn.relu`): a parse costs more."""
    parts = text.split(".")
    if not all(p.isidentifier() for p in parts):
        return cst.parse_expression(text)
    node: cst.BaseExpression = cst.Name(parts[0])
    for part in parts[1:]:
        node = cst.Attribute(node, cst.Name(part))
    return node


def paren(node: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(node, ATOMIC) or node.lpar:
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


class _Substitute(Transformer):
    def __init__(self, values: dict[str, cst.BaseExpression], missing: set[str],
                 varargs: dict[str, list[cst.Arg]]) -> None:
        self.values = values
        self.missing = missing
        self.varargs = varargs

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original.value in self.values:
            return paren(self.values[original.value])
        return updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        # an attribute's name is not a parameter: `input.shape` keeps `shape` whatever the call's `shape` is
        return updated if updated.attr is original.attr else updated.with_changes(attr=original.attr)

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg | cst.RemovalSentinel:
        if original.star == "*" and type(original.value) is cst.Name and original.value.value in self.varargs:
            # `f(*args)` in a template: the call's own arguments, as they were written
            given = self.varargs[original.value.value]
            if len(given) == 1 and not given[0].star and type(given[0].value) in (cst.List, cst.Tuple):
                # torch.meshgrid([a, b]) / torch.einsum(eq, [a, b]): one sequence literal holds the arguments
                given = [cst.Arg(e.value, star="*" if type(e) is cst.StarredElement else "")
                         for e in given[0].value.elements]
            if not given:
                return cst.RemoveFromParent()
            comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            return cst.FlattenSentinel([a.with_changes(comma=comma) for a in given])
        if original.keyword is not None and type(original.value) is cst.Name \
                and original.value.value in self.missing:
            return cst.RemoveFromParent()
        value = updated.value
        if original.value is not value and type(original.value) is cst.Name and value.lpar \
                and not isinstance(value, NEEDS_PARENS_AS_ARG):
            # a whole argument needs no parentheses: (x.argmax(1) == y).sum() -> jnp.sum(jnp.argmax(x, axis=1) == y)
            value = value.with_changes(lpar=[], rpar=[])
        if updated.keyword is original.keyword and value is updated.value:
            return updated
        return updated.with_changes(keyword=original.keyword, value=value)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        # dropped keyword arguments leave the comma of the argument before them dangling
        if updated.args and (not original.args or original.args[-1].comma is cst.MaybeSentinel.DEFAULT):
            args = list(updated.args)
            args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(args=args)
        return updated

    def leave_Element(self, original: cst.Element, updated: cst.Element) -> cst.Element:
        return self._unwrap(original, updated)

    def leave_Index(self, original: cst.Index, updated: cst.Index) -> cst.Index:
        return self._unwrap(original, updated)

    def _unwrap(self, original, updated):
        value = updated.value
        if type(original.value) is cst.Name and original.value.value in self.values and value.lpar \
                and not _had_parens(self.values[original.value.value]) and type(value) is not cst.Tuple:
            return updated.with_changes(value=value.with_changes(lpar=[], rpar=[]))
        return updated


def _breaks_line(ws) -> bool:
    return type(ws) is cst.ParenthesizedWhitespace


def _multiline(call: cst.Call) -> bool:
    return _breaks_line(call.whitespace_before_args) or any(
        _breaks_line(a.whitespace_after_arg) or (type(a.comma) is cst.Comma and _breaks_line(a.comma.whitespace_after))
        for a in call.args)


def carry_layout(original: cst.Call, out: cst.BaseExpression) -> cst.BaseExpression:
    """A call written over several lines keeps its line breaks and comments once rendered: the break after `(`,
    each argument carried over keeps the comma (and the comment after it) it had, an argument the template adds
    goes on a line of its own, and the last argument keeps what stood before `)`."""
    if type(out) is not cst.Call or not out.args or not _multiline(original):
        return out
    sources = {id(a.value): a for a in original.args}
    last_source = original.args[-1] if original.args else None
    inner = cst.Comma(whitespace_after=original.whitespace_before_args) \
        if _breaks_line(original.whitespace_before_args) else None  # a comma that starts the next argument's line
    trailing = last_source.comma if last_source is not None and type(last_source.comma) is cst.Comma \
        and _breaks_line(last_source.comma.whitespace_after) else None
    args = list(out.args)
    for i, arg in enumerate(args):
        src = sources.get(id(arg.value))
        if i == len(args) - 1:
            arg = arg.with_changes(comma=trailing or cst.MaybeSentinel.DEFAULT)
            if src is not None and _breaks_line(src.whitespace_after_arg):
                arg = arg.with_changes(whitespace_after_arg=src.whitespace_after_arg)
        elif src is not None and src is not last_source and type(src.comma) is cst.Comma:
            arg = arg.with_changes(comma=src.comma)
        elif src is not None and src is last_source and trailing is not None and inner is not None:
            # the last argument no longer is: its comment stays with it, the next line is indented as an argument
            ws = trailing.whitespace_after
            arg = arg.with_changes(comma=trailing.with_changes(whitespace_after=ws.with_changes(
                indent=inner.whitespace_after.indent, last_line=inner.whitespace_after.last_line)))
            trailing = trailing.with_changes(whitespace_after=ws.with_changes(first_line=cst.TrailingWhitespace(),
                                                                              empty_lines=[]))
        elif inner is not None:
            arg = arg.with_changes(comma=inner)
        args[i] = arg
    return out.with_changes(whitespace_before_args=original.whitespace_before_args, args=args)


def _had_parens(node: cst.BaseExpression | None) -> bool:
    return node is not None and bool(node.lpar)


def render(template: str, bound: Bound, params: set[str], extra: dict[str, cst.BaseExpression] | None = None
           ) -> cst.BaseExpression:
    expr, droppable, used = parsed(template)
    values = {k: v for k, v in bound.args.items() if k in params}
    if extra:
        values.update(extra)
    if type(expr) is cst.Name and expr.value in values:
        return values[expr.value]  # the template is one argument itself (nn.Parameter(data) -> data)
    out = transform(expr, _Substitute(values, (droppable & params) - values.keys(), bound.varargs or {}))
    return expr.deep_clone() if out is expr else out  # not the cached template itself: a pass maps nodes to places
