"""The translated training step against a hand-written idiomatic Equinox + optax step for the same model.

For each case: the translator's `train_step` (translated here, from the torch source, and called as its training
loop calls it) and benchmarks/handwritten/<case>.py's step, on the same batch, the same model size, optimizer rule
and dropout rate. Printed, from one run: compile time (the first call after jax.clear_caches(), blocked; the least
of 3 tries) and steady-state step time (median of --steps calls, each blocked with jax.block_until_ready; the two
sides take turns step by step), and the ratios translated / handwritten (aim 1.0).
Also, as information: torch eager (zero_grad, forward, loss, backward, optimizer.step) on the same batch, CPU.

    JAX_PLATFORMS=cpu python benchmarks/step_speed.py [--steps 1000]
"""
from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch2jax.runtime as t2j  # noqa: E402
from handwritten import mlp_adamw as hw_adamw  # noqa: E402
from handwritten import mlp_regression as hw_regression  # noqa: E402
from torch2jax.files import translate_file  # noqa: E402


def _namespace(code: str, name: str) -> dict:
    ns = {"__name__": name}
    exec(compile(code, name, "exec"), ns)
    return ns


def _caller_by_name(fn):
    """A caller of the translator's step with its own parameter order (it names them after the loop's variables).
    The order is read once, here: inspect.signature costs ~100 us, which would be charged to the translated side."""
    names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind != p.KEYWORD_ONLY]
    return lambda values, key: fn(*[values[name] for name in names], key=key)


def _compile_times(translated, handwritten, repeats: int = 3):
    """(translated, handwritten) seconds of the first call (trace + compile + one run), the least of `repeats`
    tries each: jax.clear_caches() before every try, the two sides taking turns, so that one slow moment of a
    shared machine is not charged to one side."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for k, step in enumerate((translated, handwritten)):
            jax.clear_caches()
            start = time.perf_counter()
            jax.block_until_ready(step())
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def _step_times(translated, handwritten, n: int):
    """(translated, handwritten) median steady-state seconds per step. The two sides alternate step by step, so a
    change of machine load hits both alike (measured in blocks of whole runs, the ratio moved by +-20% under load;
    interleaved, by about 2%)."""
    for step in (translated, handwritten):
        for _ in range(5):
            jax.block_until_ready(step())
    times = ([], [])
    for _ in range(n):
        for k, step in enumerate((translated, handwritten)):
            start = time.perf_counter()
            jax.block_until_ready(step())
            times[k].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def _torch_time(model, optimizer, loss_fn, x, y, n: int) -> float:
    import torch

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if clip := getattr(optimizer, "_bench_clip", None):
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return loss.item()

    for _ in range(3):
        step()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class Stepper:
    """Rebinds model and optimizer state after each call, as a training loop does."""

    def __init__(self, fn, model, opt_state, values, key=jax.random.key(1)):
        self.fn, self.model, self.opt_state, self.values, self.key = fn, model, opt_state, values, key

    def __call__(self):
        self.key, sub = jax.random.split(self.key)
        out = self.fn(self.model, self.opt_state, sub)
        self.model, self.opt_state, loss = out[0], out[1], out[2]
        return loss, self.model


def case_mlp_regression(n: int, batch: int):
    """samples/mlp_regression.py: MLPRegressor(8, (64, 32)), RMSprop(1e-2, alpha 0.99), MSELoss. Dropout 0 (the
    sample's --dropout 0) on every side: the translated MLPRegressor.__call__ calls `self.net(x)` without the key,
    so its Sequential's Dropout layers cannot draw in training mode (a translator gap)."""
    import torch

    src = ROOT / "samples" / "mlp_regression.py"
    ns = _namespace(translate_file(src).code, "translated_mlp_regression")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 8)).astype(np.float32)
    y = rng.standard_normal(batch).astype(np.float32)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    model = eqx.nn.inference_mode(ns["MLPRegressor"](in_features=8, dropout=0.0, key=jax.random.key(0)), False)
    optimizer = t2j.optim.RMSprop(lr=1e-2, alpha=0.99, momentum=0.0)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    values = {"optimizer": optimizer, "xb": xj, "yb": yj, "criterion": t2j.MSELoss()}
    call = _caller_by_name(ns["train_step"])
    translated = Stepper(lambda m, s, k: call({**values, "model": m, "opt_state": s}, k), model, opt_state, values)

    hmodel = hw_regression.MLPRegressor(8, (64, 32), 0.0, key=jax.random.key(0))
    hopt = hw_regression.make_optimizer(1e-2)
    handwritten = Stepper(lambda m, s, k: hw_regression.train_step(m, s, hopt, xj, yj, key=k), hmodel,
                          hopt.init(eqx.filter(hmodel, eqx.is_array)), None)

    tns = _namespace(src.read_text(), "torch_mlp_regression")
    torch.manual_seed(0)
    tmodel = tns["MLPRegressor"](in_features=8, dropout=0.0).train()
    topt = torch.optim.RMSprop(tmodel.parameters(), lr=1e-2)
    t_step = _torch_time(tmodel, topt, torch.nn.MSELoss(), torch.from_numpy(x), torch.from_numpy(y), n)
    return translated, handwritten, t_step


