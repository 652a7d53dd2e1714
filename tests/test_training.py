"""Training scripts translated by the CLI and run with plain python print torch's losses, step by step."""
import contextlib
import io
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from torch2jax import translate

CASES = sorted((Path(__file__).parent / "cases").glob("train_*.py"))
LINE = re.compile(r"^(step \d+ loss|final \w+) ([-\d.eE+]+)$")


def _run(path: Path, env_extra=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, env=env)


def _numbers(stdout: str) -> dict[str, float]:
    out = {}
    for line in stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            out[m[1]] = float(m[2])
    return out


def _run_torch(path: Path) -> str:
    """The torch script's output, run in this process (torch is imported here already: no start-up to pay)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(path), run_name="__main__")
    return out.getvalue()


def _translate(case: Path, out_dir: Path) -> Path:
    """What `torch2jax translate case -o out` writes (the CLI itself is tested in test_cli.py)."""
    out = out_dir / case.name
    result = translate(case.read_text(), filename=str(case))
    assert not result.failed and not [d for d in result.diagnostics if d.severity == "error"], result.diagnostics
    out.write_text(result.code)
    assert "import torch\n" not in result.code and "from torch" not in result.code
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_translated_script_prints_torch_losses(case, tmp_path):
    expected = _numbers(_run_torch(case))
    assert len(expected) >= 5, "the torch script prints its losses"
    translated = _translate(case, tmp_path)
    proc = _run(translated)
    assert proc.returncode == 0, proc.stderr[-3000:] + "\n" + translated.read_text()
    actual = _numbers(proc.stdout)
    assert actual.keys() == expected.keys(), proc.stdout
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, rel=1e-3, abs=1e-5), name


def test_step_compiles_once(tmp_path):
    """A fixed batch shape compiles the jitted step once, however many steps run."""
    translated = _translate(Path(__file__).parent / "cases" / "train_mlp_adamw.py", tmp_path)
    proc = _run(translated, {"JAX_LOG_COMPILES": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    compiles = [line for line in proc.stderr.splitlines() if "Compiling" in line and "train_step" in line]
    assert len(compiles) == 1, "\n".join(compiles)
