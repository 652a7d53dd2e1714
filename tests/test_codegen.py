"""codegen.generate writes what libcst's own code generation writes for the translated tree, though it copies the
statements the passes left alone from the input's text."""
from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from torch2jax import pipeline, translate
from torch2jax.transform import codegen
from torch2jax.transform.positions import positions

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "samples").glob("*.py")) + sorted((ROOT / "tests" / "cases").rglob("*.py"))
FILES = [p for p in FILES if not p.name.endswith("_jax.py") and "import torch" in p.read_text()]

# statements left alone beside rewritten ones: indentation that changes under them (a with block dropped, a loop
# body moved into a step function), comments, tabs, CRLF, continuation lines, no final newline
EDGES = {
    "dedented": "import torch\n\ndef f(x):\n    # keep\n    with torch.no_grad():\n        # inner\n"
                "        y = x * 2\n        z = [1,\n             2]\n    return y + torch.ones(2)\n",
    "crlf": "import torch\r\n\r\nclass M(torch.nn.Module):\r\n    def forward(self, x):\r\n        a = 1\r\n"
            "        return torch.relu(x) + a\r\n\r\nprint('done')\r\n",
    "tabs": "import torch\nif True:\n\ta = 1\n\tb = torch.zeros(3)\n\tif a:\n\t\tc = 2\n# end",
    "no_final_newline": "import torch\nx = torch.zeros(3)\ny = 1",
    "last_comment_no_newline": "import torch\nx = torch.zeros(3)\ny = 1\n# tail",
    "semicolons": "import torch\nx = 1; y = torch.ones(2)\nz = 3; w = 4\n",
    "training": (ROOT / "samples" / "mnist_cnn.py").read_text(),
}


def _generated(monkeypatch, source: str) -> list[tuple[str, str, int]]:
    """(generate's code, libcst's code, input statements) for each translation made."""
    seen = []
    real = pipeline.generate

    def both(module, spans, text, indent, newline):
        code = real(module, spans, text, indent, newline)
        seen.append((code, module.code, len(spans)))
        return code

    monkeypatch.setattr(pipeline, "generate", both)
    translate(source)
    return seen


@pytest.mark.parametrize("source", [p.read_text() for p in FILES] + list(EDGES.values()),
                         ids=[p.name for p in FILES] + list(EDGES))
def test_generate_writes_what_libcst_writes(monkeypatch, source):
    seen = _generated(monkeypatch, source)
    assert len(seen) == 1
    code, expected, statements = seen[0]
    assert statements > 0
    assert code == expected


def test_unchanged_statements_are_copied_and_changed_ones_generated():
    source = "import torch\n\ndef f(x):\n    a = 1   # odd   spacing kept\n    return torch.relu(x)\n"
    module = cst.parse_module(source)
    spans = positions(module, layout=False).statements
    func = module.body[1]
    assign, ret = func.body.body
    new_func = func.with_changes(body=func.body.with_changes(body=[assign, cst.SimpleStatementLine(
        [cst.Return(cst.Name("x"))])]))
    new = module.with_changes(body=[module.body[0], new_func])
    code = codegen.generate(new, spans, module.code, module.default_indent, module.default_newline)
    assert code == new.code == "import torch\n\ndef f(x):\n    a = 1   # odd   spacing kept\n    return x\n"
    # a text that differs from the tree where the assignment is shows which statements were copied: the
    # assignment (the input's node) is; the def (rebuilt around the new return) is not
    start, end, _ = spans[assign]
    doctored = module.code[:start] + module.code[start:end].replace("a = 1", "b = 2") + module.code[end:]
    code = codegen.generate(new, spans, doctored, module.default_indent, module.default_newline)
    assert code == "import torch\n\ndef f(x):\n    b = 2   # odd   spacing kept\n    return x\n"
    # the same statement at another indentation (its block dropped) is generated
    moved = module.with_changes(body=[module.body[0], assign])
    code = codegen.generate(moved, spans, doctored, module.default_indent, module.default_newline)
    assert code == "import torch\na = 1   # odd   spacing kept\n"


def test_other_code_generation_is_libcst_own():
    # the wrapped libcst methods behave as before for any state but this package's
    source = "x = (a + (b))  # c\nif x:\n    y = [1,\n      2]\n"
    module = cst.parse_module(source)
    assert module.code == source
    assert cst.Module([]).code_for_node(module.body[1]) == "if x:\n    y = [1,\n      2]\n"


@pytest.mark.parametrize("path", FILES[:6] + [ROOT / "torch2jax" / "transform" / "codegen.py"], ids=lambda p: p.name)
def test_code_of_writes_what_code_for_node_writes(path):
    module = cst.parse_module(path.read_text())
    nodes = [module, *module.body]
    for stmt in module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            nodes += [stmt.body, *stmt.body.body, stmt.name]
    for node in nodes:
        assert codegen.code_of(node) == cst.Module([]).code_for_node(node)


def test_nodes_hash_and_compare_by_identity():
    # node_identity gives libcst's node classes object's own __hash__ and __eq__: identity, as libcst's
    a, b = cst.Name("x"), cst.Name("x")
    assert a == a and a != b and not (a == b)
    assert {a: 1, b: 2} == {a: 1, b: 2} and len({a, b}) == 2
    assert {a: 1}.get(b) is None and {a: 1}[a] == 1
    assert type(a).__hash__ is object.__hash__
    module = cst.parse_module("x = 1\n")
    assert module.deep_equals(cst.parse_module("x = 1\n")) and module != cst.parse_module("x = 1\n")
