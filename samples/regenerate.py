"""Refresh samples/jax/: each sample's translation exactly as the CLI writes it.

    python samples/regenerate.py            # rewrite samples/jax/<name>.py for every sample
    python samples/regenerate.py --check    # write nothing; exit 1 and name the stale files if any differ

Each file is made by `python -m torch2jax translate samples/<name>.py -o samples/jax/<name>.py` (the CLI exits 1
when the translation has error diagnostics: the file is written all the same, with `# torch2jax:` comments where
a human is needed). tests/test_samples.py fails when a committed translation is stale: run this script then.
This file is not a sample (the samples are the other samples/*.py): `SAMPLES` below is the list.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
JAX_DIR = HERE / "jax"
SAMPLES = sorted(p for p in HERE.glob("*.py") if p.name != Path(__file__).name)


# The translation of some samples (dcgan's two-step training loop: the order of the values the jitted step
# returns) depends on Python's string hashing, that is on PYTHONHASHSEED: the translator iterates a set there.
# Until it does not, the committed files are made, and checked, with a fixed seed.
HASH_SEED = "0"


def translate_with_cli(sample: Path, dest: Path) -> subprocess.CompletedProcess:
    """Run the CLI on one sample; returncode 0 (clean), 1 (error diagnostics, file written) or 2 (not written)."""
    return subprocess.run([sys.executable, "-m", "torch2jax", "translate", str(sample), "-o", str(dest)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONHASHSEED": HASH_SEED})


def regenerate(out_dir: Path, samples=SAMPLES, jobs: int = 4) -> dict[str, subprocess.CompletedProcess]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as ex:
        procs = dict(zip([s.stem for s in samples],
                         ex.map(lambda s: translate_with_cli(s, out_dir / s.name), samples)))
    return procs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with samples/jax/ instead of writing it")
    parser.add_argument("-j", "--jobs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) if args.check else JAX_DIR
        procs = regenerate(out, jobs=args.jobs)
        status = 0
        for name, proc in procs.items():
            if proc.returncode == 2:
                print(f"{name}: not translated (exit 2): {proc.stderr.strip().splitlines()[-1:]}")
                status = 2
                continue
            errors = sum(" T2J" in line for line in proc.stderr.splitlines())
            if args.check:
                fresh = (out / f"{name}.py").read_text()
                old = JAX_DIR / f"{name}.py"
                stale = not old.exists() or old.read_text() != fresh
                print(f"{name}: {'STALE' if stale else 'up to date'}")
                status = max(status, int(stale))
            else:
                print(f"{name}: exit {proc.returncode}, {errors} diagnostics -> {JAX_DIR.name}/{name}.py")
        if not args.check:
            known = {s.name for s in SAMPLES}
            for orphan in sorted(p for p in JAX_DIR.glob("*.py") if p.name not in known):
                orphan.unlink()
                print(f"removed {orphan.name} (no such sample)")
    return status


if __name__ == "__main__":
    sys.exit(main())