def case_mlp_adamw(n: int, batch: int):
    """tests/cases/train_mlp_adamw.py: MLP(6, 16, 3), AdamW(0.05, weight decay 0.01), clip_grad_norm 1.0,
    cross entropy."""
    import torch

    src = ROOT / "tests" / "cases" / "train_mlp_adamw.py"
    ns = _namespace(translate_file(src).code, "translated_mlp_adamw")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 6)).astype(np.float32)
    y = rng.integers(0, 3, batch)
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    model = eqx.nn.inference_mode(ns["MLP"](key=jax.random.key(0)), False)
    optimizer = t2j.optim.AdamW(lr=0.05, weight_decay=0.01)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    # older translations sliced X[start:start + 16] inside the step (start a static Python int), newer ones take
    # X_batch, y_batch: either way the batch at 0
    values = {"optimizer": optimizer, "X": xj, "start": 0, "y": yj, "X_batch": xj[:16], "y_batch": yj[:16]}
    call = _caller_by_name(ns["train_step"])
    translated = Stepper(lambda m, s, k: call({**values, "model": m, "opt_state": s}, k), model, opt_state, values)

    hmodel = hw_adamw.MLP(key=jax.random.key(0))
    hopt = hw_adamw.make_optimizer()
    xs, ys = xj[:16], yj[:16]
    handwritten = Stepper(lambda m, s, k: hw_adamw.train_step(m, s, hopt, xs, ys, key=k), hmodel,
                          hopt.init(eqx.filter(hmodel, eqx.is_array)), None)

    tns = _namespace(src.read_text(), "torch_mlp_adamw")
    torch.manual_seed(0)
    tmodel = tns["MLP"]().train()
    topt = torch.optim.AdamW(tmodel.parameters(), lr=0.05, weight_decay=0.01)
    topt._bench_clip = 1.0
    t_step = _torch_time(tmodel, topt, torch.nn.functional.cross_entropy, torch.from_numpy(x[:16]),
                         torch.from_numpy(y[:16]), n)
    return translated, handwritten, t_step


CASES = {"mlp_regression (samples)": (case_mlp_regression, 16), "mlp_adamw (tests/cases)": (case_mlp_adamw, 64)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per side (median)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores, "
          f"load average {load:.1f} at start; median of {args.steps} steps")
    rows = []
    for name, (make, batch) in CASES.items():
        translated, handwritten, t_torch = make(args.steps, batch)
        c_t, c_h = _compile_times(translated, handwritten)
        s_t, s_h = _step_times(translated, handwritten, args.steps)
        rows.append((name, c_t, c_h, s_t, s_h, t_torch))
    print("\n| case | compile translated (s) | compile handwritten (s) | ratio | step translated (us) | "
          "step handwritten (us) | ratio | torch eager step (us) | torch / translated |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, c_t, c_h, s_t, s_h, t in rows:
        print(f"| {name} | {c_t:.3f} | {c_h:.3f} | {c_t / c_h:.2f} | {s_t * 1e6:.0f} | {s_h * 1e6:.0f} | "
              f"{s_t / s_h:.2f} | {t * 1e6:.0f} | {t / s_t:.2f} |")


if __name__ == "__main__":
    main()
