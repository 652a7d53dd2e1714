"""End-to-end measurement of the translator on samples/: a report, not a test (it never fails on a gap).

For every sample: translate it with the CLI (exit code, error diagnostics), import the translation with torch
blocked, check each model class against torch numerically with `torch2jax.check` (interface, numbers: eval and
train outputs and gradients from torch's state_dict, training: 3 SGD steps), and run the original and the
translated script, comparing the `step i loss x` lines (rtol 1e-3), with randomness during training turned off
where the sample has a flag for it (`--dropout 0`, `--drop-path 0`).

Note on the losses: each sample draws its initial weights and its synthetic data from torch's RNG
(torch.manual_seed, torch.Generator); the translation draws them from jax.random. So the losses of the two runs
start from different weights and data, and can only agree where no draw matters; the column is still the
end-to-end answer to "does the translation print torch's losses" and says whether the translation runs at all.
The last column is `torch2jax check sample.py translated.py --train main`: there the translated run replays
torch's own random draws (check/script_replay.py), so the printed numbers can match exactly.

    python benchmarks/samples_report.py [--only mnist_cnn,vae] [--timeout 600] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p for p in (ROOT / "samples").glob("*.py") if p.name != "regenerate.py")
LINE = re.compile(r"^step (\d+) loss ([-\d.eE+naif]+)$")

# Flags that turn off randomness during training (samples/README.md, "Randomness inside training").
NO_RANDOM_FLAGS = {
    "word_lm": ["--dropout", "0"],
    "char_gpt": ["--dropout", "0"],
    "mlp_regression": ["--dropout", "0"],
    "seq2seq_gru": ["--dropout", "0"],
    "transformer_classifier": ["--dropout", "0"],
    "vit": ["--drop-path", "0"],
}
STILL_RANDOM = {"mnist_cnn": "dropout 0.25/0.5 fixed", "vae": "randn_like in forward", "dcgan": "noise each step",
                "char_gpt": "randint batches", "resnet18": "random flips", "seq2seq_gru": "teacher forcing (random)"}

# Model classes checked per sample: {class: {"args": ..., "inputs": {...}}} (torch2jax.check's args/inputs); the
# constructor arguments are the ones main() uses (samples/README.md), with dropout 0 where it is an argument.
# A class whose constructor takes a non-literal (GPTConfig, a block class) cannot be built by check: listed in
# NOT_LITERAL and reported as such.
MODULES: dict[str, dict] = {
    "mnist_cnn": {"Net": {"args": [], "inputs": {"x": "float32[2,1,28,28]"}}},
    "vae": {"VAE": {"args": [784, 400, 20], "inputs": {"x": "float32[2,784]:0..1"}}},
    "dcgan": {"Generator": {"args": [100, 16, 3], "inputs": {"input": "float32[2,100,1,1]"}},
              "Discriminator": {"args": [16, 3], "inputs": {"input": "float32[2,3,64,64]"}}},
    "word_lm": {},  # RNNModel.forward(input, hidden): hidden is an (h, c) tuple, which check cannot draw
    "char_gpt": {},
    "resnet18": {"BasicBlock": {"args": [16, 16], "inputs": {"x": "float32[2,16,8,8]"}}},
    "vit": {"VisionTransformer": {"kwargs": {"patch_size": 4, "embed_dim": 64, "depth": 4, "num_heads": 4,
                                             "drop_path_rate": 0.0}, "inputs": {"x": "float32[2,3,32,32]"}},
            "Attention": {"args": [64, 4], "inputs": {"x": "float32[2,17,64]"}}},
    "unet": {"UNet": {"args": [3, 1, 8, False], "inputs": {"x": "float32[2,3,44,44]"}},
             "Up": {"args": [16, 8, False], "inputs": {"x1": "float32[2,8,5,5]", "x2": "float32[2,8,11,11]"}}},
    "mlp_regression": {"MLPRegressor": {"args": [8, [64, 32], 0.0], "inputs": {"x": "float32[4,8]"}}},
    "seq2seq_gru": {"EncoderRNN": {"args": [12, 32, 0.0], "inputs": {"input": "int64[2,8]:0..11"}},
                    "BahdanauAttention": {"args": [32], "inputs": {"query": "float32[2,1,32]",
                                                                   "keys": "float32[2,8,32]"}}},
    "transformer_classifier": {"TransformerClassifier": {"args": [100, 4], "kwargs": {"dropout": 0.0},
                                                         "inputs": {"src": "int64[2,10]:1..99"}}},
}
NOT_LITERAL = {"char_gpt": "GPT(config: GPTConfig)", "resnet18": "ResNet(block=BasicBlock, ...)",
               "word_lm": "RNNModel (forward takes an (h, c) tuple)",
               "seq2seq_gru": "AttnDecoderRNN (forward takes hidden + optional target)"}

BLOCK_TORCH = ("import sys, importlib.abc\n"
               "class B(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path, target=None):\n"
               "        if name == 'torch' or name.startswith('torch.'):\n"
               "            raise ImportError('torch is blocked')\n"
               "sys.meta_path.insert(0, B())\n"
               "import importlib.util\n"
               "path = sys.argv.pop(1); sys.argv[0] = path; sys.path.insert(0, path.rsplit('/', 1)[0])\n"
               "spec = importlib.util.spec_from_file_location('translated', path)\n"
               "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)\n")


@dataclass
class Row:
    name: str
    exit_code: int = -1
    errors: int = 0
    error_codes: list = field(default_factory=list)
    imports: str = "-"
    modules: list = field(default_factory=list)  # (class, status, message)
    torch_run: str = "-"
    jax_run: str = "-"
    steps: str = "-"
    losses_match: str = "-"
    first_rel: float | None = None
    replayed: str = "-"  # torch2jax check --train main: printed lines with torch's random draws replayed
    seconds: float = 0.0


def _env() -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONHASHSEED": "0"}


def translate(sample: Path, out: Path, row: Row) -> None:
    proc = subprocess.run([sys.executable, "-m", "torch2jax", "translate", str(sample), "-o", str(out)],
                          capture_output=True, text=True, timeout=600, env=_env())
    row.exit_code = proc.returncode
    # the CLI does not print a severity: count with the same pipeline in-process
    from torch2jax.files import translate_file

    t = translate_file(sample)
    errs = [d for d in t.diagnostics if d.severity == "error"]
    row.errors = len(errs)
    row.error_codes = [f"{d.code} {d.message} (line {d.line})" for d in errs]


def imports_without_torch(path: Path, row: Row) -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCK_TORCH, str(path)], capture_output=True, text=True,
                          timeout=300, env=_env())
    row.imports = "yes" if proc.returncode == 0 else "NO: " + (proc.stderr.strip().splitlines() or ["?"])[-1][:90]


def check_modules(sample: Path, translated: Path, row: Row, timeout: float) -> None:
    import torch2jax

    spec = MODULES.get(sample.stem, {})
    if not spec:
        return
    args = {c: {k: v for k, v in s.items() if k in ("args", "kwargs")} for c, s in spec.items()}
    inputs = [f"{c}.{p}: {v}" for c, s in spec.items() for p, v in s.get("inputs", {}).items()]
    report = torch2jax.check(sample, translated, entries=list(spec), args=args, inputs=inputs, timeout=timeout,
                             examples=4, steps=3)
    for cls in spec:
        results = report.find(cls)
        worst = next((r for s in ("ERROR", "FAIL", "SKIP") for r in results if r.status == s), None)
        stages = "/".join(f"{r.stage[0]}:{r.status}" for r in results)
        msg = (worst.message + (" | " + worst.details[-1] if worst.details else "")) if worst else ""
        row.modules.append((cls, "PASS" if worst is None else worst.status, stages, msg[:300]))


def run_script(path: Path, flags: list, block_torch: bool, timeout: float) -> subprocess.CompletedProcess:
    if block_torch:
        code = BLOCK_TORCH.replace("'translated'", "'__main__'")
        cmd = [sys.executable, "-c", code, str(path), *flags]
    else:
        cmd = [sys.executable, str(path), *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=path.parent)


def losses(stdout: str) -> dict[int, float]:
    out = {}
    for line in stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            out[int(m[1])] = float(m[2])
    return out


def compare_training(sample: Path, translated: Path, row: Row, timeout: float) -> None:
    flags = NO_RANDOM_FLAGS.get(sample.stem, [])
    with ThreadPoolExecutor(2) as ex:
        ft = ex.submit(run_script, sample, flags, False, timeout)
        fj = ex.submit(run_script, translated, flags, True, timeout)
        try:
            t, j = ft.result(), fj.result()
        except subprocess.TimeoutExpired as e:
            row.jax_run = f"timeout {e.timeout:g}s"
            return
    row.torch_run = "ok" if t.returncode == 0 else f"exit {t.returncode}"
    lt = losses(t.stdout)
    if j.returncode != 0:
        last = (j.stderr.strip().splitlines() or ["?"])[-1]
        row.jax_run = f"exit {j.returncode}: {last[:120]}"
    else:
        row.jax_run = "ok"
    lj = losses(j.stdout)
    row.steps = f"{len(lj)}/{len(lt)}"
    if not lt or not lj:
        row.losses_match = "no"
        return
    same = [i for i in lt if i in lj and abs(lj[i] - lt[i]) <= 1e-3 * abs(lt[i]) + 1e-6]
    row.losses_match = "yes" if len(same) == len(lt) == len(lj) else f"{len(same)}/{len(lt)} steps"
    if 0 in lt and 0 in lj:
        row.first_rel = abs(lj[0] - lt[0]) / max(abs(lt[0]), 1e-12)


def check_replayed_losses(sample: Path, translated: Path, row: Row, timeout: float) -> None:
    """`torch2jax check sample.py translated.py --train main`: both scripts run, the translation with torch's random
    draws (initial weights, data, dropout, shuffling) replayed, and every printed metric line compared (rtol 1e-3).
    Unlike the plain runs above, this can match where the sample draws from torch's RNG."""
    import torch2jax

    report = torch2jax.check(sample, translated, entries=["main"], train=["main"], timeout=timeout)
    results = [r for r in report.find("main") if r.stage == "training"]
    if not results:
        row.replayed = "no result"
        return
    r = results[0]
    row.replayed = r.status if r.status == "PASS" else f"{r.status}: {r.message[:160]}"


