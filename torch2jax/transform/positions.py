"""Every node's position in the input, as libcst's PositionProvider gives it, in about a third of its time.

PositionProvider generates the code and records where each node starts and ends as line and column: it splits
every token on newlines, and builds two frozen dataclasses per node. The state below counts characters instead
(one addition per token) and records each node's start and end offsets packed in one int; `Positions` turns them
into lines and columns when a pass asks for a node (most are never asked for). tests/test_walk.py checks the result
against PositionProvider. Where libcst's internals differ from what this relies on, positions() falls back to
PositionProvider itself.
"""
from __future__ import annotations

import bisect
from typing import NamedTuple

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import PositionProvider
from libcst.metadata.position_provider import NEWLINE_RE

from torch2jax.transform.codegen import (HOOKLESS_STATES, NODE_CODEGEN, NO_POSITION, OWN_STATES, SILENT_LAYOUT_STATES,
                                         STATEMENT_TYPES, code_of)
from torch2jax.transform.walk import NODE_CLASSES, find_all, is_layout


class Position(NamedTuple):
    line: int  # from 1
    column: int  # from 0


class Range(NamedTuple):
    start: Position
    end: Position


_SHIFT = 32  # a node's offsets packed in one int: start << _SHIFT | end
_LOW = (1 << _SHIFT) - 1


class Positions(dict):
    """node -> Range. The input's nodes hold their packed offsets until first asked for; nodes the passes add (the
    rebuilt ones that carry an original's position) hold Ranges."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        # input statement -> (start, end, indentation): its whole text, leading lines and final newline included
        # (codegen.generate copies it), and the indentation it was generated at
        self.statements: dict = {}
        self._line_starts = [0] + [m.end() for m in NEWLINE_RE.finditer(code)]

    def _range(self, packed: int) -> Range:
        return Range(self._position(packed >> _SHIFT), self._position(packed & _LOW))

    def _position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._line_starts, offset)
        return Position(line, offset - self._line_starts[line - 1])

    def get(self, node, default=None):
        value = dict.get(self, node, default)
        if type(value) is int:
            value = self._range(value)
            dict.__setitem__(self, node, value)
        return value

    def __getitem__(self, node) -> Range:
        value = dict.__getitem__(self, node)
        if type(value) is int:
            value = self._range(value)
            dict.__setitem__(self, node, value)
        return value

    def line(self, node) -> int | None:
        """The line node starts on, without building its Range (a walk that follows lines asks at every node)."""
        value = dict.get(self, node)
        if type(value) is int:
            return bisect.bisect_right(self._line_starts, value >> _SHIFT)
        return None if value is None else value.start.line

    def setdefault(self, node, default=None):
        return dict.setdefault(self, node, default) if node not in self else self[node]

    def values(self):
        return [self[node] for node in self]

    def items(self):
        return [(node, self[node]) for node in self]


def carry(positions: dict, original, result) -> None:
    """result (a node rebuilt from original) takes original's position, unless it has one; a packed position is
    copied as it is."""
    value = dict.get(positions, original)
    if value is not None and result not in positions:
        dict.__setitem__(positions, result, value)


def start_line(positions: dict, node) -> int | None:
    """The line node starts on (Positions.line for a Positions, which skips building the Range)."""
    if type(positions) is Positions:
        return positions.line(node)
    pos = positions.get(node)
    return None if pos is None else pos.start.line


def positions(module: cst.Module, layout: bool = True) -> dict:
    """node -> Range, for every node of the module; layout=False: for every node but layout (whitespace, brackets,
    commas, operators: walk.is_layout), which no pass reports on."""
    try:
        state = (_OffsetState if layout else _ContentOffsetState)(module.default_indent, module.default_newline)
        module._codegen(state)
    except (AttributeError, TypeError):  # a libcst whose internals differ: its own provider
        provider = PositionProvider()
        provider._gen_impl(module)
        return dict(provider._computed)
    found = Positions("".join(state.tokens) + state.popped)
    dict.update(found, state.computed)
    found.statements = state.statements
    return found


class _Syntactic:
    """What PositionProvidingCodegenState.record_syntactic_position records, as a plain context manager: a node's
    position set from inside its code generation (a def starts at `def`, not at its decorators)."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: "_OffsetState", node, start_node, end_node) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = self.state.offset

    def __exit__(self, *exc) -> bool:
        state = self.state
        computed = state.computed
        # a layout start or end node (an import's closing paren) is not recorded without layout: it is the first or
        # last thing generated in the block
        start = computed[self.start_node] >> _SHIFT if self.start_node in computed else self.start
        end = computed[self.end_node] & _LOW if self.end_node in computed else state.offset
        computed[self.node] = start << _SHIFT | end
        return False


