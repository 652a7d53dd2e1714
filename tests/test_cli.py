"""The translate command: files, folders, stdout, --write, --diff, diagnostics and exit codes."""
import subprocess
import sys

from typer.testing import CliRunner

from torch2jax.cli import app

runner = CliRunner()
GOOD = "import torch\n\n\ndef f(x):\n    # keep me\n    return torch.sum(x, 1, True)\n"
UNMAPPED = "import torch\n\n\ndef f(x):\n    return torch.special.zeta(x, 2.0)\n"


def test_file_to_stdout(tmp_path):
    path = tmp_path / "good.py"
    path.write_text(GOOD)
    result = runner.invoke(app, ["translate", str(path)])
    assert result.exit_code == 0, result.output
    assert "jnp.sum(x, axis=1, keepdims=True)" in result.stdout
    assert "# keep me" in result.stdout


def test_file_to_file(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(GOOD)
    out = tmp_path / "out" / "m_jax.py"
    result = runner.invoke(app, ["translate", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "jnp.sum" in out.read_text()
    assert src.read_text() == GOOD


def test_error_diagnostic_exit_1_and_format(tmp_path):
    src = tmp_path / "u.py"
    src.write_text(UNMAPPED)
    result = runner.invoke(app, ["translate", str(src), "-o", str(tmp_path / "o.py")])
    assert result.exit_code == 1
    assert f"{src}:5:11: T2J101 torch.special.zeta has no JAX mapping" in result.stderr
    assert "# torch2jax: T2J101" in (tmp_path / "o.py").read_text()


def test_syntax_error_exit_2_nothing_written(tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("import torch\nx = torch.sum(x\n")
    out = tmp_path / "out.py"
    result = runner.invoke(app, ["translate", str(src), "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{src}:2: syntax error")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_and_binary_inputs_exit_2(tmp_path):
    result = runner.invoke(app, ["translate", str(tmp_path / "nope.py")])
    assert result.exit_code == 2 and "no such file" in result.stderr
    binary = tmp_path / "b.py"
    binary.write_bytes(b"\x00\x01torch\x00")
    result = runner.invoke(app, ["translate", str(binary)])
    assert result.exit_code == 2 and "binary file" in result.stderr


def test_write_in_place_and_diff(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(GOOD)
    result = runner.invoke(app, ["translate", str(src), "--diff"])
    assert result.exit_code == 0
    assert "-    return torch.sum(x, 1, True)" in result.stdout and "+    return jnp.sum" in result.stdout
    assert src.read_text() == GOOD
    src.chmod(0o640)
    result = runner.invoke(app, ["translate", str(src), "--write"])
    assert result.exit_code == 0
    assert "jnp.sum" in src.read_text()
    assert src.stat().st_mode & 0o777 == 0o640


def test_folder_mirrors_tree(tmp_path):
    root = tmp_path / "proj"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text(GOOD)
    (root / "pkg" / "sub" / "b.py").write_text(UNMAPPED)
    (root / "pkg" / "notes.txt").write_text("not python")
    (root / "pkg" / "sub" / "broken.py").write_text("def (:\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["translate", str(root), "-o", str(out), "-j", "1"])
    assert result.exit_code == 2  # one unreadable file, the others still translated
    assert "jnp.sum" in (out / "pkg" / "a.py").read_text()
    assert (out / "pkg" / "sub" / "b.py").exists()
    assert not (out / "pkg" / "notes.txt").exists()
    assert not (out / "pkg" / "sub" / "broken.py").exists()
    assert "broken.py:1: syntax error" in result.stderr


def test_folder_output_inside_input_refused(tmp_path):
    (tmp_path / "a.py").write_text(GOOD)
    result = runner.invoke(app, ["translate", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "inside the input folder" in result.stderr


def test_explain_and_coverage():
    result = runner.invoke(app, ["explain", "T2J101"])
    assert result.exit_code == 0 and "Before:" in result.stdout
    assert runner.invoke(app, ["explain", "T2J999"]).exit_code == 2
    result = runner.invoke(app, ["coverage"])
    assert result.exit_code == 0
    count = int(result.stdout.split()[0])
    assert count >= 300, result.stdout


def test_python_dash_m_and_import_is_cheap():
    """`python -m torch2jax` works, and the translator imports neither torch nor jax."""
    code = "import sys, torch2jax; torch2jax.translate('import torch\\nx = torch.zeros(3)\\n'); " \
           "print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
    proc = subprocess.run([sys.executable, "-m", "torch2jax", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "translate" in proc.stdout



def test_coverage_counts_what_the_passes_translate():
    """APIs without a table record that passes translate count as covered: and they are translated."""
    from torch2jax import translate
    from torch2jax.coverage import mapped_apis

    mapped = mapped_apis()
    assert {"torch.no_grad", "Tensor.backward", "torch.nn.utils.clip_grad_norm_", "Tensor.add_",
            "Tensor.copy_", "torch.autocast"} <= mapped
    assert "torch._foreach_add_" not in mapped
    code = translate("import torch\ndef f(x, y):\n    with torch.no_grad():\n        x.add_(y)\n        x.clamp_(0, 1)\n"
                     "    return x\n").code
    assert "no_grad" not in code and "add_" not in code and "clamp_" not in code
