"""Name resolution sees through import aliases and leaves locals that shadow torch alone."""
import pytest

from torch2jax import translate

CASES = [
    ("import torch as t\ndef f(x):\n    return t.sum(x, 0)\n", "jnp.sum(x, axis=0)"),
    ("from torch import nn\ndef f(x):\n    return nn.functional.relu(x)\n", "jax.nn.relu(x)"),
    ("import torch.nn.functional as F\ndef f(x):\n    return F.relu(x)\n", "jax.nn.relu(x)"),
    ("from torch.nn.functional import relu\ndef f(x):\n    return relu(x)\n", "jax.nn.relu(x)"),
    ("from torch.nn.functional import relu as r\ndef f(x):\n    return r(x)\n", "jax.nn.relu(x)"),
    ("import torch.nn.functional\ndef f(x):\n    return torch.nn.functional.relu(x)\n", "jax.nn.relu(x)"),
    ("import torch\ndef f(x):\n    return torch.nn.functional.relu(torch.sum(x, dim=-1, keepdim=True))\n",
     "jax.nn.relu(jnp.sum(x, axis=-1, keepdims=True))"),
]


@pytest.mark.parametrize("source,expected", CASES)
def test_alias_resolves(source, expected):
    result = translate(source)
    assert expected in result.code, result.code
    assert "torch" not in result.code.replace("torch2jax", "")
    assert not [d for d in result.diagnostics if d.severity == "error"]


def test_local_variable_named_torch_is_not_torch():
    source = "import torch\n\ndef f(torch):\n    return torch.sum(1)\n\ndef g(x):\n    return torch.sum(x, 0)\n"
    code = translate(source).code
    assert "def f(torch):\n    return torch.sum(1)" in code
    assert "jnp.sum(x, axis=0)" in code


def test_module_level_rebinding_is_not_torch():
    source = "import numpy as np\nimport torch as F\nF = np\n\ndef f(x):\n    return F.sum(x)\n"
    assert "return F.sum(x)" in translate(source).code


def test_untranslated_input_is_left_and_marked():
    result = translate("import torch\ny = torch.special.zeta(1.0, 2.0)\n")
    assert "torch.special.zeta(1.0, 2.0)  # torch2jax: T2J101" in result.code
    d = result.diagnostics[0]
    assert (d.code, d.line, d.severity, d.safety) == ("T2J101", 2, "error", "manual")
    assert translate(result.code).code == result.code  # a second run adds nothing


def test_bound_among_agrees_with_bound_in_function():
    """The pruned search (statements without any of the names are skipped) finds what the full one finds, for
    every function of the samples and cases and every name bound or used in it."""
    from pathlib import Path

    import libcst as cst

    from torch2jax.transform.names import bound_among, bound_in_function
    from torch2jax.transform.walk import find_all, words

    root = Path(__file__).resolve().parent.parent
    checked = 0
    for path in sorted((root / "samples").glob("*.py")) + sorted((root / "tests" / "cases").rglob("*.py")):
        for fn in find_all(cst.parse_module(path.read_text()), cst.FunctionDef):
            cache: dict = {}
            bound = bound_in_function(fn)
            for names in ({n} for n in bound | {"torch", "nn", "F", "x"}):
                assert bound_among(fn, names, cache) == bound & names, (path.name, fn.name.value, names)
            everything = words(fn, cache)
            assert bound_among(fn, everything, cache) == bound & everything
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("source, kept, dropped", [
    # the file's own torch imports, at top level or in a try/if block, go when nothing reads their names any more
    ("import torch\ntry:\n    import torch.nn.functional as F\nexcept ImportError:\n    pass\n"
     "def f(x):\n    return F.relu(x)\n", [], ["import torch", "import torch.nn.functional as F"]),
    ("import torch\nif True:\n    from torch import nn\ndef f(x):\n    return nn.Unknown(x)\n",
     ["from torch import nn"], ["import torch\n"]),
    ("import torch, os\nfrom torch.nn import init, functional as G\ndef f(x):\n    return os.sep, G.relu(x), init\n",
     ["import os", "from torch.nn import init"], ["functional as G"]),
    # imports inside a function or class are the user's own business
    ("import torch\ndef f(x):\n    import torch.nn as nn\n    return x\n", ["    import torch.nn as nn"], []),
])
def test_unused_torch_imports_go(source, kept, dropped):
    code = translate(source).code
    for line in kept:
        assert line in code, code
    for line in dropped:
        assert line not in code, code
