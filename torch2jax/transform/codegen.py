"""The output's code, with the input's own text for every statement the passes left as it was.

The passes rebuild only the nodes below which something changed (walk.transform), so a statement they left alone is
the input's node itself, and its code is the input's text for it: generating it again token by token (a third of
the time of parsing) gives the same characters. The position codegen (positions.py) records each input statement's
span, leading lines and trailing newline included, and the indentation it was generated at; here a statement found
there, at the same indentation, is copied from the text, and any other is generated as libcst would.
"""
from __future__ import annotations

import libcst as cst
from libcst._nodes.internal import CodegenState

from torch2jax.transform.walk import NODE_CLASSES, is_layout


class _NoPosition:
    """record_syntactic_position for a node whose position is not kept."""

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> bool:
        return False


NO_POSITION = _NoPosition()


class _Parens:
    """What libcst's _parenthesize does for a state that records no positions, as a plain context manager (libcst's
    is a generator one, entered at every expression)."""

    __slots__ = ("node", "state")

    def __init__(self, node, state: CodegenState) -> None:
        self.node, self.state = node, state

    def __enter__(self) -> None:
        for lpar in self.node.lpar:
            lpar._codegen(self.state)

    def __exit__(self, *exc) -> bool:
        for rpar in self.node.rpar:
            rpar._codegen(self.state)
        return False


class _CopyingState(CodegenState):
    __slots__ = ("spans", "text", "copied_last")

    def __init__(self, module: cst.Module, spans: dict, text: str) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.spans, self.text = spans, text
        self.copied_last = False

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self.copied_last = False

    def record_syntactic_position(self, node, *, start_node=None, end_node=None) -> "_NoPosition":
        return NO_POSITION  # libcst's is a generator context manager, entered at every statement and more

    def parens(self, node) -> _Parens:
        return _Parens(node, self)

    def pop_trailing_newline(self) -> None:
        # libcst pops the last token, a statement's newline; a copied statement ends with it
        if self.tokens:
            last = self.tokens.pop()
            if self.copied_last:
                self.tokens.append(last[:-2] if last.endswith("\r\n") else last[:-1])


def generate(module: cst.Module, spans: dict, text: str, default_indent: str, default_newline: str) -> str:
    """module's code; spans: input statement -> (start, end, indentation) in text, the input's code, whose module
    had this default indentation and newline (a statement's text holds them where its nodes leave them unset)."""
    if module.default_indent != default_indent or module.default_newline != default_newline:
        return module.code
    state = _CopyingState(module, spans, text)
    module._codegen(state)
    return "".join(state.tokens)


_NO_MODULE = cst.Module([])


def code_of(node: cst.CSTNode) -> str:
    """node's code, as cst.Module([]).code_for_node(node) writes it, with this module's cheaper state."""
    state = _CopyingState(_NO_MODULE, {}, "")
    node._codegen(state)
    return "".join(state.tokens)


def _copying_codegen(generate_node):
    def codegen(self, state: CodegenState, **kwargs) -> None:
        if type(state) is _CopyingState:
            span = state.spans.get(self)
            if span is not None and span[2] == "".join(state.indent_tokens):
                state.tokens.append(state.text[span[0]:span[1]])
                state.copied_last = True
                return
        generate_node(self, state, **kwargs)
    return codegen


# code generation states of this package: each has parens(node), a plain context manager for libcst's _parenthesize
OWN_STATES: set[type] = {_CopyingState}


def _plain_parenthesize(parenthesize):
    def plain(self, state: CodegenState):
        return state.parens(self) if type(state) in OWN_STATES else parenthesize(self, state)
    return plain


# libcst calls each statement's _codegen from its block's; the statement classes' own is wrapped once here, and
# behaves as before for any other code generation (one type test per statement)
STATEMENT_TYPES = frozenset(tp for tp in NODE_CLASSES
                            if tp is cst.SimpleStatementLine or issubclass(tp, cst.BaseCompoundStatement))
for _tp in STATEMENT_TYPES:
    if "_copying_" not in _tp.__dict__:
        _tp._codegen = _copying_codegen(_tp._codegen)
        _tp._copying_ = True

# code generation states whose before_codegen and after_codegen do nothing for layout nodes (walk.is_layout): there
# a layout node's _codegen is its _codegen_impl alone, and a whitespace's or a comment's one token. About two thirds
# of all nodes are layout, two fifths whitespace. libcst's own states, and any other, go through libcst's _codegen as
# before.
SILENT_LAYOUT_STATES: set[type] = {_CopyingState}
# ... and whose before_codegen and after_codegen do nothing for any node (positions.py skips them for these)
HOOKLESS_STATES: set[type] = {_CopyingState}


def _layout_codegen(generate_node):
    def codegen(self, state: CodegenState, **kwargs) -> None:
        if type(state) in SILENT_LAYOUT_STATES:
            self._codegen_impl(state, **kwargs)
        else:
            generate_node(self, state, **kwargs)
    return codegen


def _whitespace_codegen(generate_node):
    def codegen(self, state: CodegenState, **kwargs) -> None:
        if type(state) in SILENT_LAYOUT_STATES:
            state.add_token(self.value)
        else:
            generate_node(self, state, **kwargs)
    return codegen


NODE_CODEGEN = getattr(getattr(cst, "_nodes").base.CSTNode, "_codegen", None)  # libcst's own, unwrapped
_TOKEN_CODEGEN = getattr(cst.SimpleWhitespace, "_codegen_impl", None)  # add_token(self.value)
for _tp in NODE_CLASSES:
    if is_layout(_tp) and NODE_CODEGEN is not None and _tp._codegen is NODE_CODEGEN and "_silent_" not in _tp.__dict__:
        one_token = _tp._codegen_impl is _TOKEN_CODEGEN and hasattr(_tp, "value")
        _tp._codegen = (_whitespace_codegen if one_token else _layout_codegen)(_tp._codegen)
        _tp._silent_ = True
_Parenthesized = getattr(getattr(cst, "_nodes").expression, "_BaseParenthesizedNode", None)
if _Parenthesized is not None and "_plain_" not in _Parenthesized.__dict__:
    _Parenthesized._parenthesize = _plain_parenthesize(_Parenthesized._parenthesize)
    _Parenthesized._plain_ = True
