"""parsing.parse_module gives libcst's tree and libcst's errors, and skips only the checks the parser guarantees,
only inside itself and only in the thread that parses."""
from __future__ import annotations

import threading
from pathlib import Path

import libcst as cst
import pytest

from torch2jax import translate
from torch2jax.transform import parsing

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "samples").glob("*.py")) + sorted((ROOT / "tests" / "cases").rglob("*.py")) + sorted(
    (ROOT / "torch2jax").rglob("*.py"))


def test_the_skip_is_installed():
    assert parsing._INSTALLED  # else every test below passes trivially


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_same_tree_as_libcst(path):
    source = path.read_text()
    ours, theirs = parsing.parse_module(source), cst.parse_module(source)
    assert ours.code == source
    assert ours.deep_equals(theirs)


@pytest.mark.parametrize("source, error", [
    ('x = b"a" "b"\n', cst.CSTValidationError),  # the grammar allows it; libcst's validation does not
    ("def f(:\n", cst.ParserSyntaxError),
    ("x = (1,\n", cst.ParserSyntaxError),
])
def test_same_errors_as_libcst(source, error):
    with pytest.raises(error):
        cst.parse_module(source)
    with pytest.raises(error):
        parsing.parse_module(source)
    assert parsing._parsing_thread is None  # left as it was after a failure


def test_nodes_made_outside_the_parse_still_validate():
    parsing.parse_module("x = 1\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("not a name")
    with pytest.raises(cst.CSTValidationError):
        cst.SimpleWhitespace("x")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("x", lpar=[cst.LeftParen()])


def test_another_threads_nodes_validate_during_a_parse(monkeypatch):
    made = []

    def other_thread():
        try:
            cst.Name("not a name")
        except cst.CSTValidationError:
            made.append("rejected")

    monkeypatch.setattr(parsing, "_parsing_thread", threading.get_ident())  # as inside this thread's parse
    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert made == ["rejected"]
    with pytest.raises(cst.CSTValidationError):  # a class whose check goes beyond tokens, in the parsing thread
        cst.ConcatenatedString(cst.SimpleString('b"a"'), cst.SimpleString('"b"'))


def test_translate_reports_a_validation_error_as_a_syntax_error():
    result = translate('import torch\nx = b"a" "b"\n')
    assert result.failed and [d.code for d in result.diagnostics] == ["T2J001"]
