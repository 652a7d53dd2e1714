"""Scale: one big file, and a folder of many small ones.

1. Generated torch files of 2k/5k/10k/20k lines (modules, in-place updates, RNG draws, table ops, a training
   loop, repeated with fresh names) through translate(): prints seconds (wall and CPU), CPU microseconds per
   line, and the CPU time per line relative to the smallest file. A ratio that grows with the size means something quadratic.
2. A folder of --files small files (default 1,000) through `torch2jax translate DIR -o OUT` (the worker pool on
   every core, with the progress bar when stderr is a terminal): files per second.

    python benchmarks/scale.py [--sizes 2000,5000,10000,20000] [--files 1000] [--repeat 1]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"

BLOCK = '''\
class Block{i}(nn.Module):
    """Block {i}."""

    def __init__(self, d):
        super().__init__()
        self.fc{i} = nn.Linear(d, d)
        self.drop = nn.Dropout(0.1)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        # residual block {i}
        h = self.fc{i}(self.norm(x))
        h = F.gelu(h)
        h = self.drop(h)
        return x + h


def helper{i}(x, scale={i}):
    y = torch.sum(x, 1, True) * scale
    y.add_(1.0)
    noise = torch.randn(3, 4) * 0.1
    z = torch.clamp(y + noise, min=0.0)
    z[:, 0] = 0.0
    return torch.cat([y, z], dim=1).mean()


def train{i}(model, data):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for xb, yb in data:
        optimizer.zero_grad()
        loss = F.mse_loss(model(xb), yb)
        loss.backward()
        optimizer.step()
    return model


'''


def generated(lines: int) -> str:
    per_block = BLOCK.count("\n")
    return HEADER + "".join(BLOCK.format(i=i) for i in range(max(1, lines // per_block)))


def bench_sizes(sizes: list[int], repeat: int) -> None:
    from torch2jax import translate

    translate(generated(200))  # tables loaded, imports warm
    # CPU seconds of this process too: on a loaded machine wall time says little
    print(f"{'lines':>8} {'seconds':>9} {'cpu s':>9} {'us/line':>9} {'ratio':>6}")
    base = None
    for size in sizes:
        source = generated(size)
        n = source.count("\n")
        best, best_cpu = float("inf"), float("inf")
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = translate(source, filename=f"gen{size}.py")
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, time.process_time() - start_cpu)
        assert not result.failed, result.diagnostics[:3]
        per_line = best_cpu / n
        base = base or per_line
        print(f"{n:>8} {best:>9.2f} {best_cpu:>9.2f} {per_line * 1e6:>9.1f} {per_line / base:>6.2f}", flush=True)


def bench_folder(count: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="t2j-scale-"))
    try:
        src = tmp / "src"
        for i in range(count):
            folder = src / f"pkg{i % 20}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"m{i}.py").write_text(HEADER + BLOCK.format(i=i))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "torch2jax", "translate", str(src), "-o", str(tmp / "out")],
                              stderr=None if sys.stderr.isatty() else subprocess.PIPE)
        elapsed = time.perf_counter() - start
        written = len(list((tmp / "out").rglob("*.py")))
        print(f"{count} files on {os.cpu_count()} cores: {elapsed:.1f} s, {count / elapsed:.1f} files/s, "
              f"{written} written, exit {proc.returncode}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,5000,10000,20000")
    parser.add_argument("--files", type=int, default=1000, help="0: skip the folder run")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    bench_sizes([int(s) for s in args.sizes.split(",") if s], args.repeat)
    if args.files:
        bench_folder(args.files)


if __name__ == "__main__":
    main()