def report_one(sample: Path, tmp: Path, timeout: float) -> Row:
    row = Row(sample.stem)
    start = time.monotonic()
    out = tmp / sample.name
    translate(sample, out, row)
    if out.exists():
        imports_without_torch(out, row)
        try:
            check_modules(sample, out, row, timeout)
        except Exception as e:  # a report: a checker failure is a finding, not a crash of the whole table
            row.modules.append(("(check)", "ERROR", "", f"{type(e).__name__}: {e}"[:200]))
        compare_training(sample, out, row, timeout)
        try:
            check_replayed_losses(sample, out, row, timeout)
        except Exception as e:
            row.replayed = f"ERROR: {type(e).__name__}: {e}"[:200]
    row.seconds = time.monotonic() - start
    return row


def print_table(rows: list[Row]) -> None:
    print("\n| sample | CLI exit | error diags | imports w/o torch | module classes (check: interface/numbers/"
          "training) | torch run | JAX run | steps JAX/torch | losses match (rtol 1e-3) | step 0 rel diff | flags | "
          "printed lines match, torch's draws replayed |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mods = ", ".join(f"{c} {s}" for c, s, _, _ in r.modules) or "-"
        if r.name in NOT_LITERAL:
            mods += f" (not checked: {NOT_LITERAL[r.name]})"
        rel = "-" if r.first_rel is None else f"{r.first_rel:.2e}"
        flags = " ".join(NO_RANDOM_FLAGS.get(r.name, [])) or "-"
        imports = r.imports if r.imports == "yes" else r.imports.replace("|", "/")
        print(f"| {r.name} | {r.exit_code} | {r.errors} | {imports} | {mods} | {r.torch_run} | "
              f"{r.jax_run.replace('|', '/')} | {r.steps} | {r.losses_match} | {rel} | {flags} | "
              f"{r.replayed.replace('|', '/')} |")
    n = len(rows)
    mods = [m for r in rows for m in r.modules]
    print(f"\nTotals over {n} samples: CLI exit 0: {sum(r.exit_code == 0 for r in rows)}/{n}; "
          f"error diagnostics: {sum(r.errors for r in rows)} "
          f"(samples without any: {sum(r.errors == 0 for r in rows)}/{n}); "
          f"import without torch: {sum(r.imports == 'yes' for r in rows)}/{n}; "
          f"module classes passing check: {sum(m[1] == 'PASS' for m in mods)}/{len(mods)}; "
          f"translated script runs to the end: {sum(r.jax_run == 'ok' for r in rows)}/{n}; "
          f"prints torch's losses: {sum(r.losses_match == 'yes' for r in rows)}/{n}; "
          f"prints torch's numbers with torch's draws replayed (check --train main): "
          f"{sum(r.replayed == 'PASS' for r in rows)}/{n}")
    print("\nDetails (error diagnostics, module check failures, run failures):")
    for r in rows:
        print(f"\n{r.name} ({r.seconds:.0f} s)")
        for e in r.error_codes:
            print(f"  diag   {e}")
        for c, s, stages, msg in r.modules:
            if s != "PASS":
                print(f"  module {c} {s} [{stages}] {msg}")
        if r.jax_run not in ("ok", "-"):
            print(f"  run    {r.jax_run}")
        if r.name in STILL_RANDOM:
            print(f"  note   randomness left during training: {STILL_RANDOM[r.name]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated sample names")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per script run / check stage")
    parser.add_argument("--jobs", type=int, default=2, help="samples handled at once")
    args = parser.parse_args()
    samples = [s for s in SAMPLES if not args.only or s.stem in args.only.split(",")]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"samples report: {len(samples)} samples, {os.cpu_count()} cores, load average {load:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="t2j-samples-") as tmp:
        with ThreadPoolExecutor(args.jobs) as ex:
            rows = list(ex.map(lambda s: report_one(s, Path(tmp), args.timeout), samples))
    print_table(rows)


if __name__ == "__main__":
    main()
