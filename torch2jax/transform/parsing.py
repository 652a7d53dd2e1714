"""parse_module(): libcst's parse, without re-checking what the parser itself guarantees.

Every libcst node validates itself when it is made (CSTNode.__post_init__ calls _validate), the parser's nodes too:
that whitespace is whitespace, that a name is an identifier, that an expression's parentheses pair up, that a
keyword is followed by a space. For nodes the parser made from tokens by the grammar these checks cannot fail, and
they cost about a tenth of the parse. While this thread parses, nodes whose class checks nothing more skip the check
(_TOKEN_LEVEL_CHECKS); every other class (a concatenated string's bytes-and-str check, say) validates as before, and
nodes made outside the parse (the passes', another thread's) always do.
"""
from __future__ import annotations

import threading

import libcst as cst
from libcst._nodes.base import CSTNode
from libcst._nodes.expression import _BaseParenthesizedNode

from torch2jax.transform.node_identity import subclasses

# validators that check only what the tokenizer and the grammar already guarantee for parsed source: a token's
# characters (whitespace, names, numbers, strings, comments, indents), paired parentheses, the space after a keyword
# (`ifx` is a name), an `=` only with a keyword or default, a semicolon between statements on a line, at least one
# target or subscript. Kept: a call's argument order, parameters' order, str and bytes concatenation (the grammar
# allows `b"a" "b"`; only libcst's check rejects it), and any class not named here.
_TOKEN_LEVEL_CHECKS = frozenset(cls.__dict__["_validate"] for cls in (
    CSTNode, _BaseParenthesizedNode, cst.SimpleWhitespace, cst.Newline, cst.Name, cst.Comment, cst.SimpleString,
    cst.Integer, cst.Float, cst.IndentedBlock, getattr(cst, "_nodes").statement._BaseSimpleStatement, cst.Arg,
    cst.Param, cst.Assign, cst.Subscript, cst.Tuple, cst.If, cst.For, cst.Return, cst.FunctionDef, cst.Comparison,
    cst.BooleanOperation, cst.UnaryOperation) if "_validate" in cls.__dict__)
_parsing_thread: int | None = None  # the thread inside parse_module, if any


# the node classes whose validation is token-level only (libcst defines all of its node classes on import)
_UNCHECKED = frozenset(cls for cls in subclasses(CSTNode) if cls._validate in _TOKEN_LEVEL_CHECKS)


def _post_init(self, _unchecked=_UNCHECKED, _thread=threading.get_ident) -> None:
    if _parsing_thread is None or type(self) not in _unchecked or _parsing_thread != _thread():
        self._validate()


def _install() -> bool:
    """Swap CSTNode.__post_init__ for one that knows about parse_module; False (left alone) when libcst's differs
    from the one this reproduces (a call of _validate and nothing else)."""
    libcst_post_init = CSTNode.__dict__.get("__post_init__")
    if libcst_post_init is None or libcst_post_init.__code__.co_names != ("_validate",) \
            or any("__post_init__" in cls.__dict__ for cls in subclasses(CSTNode)):
        return False
    CSTNode.__post_init__ = _post_init
    return True


_INSTALLED = _install()


def parse_module(source: str) -> cst.Module:
    """cst.parse_module(source), the same tree and the same errors."""
    global _parsing_thread
    if not _INSTALLED or _parsing_thread is not None:  # another thread parses: this one validates as usual
        return cst.parse_module(source)
    _parsing_thread = threading.get_ident()
    try:
        return cst.parse_module(source)
    finally:
        _parsing_thread = None
