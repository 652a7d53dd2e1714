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


# invalid sources, each rejected by libcst's parser or by its validation (bytes and str concatenated), and valid
# ones Python's compiler rejects later: the same outcome either way
SOURCES = ['x = b"a" "b"\n', 'x = "a" b"b"\n', "def f(:\n", "x = (1,\n", "x = 0777\n", 'x = ur"a"\n', "f(a=1, b)\n",
           "f(**k, *a)\n", "def f(a=1, b): pass\n", "x = 1_\n", "f(a for a in b, c)\n", "def f(*): pass\n",
           'print(f"{x!z}")\n', "lambda a=1, b: 0\n", "class A(x=1, y): pass\n", 'x = bu"a"\n', "if x:\npass\n",
           "x = yield = 3\n", "a + = 1\n", "del f()\n", "(a, b) += 1\n", "f() = 1\n", "x = [*]\n",
           "for x in : pass\n", "return\n", "def f(a, a): pass\n", "x = 1if y else 2\n", "not(x)\n"]


def _outcome(parse, source):
    try:
        return parse(source).code
    except Exception as e:  # noqa: BLE001 (the error's type is the outcome)
        return type(e)


@pytest.mark.parametrize("source", SOURCES)
def test_same_outcome_as_libcst(source):
    assert _outcome(parsing.parse_module, source) == _outcome(cst.parse_module, source)
    assert parsing._parsing_thread is None  # left as it was after a failure


def test_bytes_and_str_concatenated_are_still_rejected():
    assert _outcome(parsing.parse_module, 'x = b"a" "b"\n') is cst.CSTValidationError


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
