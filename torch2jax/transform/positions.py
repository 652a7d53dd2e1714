"""Every node's position in the input, as libcst's PositionProvider gives it, about a third faster.

PositionProvider generates the code and records where each node starts and ends. Its cost is in the recording: a
generator-based context manager per expression, and two frozen dataclasses per node. The state below records the
same positions with a plain context manager and named tuples (`.start.line`, `.start.column`, `.end.line`, as the
passes read them); tests/test_walk.py checks it against PositionProvider. Where libcst's internals differ from what
this relies on, positions() falls back to PositionProvider itself.
"""
from __future__ import annotations

from typing import NamedTuple

import libcst as cst
from libcst.metadata import PositionProvider

from torch2jax.transform.walk import Visitor, is_layout, walk


class Position(NamedTuple):
    line: int  # from 1
    column: int  # from 0


class Range(NamedTuple):
    start: Position
    end: Position


def positions(module: cst.Module, layout: bool = True) -> dict:
    """node -> Range, for every node of the module; layout=False: for every node but layout (whitespace, brackets,
    commas, operators: walk.is_layout), which no pass reports on (less than half the time of recording them all)."""
    computed: dict = {}
    try:
        state = (_State if layout else _ContentState)(default_indent=module.default_indent,
                                                       default_newline=module.default_newline, provider=None)
        state.computed = computed
        module._codegen(state)
    except (AttributeError, TypeError):  # a libcst whose internals differ: its own provider
        provider = PositionProvider()
        provider._gen_impl(module)
        return dict(provider._computed)
    return computed


try:
    from libcst.metadata.position_provider import NEWLINE_RE, PositionProvidingCodegenState
except ImportError:  # pragma: no cover - a libcst without them: positions() takes the provider's way
    NEWLINE_RE, PositionProvidingCodegenState = None, object


class _Syntactic:
    """What PositionProvidingCodegenState.record_syntactic_position records, as a plain context manager."""

    __slots__ = ("state", "node", "start_node", "end_node", "line", "column")

    def __init__(self, state: "_State", node, start_node, end_node) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.line, self.column = self.state.line, self.state.column

    def __exit__(self, *exc) -> bool:
        state = self.state
        computed = state.computed
        # a layout start or end node (an import's closing paren) is not recorded without layout: it is the first or
        # last thing generated in the block
        start = computed[self.start_node].start if self.start_node in computed else Position(self.line, self.column)
        end = computed[self.end_node].end if self.end_node in computed else Position(state.line, state.column)
        computed[self.node] = Range(start, end)
        return False


class _State(PositionProvidingCodegenState):
    __slots__ = ("computed",)

    def _update_position(self, value: str) -> None:
        if "\n" in value or "\r" in value:
            segments = NEWLINE_RE.split(value)
            self.line += len(segments) - 1
            self.column = len(segments[-1])
        else:
            self.column += len(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        line, column = self._stack.pop()
        if node not in self.computed:  # a syntactic position recorded inside stays
            self.computed[node] = Range(Position(line, column), Position(self.line, self.column))

    def record_syntactic_position(self, node: cst.CSTNode, *, start_node=None, end_node=None) -> _Syntactic:
        return _Syntactic(self, node, start_node, end_node)


class _ContentState(_State):
    """_State without the layout nodes."""

    __slots__ = ()

    def before_codegen(self, node: cst.CSTNode) -> None:
        if not is_layout(type(node)):
            self._stack.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        if not is_layout(type(node)):
            line, column = self._stack.pop()
            if node not in self.computed:
                self.computed[node] = Range(Position(line, column), Position(self.line, self.column))


class CopiedCalls:
    """Where a call that lacks a position came from. Some passes rebuild statements from their code (the training
    pass's extracted step, the module-updates pass's eqx.tree_at): the copies have no source position, and a
    diagnostic about them would point at line 1. The source call is one with the same code whose own node is no
    longer in the tree (it was replaced by the copy); copies of equal calls take the source ones in order."""

    def __init__(self, positions: dict, module: cst.Module) -> None:
        self.positions, self.module = positions, module
        self._by_name: dict[str, list] | None = None  # built on first use: most files have no copied call
        self._claimed: set = set()
        self._texts: dict = {}

    def position(self, call: cst.Call) -> Range | None:
        name = _last_name(call.func)
        if name is None:
            return None
        if self._by_name is None:
            self._by_name = self._index()
        candidates = self._by_name.get(name)
        if not candidates:
            return None
        text, texts = _squeezed(call), self._texts
        found = [pos for pos, nodes in candidates
                 if any((texts[n] if n in texts else texts.setdefault(n, _squeezed(n))) == text for n in nodes)]
        if not found:
            return None
        pos = next((p for p in found if p not in self._claimed), found[0])
        self._claimed.add(pos)
        return pos

    def _index(self) -> dict[str, list]:
        """Calls of the input (and rebuilt ones that kept an input position) not in the tree any more, by the last
        name of their function: [(position, [nodes])], in source order."""
        present: set = set()
        positions = self.positions

        class V(Visitor):
            def visit_Call(self, n: cst.Call) -> None:
                pos = positions.get(n)
                if pos is not None:
                    present.add(pos)

        walk(self.module, V())
        by_pos: dict[str, dict] = {}
        for node, pos in list(positions.items()):
            if type(node) is cst.Call and pos not in present:
                name = _last_name(node.func)
                if name is not None:
                    by_pos.setdefault(name, {}).setdefault(pos, []).append(node)
        return {name: sorted(found.items(), key=lambda item: (item[0].start, item[0].end))
                for name, found in by_pos.items()}


def _last_name(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Name):
        return func.value
    if isinstance(func, cst.Attribute):
        return func.attr.value
    return None


def _squeezed(node: cst.CSTNode) -> str:
    """A node's code without whitespace: copies made from code compare equal to their source."""
    return "".join(cst.Module([]).code_for_node(node).split())