class _OffsetState(CodegenState):
    """Code generation that records each node's start and end offsets (characters into the generated code), and
    each statement's whole span."""

    __slots__ = ("computed", "offset", "_stack", "popped", "statements")

    def __init__(self, default_indent: str, default_newline: str) -> None:
        super().__init__(default_indent=default_indent, default_newline=default_newline)
        self.computed: dict = {}
        self.offset = 0
        self._stack: list[int] = []
        self.popped = ""
        self.statements: dict = {}

    def add_indent_tokens(self) -> None:
        self.tokens.extend(self.indent_tokens)
        for token in self.indent_tokens:
            self.offset += len(token)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.offset += len(value)

    def pop_trailing_newline(self) -> None:
        # as PositionProvider: the module still ends after it (a file without a final newline)
        if self.tokens:
            self.popped = self.tokens.pop()

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append(self.offset)

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self._stack.pop()
        if type(node) in STATEMENT_TYPES:
            self.statements[node] = (start, self.offset, "".join(self.indent_tokens))
        if node not in self.computed:  # a syntactic position recorded inside stays
            self.computed[node] = start << _SHIFT | self.offset

    def record_syntactic_position(self, node: cst.CSTNode, *, start_node=None, end_node=None) -> _Syntactic:
        return _Syntactic(self, node, start_node, end_node)

    def parens(self, node) -> "_RecordedParens":
        return _RecordedParens(node, self)


class _RecordedParens:
    """libcst's _parenthesize for a state that records positions: an expression's position is inside its
    parentheses."""

    __slots__ = ("node", "state", "start")

    def __init__(self, node, state: "_OffsetState") -> None:
        self.node, self.state = node, state

    def __enter__(self) -> None:
        state = self.state
        for lpar in self.node.lpar:
            lpar._codegen(state)
        self.start = state.offset

    def __exit__(self, *exc) -> bool:
        state = self.state
        state.computed[self.node] = self.start << _SHIFT | state.offset
        for rpar in self.node.rpar:
            rpar._codegen(state)
        return False


# libcst's layout node types, for a set lookup at every node; a layout type missing here would only have its
# position recorded
_LAYOUT_TYPES = frozenset(tp for tp in NODE_CLASSES if is_layout(tp))


class _ContentOffsetState(_OffsetState):
    """_OffsetState without the layout nodes."""

    __slots__ = ()

    def before_codegen(self, node: cst.CSTNode) -> None:
        if type(node) not in _LAYOUT_TYPES:
            self._stack.append(self.offset)

    def after_codegen(self, node: cst.CSTNode) -> None:
        if type(node) not in _LAYOUT_TYPES:
            start = self._stack.pop()
            if type(node) in STATEMENT_TYPES:
                self.statements[node] = (start, self.offset, "".join(self.indent_tokens))
            if node not in self.computed:
                self.computed[node] = start << _SHIFT | self.offset

    def record_syntactic_position(self, node: cst.CSTNode, *, start_node=None, end_node=None):
        if type(node) in _LAYOUT_TYPES:
            return NO_POSITION  # its position is not kept
        return _Syntactic(self, node, start_node, end_node)


OWN_STATES.update((_OffsetState, _ContentOffsetState))
SILENT_LAYOUT_STATES.add(_ContentOffsetState)


def _content_codegen(generate_node):
    """libcst's _codegen (before_codegen, _codegen_impl, after_codegen) with the position state's hooks done here,
    in one call instead of three, for a node that is not layout and not a statement; an unparenthesized name (a tenth
    of all nodes) is one token, recorded here too (as the state's parens would). A state without hooks (the output's
    code generation) goes straight to _codegen_impl; any other state, libcst's _codegen."""
    def codegen(self, state: CodegenState, **kwargs) -> None:
        if type(state) is not _ContentOffsetState:
            if type(state) not in HOOKLESS_STATES:
                generate_node(self, state, **kwargs)
            elif type(self) is cst.Name and not self.lpar:
                state.add_token(self.value)
            else:
                self._codegen_impl(state, **kwargs)
            return
        start = state.offset
        if type(self) is cst.Name and not self.lpar:
            value = self.value
            state.tokens.append(value)
            state.offset += len(value)
        else:
            self._codegen_impl(state, **kwargs)
        if self not in state.computed:  # a syntactic position recorded inside stays
            state.computed[self] = start << _SHIFT | state.offset
    return codegen


for _tp in NODE_CLASSES:
    if not is_layout(_tp) and NODE_CODEGEN is not None and _tp._codegen is NODE_CODEGEN \
            and "_content_" not in _tp.__dict__:
        _tp._codegen = _content_codegen(_tp._codegen)
        _tp._content_ = True


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
        positions = self.positions
        present = {positions.get(n) for n in find_all(self.module, cst.Call)}
        by_pos: dict[str, dict] = {}
        for node in [n for n in positions if type(n) is cst.Call]:
            pos = positions[node]
            if pos not in present:
                name = _last_name(node.func)
                if name is not None:
                    by_pos.setdefault(name, {}).setdefault(pos, []).append(node)
        return {name: sorted(found.items(), key=lambda item: (item[0].start, item[0].end))
                for name, found in by_pos.items()}


def _last_name(func: cst.BaseExpression) -> str | None:
    if type(func) is cst.Name:
        return func.value
    if type(func) is cst.Attribute:
        return func.attr.value
    return None


def _squeezed(node: cst.CSTNode) -> str:
    """A node's code without whitespace: copies made from code compare equal to their source."""
    return "".join(code_of(node).split())
