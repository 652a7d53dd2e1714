"""`# torch2jax: skip` (a statement, a block, a file) and [tool.torch2jax] in pyproject.toml."""
from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from torch2jax import translate
from torch2jax.cli import app

runner = CliRunner()


def _t(source: str) -> str:
    source = textwrap.dedent(source)
    code = translate(source).code
    assert translate(code).code == code  # idempotent with skips too
    return code


def test_end_of_line_skips_the_statement():
    code = _t("""\
        import torch
        x = torch.sum(a, 1, True)  # torch2jax: skip
        y = torch.sum(a, 1, True)
        z = torch.sum(a, 1, True)  # noqa  # torch2jax: skip
    """)
    assert "x = torch.sum(a, 1, True)  # torch2jax: skip\n" in code
    assert "y = jnp.sum(a, axis=1, keepdims=True)\n" in code
    assert "z = torch.sum(a, 1, True)  # noqa  # torch2jax: skip\n" in code
    assert "import torch\n" in code  # still used by the skipped lines


BODY = "x.add_(1)\ny = torch.randn(3) + torch.sum(x, 1, True)\n"
BLOCKS = ["def f(x):\n" + textwrap.indent(BODY, "    "),
          "class M(torch.nn.Module):\n    def forward(self, x):\n" + textwrap.indent(BODY, "        "),
          "for i in range(3):\n" + textwrap.indent(BODY, "    "),
          "with torch.no_grad():\n" + textwrap.indent(BODY, "    "),
          "if x is not None:\n" + textwrap.indent(BODY, "    ") + "else:\n    x = torch.zeros(3)\n"]


@pytest.mark.parametrize("block", BLOCKS)
def test_own_line_before_a_block_skips_the_block(block):
    source = "import torch\n\n\n# torch2jax: skip\n" + block + "\n\ndef g(x):\n    return torch.sum(x, 1, True)\n"
    code = _t(source)
    assert "# torch2jax: skip\n" + block in code, code
    assert "return jnp.sum(x, axis=1, keepdims=True)" in code


def test_header_comment_and_decorated_def():
    code = _t("""\
        import torch
        for i in range(3):  # torch2jax: skip
            z = torch.sum(a, 1, True)

        @torch.no_grad()
        # torch2jax: skip
        def f(x):
            x.mul_(2)
            return torch.rand(2)
    """)
    assert "    z = torch.sum(a, 1, True)\n" in code
    assert "    x.mul_(2)\n    return torch.rand(2)\n" in code


def test_skip_in_a_training_loop():
    code = _t("""\
        import torch
        model = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for xb, yb in data:
            optimizer.zero_grad()
            loss = ((model(xb) - yb) ** 2).mean()
            print(loss.item())  # torch2jax: skip
            loss.backward()
            optimizer.step()
    """)
    assert "print(loss.item())  # torch2jax: skip" in code


def test_first_comment_skips_the_file():
    source = "#!/usr/bin/env python\n# torch2jax: skip\nimport torch\nx = torch.sum(a, 1, True)\n"
    assert translate(source).code == source
    later = "import torch\n# torch2jax: skip\nx = torch.sum(a, 1, True)\ny = torch.sum(a, 1, True)\n"
    assert "y = jnp.sum" in translate(later).code  # not the file's first comment: only the next statement


def test_other_marker_comments_do_not_skip():
    code = _t("import torch\nx = torch.sum(a, 1, True)  # torch2jax: T2J101 something; skipping\n")
    assert "jnp.sum" in code


# ----- [tool.torch2jax]

GOOD = "import torch\n\n\ndef f(x):\n    return torch.sum(x, 1, True)\n"
UNMAPPED = "import torch\n\n\ndef f(x):\n    return torch.special.zeta(x, 2.0)\n"


def test_config_exclude_select_ignore(tmp_path):
    from torch2jax.config import load_config

    root = tmp_path / "proj"
    (root / "src" / "gen").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.torch2jax]\nexclude = ["src/gen/*", "*_old.py"]\n'
                                         'ignore = ["T2J101"]\n')
    (root / "src" / "a.py").write_text(UNMAPPED)
    (root / "src" / "a_old.py").write_text(GOOD)
    (root / "src" / "gen" / "b.py").write_text(GOOD)
    config = load_config(root / "src")
    assert config.exclude == ["src/gen/*", "*_old.py"] and config.ignore == ["T2J101"]
    assert config.root == root
    out = tmp_path / "out"
    result = runner.invoke(app, ["translate", str(root / "src"), "-o", str(out), "-j", "1"])
    assert sorted(p.name for p in out.rglob("*.py")) == ["a.py"]
    assert "T2J101" not in result.stderr and result.exit_code == 0  # ignored: not reported, not an error
    assert "torch2jax: T2J101" in (out / "a.py").read_text()  # still marked in the code (what is rewritten)
    (root / "pyproject.toml").write_text('[tool.torch2jax]\nselect = ["T2J0"]\n')
    result = runner.invoke(app, ["translate", str(root / "src" / "a.py")])
    assert "T2J101" not in result.stderr and result.exit_code == 0
    (root / "pyproject.toml").write_text('[tool.torch2jax]\nselect = ["T2J1"]\n')
    result = runner.invoke(app, ["translate", str(root / "src" / "a.py")])
    assert "T2J101" in result.stderr and result.exit_code == 1


def test_config_nearest_and_errors(tmp_path):
    from torch2jax.config import Config, load_config

    (tmp_path / "pyproject.toml").write_text('[tool.torch2jax]\nignore = ["T2J101"]\n')
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "x"\n')  # nearest wins, even without the table
    assert load_config(inner / "m.py") == Config(root=inner)
    assert load_config(tmp_path / "m.py").ignore == ["T2J101"]
    (inner / "pyproject.toml").write_text('[tool.torch2jax]\nexclude = "notalist"\n')
    with pytest.raises(ValueError, match="exclude"):
        load_config(inner)
    result = runner.invoke(app, ["translate", str(inner)])
    assert result.exit_code == 2 and "pyproject.toml" in result.stderr


@pytest.mark.parametrize("source, may", [
    ("x = 1  # torch2jax: skip\n", True),
    ("x = 1  #torch2jax:skip\n", True),
    ("# a note\n# see torch2jax:   skip\nx = 1\n", True),
    ("x = 1  # skip this one\ny = skip(2)\n", False),  # the word alone is no marker
    ("x = 'torch2jax: skip'\n", False),  # nor the words without a comment
    ("x = '# torch2jax: skip'\n", True),  # inside a string: searched all the same (errs on the side of looking)
])
def test_which_sources_are_searched_for_markers(source, may):
    from torch2jax.transform.base import may_hold_skip_markers

    assert may_hold_skip_markers(source) is may
