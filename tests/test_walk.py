"""walk.walk visits like libcst's own node.visit (same hooks, same nodes, same order), and walk.transform rewrites
like it; walk.words sees every name; positions.positions gives what libcst's PositionProvider gives."""
from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from torch2jax.transform.positions import positions
from torch2jax.transform.walk import Transformer, find_all, is_layout, iter_statements, transform, walk, words

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "samples").glob("*.py")) + sorted((ROOT / "tests" / "cases").rglob("*.py")) + sorted(
    (ROOT / "torch2jax").rglob("*.py"))
EXTRA = '''
x = f"{a!r:>{width}} {b=} {c:{d}.{e}}"
from . import y
from .. z import *
async def g(*, k=lambda q: q[1:2, ::3], **kw) -> "T":
    async with a as (b, c), d:
        match p:
            case [1, *rest] | {"k": v, **kw} if v: pass
            case Point(x=0) as pt: del pt
    try: raise E from err
    except* (A, B) as e: yield
    finally: global gg; nonlocal nn
    return [i async for i in xs if i], {k: v for k, v in d}, (await z), x if y else w, not a, ~b, a @ b
y = (x) + ( (z) ) * f((a), b=(c))[(i)]  # names in parentheses
'''


class Record(cst.CSTVisitor):
    def __init__(self) -> None:
        self.events: list = []

    def on_visit(self, node) -> bool:
        self.events.append(("visit", id(node)))
        return not isinstance(node, cst.Lambda)  # a pruned subtree too

    def on_leave(self, original_node) -> None:
        self.events.append(("leave", id(original_node)))


@pytest.mark.parametrize("source", [p.read_text() for p in FILES] + [EXTRA],
                         ids=[p.name for p in FILES] + ["extra"])
def test_walk_visits_like_libcst(source):
    module = cst.parse_module(source)
    expected, got = Record(), Record()
    module.visit(expected)
    walk(module, got)
    assert got.events == expected.events


def test_words_has_every_name():
    module = cst.parse_module(EXTRA)
    names = set()

    class Names(cst.CSTVisitor):
        def visit_Name(self, node) -> None:
            names.add(node.value)

    module.visit(Names())
    assert names <= words(module, {})


@pytest.mark.parametrize("source", [p.read_text() for p in FILES] + [EXTRA],
                         ids=[p.name for p in FILES] + ["extra"])
def test_iter_statements_in_visit_order(source):
    module = cst.parse_module(source)
    expected = []

    class Statements(cst.CSTVisitor):
        def on_visit(self, node) -> bool:
            if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.SimpleStatementLine)):
                expected.append(node)
            return True

    module.visit(Statements())
    got = list(iter_statements(module))
    assert len(got) == len(expected) and all(a is b for a, b in zip(got, expected))

    outside = []  # enter=...: a function's statements left out, as a visitor that does not go into defs

    class Outside(cst.CSTVisitor):
        def on_visit(self, node) -> bool:
            if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.SimpleStatementLine)):
                outside.append(node)
            return not isinstance(node, cst.FunctionDef)

    module.visit(Outside())
    got = list(iter_statements(module, enter=lambda stmt: not isinstance(stmt, cst.FunctionDef)))
    assert len(got) == len(outside) and all(a is b for a, b in zip(got, outside))


# PositionProvider is slow: the positions test reads the samples and cases, and this package's files only as far as
# the four with the most varied syntax
POSITION_FILES = [p for p in FILES if p.relative_to(ROOT).parts[0] != "torch2jax" or p.name in (
    "walk.py", "positions.py", "templates.py", "cli.py")]


@pytest.mark.parametrize("source", [p.read_text() for p in POSITION_FILES] + [EXTRA],
                         ids=[p.name for p in POSITION_FILES] + ["extra"])
def test_positions_as_libcst_gives_them(source):
    module = cst.parse_module(source)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    got = positions(module)
    assert list(got) == list(expected)
    assert all((r.start.line, r.start.column, r.end.line, r.end.column) == (
        e.start.line, e.start.column, e.end.line, e.end.column) for r, e in zip(got.values(), expected.values()))
    content = positions(module, layout=False)  # what the passes use: every node but layout
    assert set(content) >= {n for n in expected if not is_layout(type(n))}
    assert all((r.start.line, r.start.column, r.end.line, r.end.column) == (
        expected[n].start.line, expected[n].start.column, expected[n].end.line, expected[n].end.column)
        for n, r in content.items())


class Rewrite(Transformer):
    """Renames, drops `pass`, `del` and docstring lines, splits `a = b = c` lines in two, drops default values and
    records the content nodes it meets: the kinds of result libcst's visit has rules for (removal from a block
    that empties a line, removal of an optional field, a FlattenSentinel in a block)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    def on_visit(self, node) -> bool:
        go = super().on_visit(node)
        if go is not False and not isinstance(node, cst.Lambda):
            self.events.append(("visit", type(node).__name__))
            return True
        return False

    def leave_Name(self, original, updated):
        return updated.with_changes(value=updated.value + "_") if updated.value.startswith("a") else updated

    def leave_Pass(self, original, updated):
        return cst.RemoveFromParent()

    def leave_Del(self, original, updated):
        return cst.RemoveFromParent()

    def leave_Expr(self, original, updated):
        return cst.RemoveFromParent() if isinstance(updated.value, cst.SimpleString) else updated

    def leave_Param(self, original, updated):
        return updated.with_changes(default=None, equal=cst.MaybeSentinel.DEFAULT) if updated.star == "" else updated

    def leave_SimpleStatementLine(self, original, updated):
        if len(updated.body) == 1 and isinstance(updated.body[0], cst.Assign) and len(updated.body[0].targets) > 1:
            first, *rest = updated.body[0].targets
            value = updated.body[0].value
            return cst.FlattenSentinel([updated.with_changes(body=[cst.Assign([t], value)]) for t in (first, *rest)])
        return updated


@pytest.mark.parametrize("source", [p.read_text() for p in FILES] + [EXTRA, "a = b = 1\npass\ndef f(a, b=2):\n    del a\n"],
                         ids=[p.name for p in FILES] + ["extra", "small"])
def test_transform_rewrites_like_libcst(source):
    module = cst.parse_module(source)
    expected, got = Rewrite(), Rewrite()
    assert transform(module, got).code == module.visit(expected).code
    assert got.events == expected.events  # the same content nodes in the same order (neither sees layout)


@pytest.mark.parametrize("source", [EXTRA, (ROOT / "samples" / "resnet18.py").read_text()])
def test_transform_keeps_what_did_not_change(source):
    module = cst.parse_module(source)
    assert transform(module, Transformer()) is module  # nothing rebuilt: the same objects, with their positions
    renamed = transform(module, Rewrite())
    kept = {id(s) for s in renamed.body}
    assert any(id(s) in kept for s in module.body if "a" not in cst.Module([s]).code)


@pytest.mark.parametrize("source", [(ROOT / "samples" / "char_gpt.py").read_text(), EXTRA], ids=["char_gpt", "extra"])
def test_find_all_in_visit_order(source):
    module = cst.parse_module(source)
    types = (cst.Call, cst.Name, cst.Attribute, cst.FunctionDef)

    class Seen(cst.CSTVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.nodes: list = []

        def on_visit(self, node) -> bool:
            if type(node) in types:
                self.nodes.append(node)
            return True

    seen = Seen()
    module.visit(seen)
    assert find_all(module, *types) == seen.nodes
