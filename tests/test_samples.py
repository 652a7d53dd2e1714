"""samples/jax/ holds each sample's translation as the CLI writes it, and stays up to date: a change to the
translator or its tables that changes a sample's translation must regenerate them (`python samples/regenerate.py`)
so the diff of the translations is reviewed with the change. Translation only: nothing here runs a sample."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("samples_regenerate", ROOT / "samples" / "regenerate.py")
regen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(regen)


def test_every_sample_has_one_committed_translation():
    assert len(regen.SAMPLES) >= 11
    assert {p.name for p in regen.JAX_DIR.glob("*.py")} == {s.name for s in regen.SAMPLES}


@pytest.mark.parametrize("sample", regen.SAMPLES, ids=[s.stem for s in regen.SAMPLES])
def test_committed_translation_is_current(sample, tmp_path):
    """The CLI run by regenerate.py, into a temp dir, writes byte for byte the committed file."""
    fresh = tmp_path / sample.name
    proc = regen.translate_with_cli(sample, fresh)
    assert proc.returncode in (0, 1), proc.stderr  # 1: error diagnostics, the file is written all the same
    assert fresh.read_bytes() == (regen.JAX_DIR / sample.name).read_bytes(), (
        f"samples/jax/{sample.name} is stale: run `python samples/regenerate.py` and review the translation's diff")
