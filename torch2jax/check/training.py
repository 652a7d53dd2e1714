"""Stage 3, training behaviour.

Modules (in the worker): from the same weights, N steps (default 3) of plain SGD (p -= lr * grad, on both sides by
hand, so no optimizer translation is under test) on the MSE between the output and a fixed random target, on the
same generated batches, in train mode with dropout off (BatchNorm statistics move and are threaded through the
steps). Compared: the loss at every step, then every state_dict entry at the end (parameters and buffers).

Scripts (in the checker, each side a plain `python` process with a time and memory limit; the translation with
torch blocked): every printed line that reports a number next to a metric word (loss, acc, step, epoch, final,
...) is compared: same lines, same words, integers equal, floats within rtol 1e-3 (plus one unit in the last
printed digit).
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys

import numpy as np

from torch2jax.check import compare as cmp
from torch2jax.check import inputs as inp

LR = 0.05


# ============================================================================================ modules (worker)
def train_module(name, ocls, tcls, config, cache) -> dict:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import torch

    import torch2jax.runtime as t2j
    from torch2jax.check.functions import result, to_jax, to_torch, user_error
    from torch2jax.check.modules import build, jax_train_no_dropout, jit_or_eager, torch_train_no_dropout
    from torch2jax.check.replay import Replay, user_modules

    built = build(name, ocls, tcls, config, cache)
    if isinstance(built, dict):
        return built
    pair, specs, how = built
    steps, lr = int(config.get("steps", 3)), float(config.get("lr", LR))
    train = cache.get("train_mode", True)
    random = cache.get("random")  # a random forward (modules.check_random_module): replayed, or varying outputs left out
    replays = [] if random and random["replay"] else None
    skip = set(random["varying"]) if random and not random["replay"] else set()
    inputs = f"{inp.format_specs(specs)} ({how}); {steps} SGD steps, lr {lr:g}"
    batches = [inp.draw_values(specs, "random", 100 + i) for i in range(steps)]
    module = torch_train_no_dropout(pair.torch) if train else pair.torch.eval()
    with torch.no_grad():
        first = cmp.float_leaves(pair.torch_call(module, specs, to_torch(batches[0])))
    module.load_state_dict(pair.initial)  # that forward moved BatchNorm statistics: start again
    if not first:
        return result("SKIP", "the module returns no floating output to train on", inputs=inputs)
    if not any(p.requires_grad for p in pair.torch.parameters()):
        return result("SKIP", "the module has no trainable parameters (buffers only): nothing to train",
                      inputs=inputs)
    rng = np.random.default_rng(5)
    targets = [rng.standard_normal(tuple(leaf.shape)).astype(np.float32) for _, leaf in first]
    weights = [0.0 if p in skip else 1.0 for p, _ in first]  # outputs that vary from draw to draw: not trained on
    if not any(weights):
        return result("SKIP", "every floating output varies from draw to draw and torch's draws cannot be "
                              "replayed: no deterministic loss to train on", inputs=inputs)
    t_losses = []
    for batch in batches:
        torch.manual_seed(1)
        if replays is not None:
            replays.append(Replay(user_modules(ocls, tcls)))
        with replays[-1].torch() if replays is not None else contextlib.nullcontext():
            out = cmp.float_leaves(pair.torch_call(module, specs, to_torch(batch)))
        loss = sum(w * torch.mean((leaf - torch.from_numpy(t)) ** 2)
                   for (_, leaf), t, w in zip(out, targets, weights))
        module.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            for p in module.parameters():
                if p.grad is not None:
                    p -= lr * p.grad
        t_losses.append(float(loss))
    model = jax_train_no_dropout(pair.model) if train else eqx.nn.inference_mode(pair.model)
    state = pair.state

    def loss_fn(model_, state_, batch):
        out, new_state = pair.call(model_, specs, batch, state=state_, key=jax.random.key(1))
        leaves = cmp.float_leaves(out)
        loss = sum((w * jnp.mean((leaf - t) ** 2) for (_, leaf), t, w in zip(leaves, targets, weights)),
                   jnp.zeros(()))
        return loss, new_state

    j_losses = []
    step = jit_or_eager(eqx.filter_value_and_grad(loss_fn, has_aux=True))
    try:
        for i, batch in enumerate(batches):
            with replays[i].jax() if replays is not None else contextlib.nullcontext():
                (loss, new_state), grads = step(model, state, to_jax(batch))
            if replays is not None and not replays[i].ok:
                return result("FAIL", f"step {i} with torch's draws replayed: {replays[i].why}", inputs=inputs)
            g = dict(t2j.named_parameters(grads))
            new = [p - lr * g[n] if n in g else p for n, p in t2j.named_parameters(model)]
            model = t2j.replace_parameters(model, new)
            state = new_state if pair.stateful else state
            j_losses.append(float(loss))
    except BaseException as e:  # noqa: BLE001
        return result("FAIL", f"JAX raised during training: {user_error(e)}", inputs=inputs)
    c = cmp.Comparison()
    for i, (a, b) in enumerate(zip(t_losses, j_losses)):
        c.merge(cmp.compare_arrays(np.float32(a), np.float32(b), f"loss at step {i}", loose=True))
    losses = "losses torch " + ", ".join(f"{x:.6g}" for x in t_losses) + " / JAX " + ", ".join(
        f"{x:.6g}" for x in j_losses)
    if not c.ok:
        return result("FAIL", c.message, c, inputs, [losses])
    t_sd = module.state_dict()
    j_sd = t2j.to_state_dict(model, state) if pair.stateful else t2j.to_state_dict(model)
    for k, v in t_sd.items():
        if k not in j_sd:
            c.ok = False
            c.problems.append(f"{k} is missing from the translation's state_dict")
            continue
        c.merge(cmp.compare_arrays(v, j_sd[k], f"{k} after {steps} steps", loose=True))
    if not c.ok:
        return result("FAIL", c.message, c, inputs, [losses])
    note = "" if train else " (eval mode)"
    if replays is not None:
        note += ", torch's draws replayed"
    elif skip:
        note += f"; trained on the outputs that do not vary from draw to draw ({', '.join(sorted(skip))} left out)"
    return result("PASS", f"losses at every step and final parameters match{note}",
                  c, inputs, [losses])


# ============================================================================================ scripts (checker)
BOOT = r"""
import os, runpy, sys
path, call, block, replay = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
if replay and replay[0] == "reseed":  # other seeds: do the printed numbers depend on torch's random draws?
    import torch
    _seed = torch.manual_seed
    torch.manual_seed = lambda s: _seed(int(s) + 1000)
    torch.manual_seed(0)
    class _Generator(torch.Generator):
        def manual_seed(self, s):
            return super().manual_seed(int(s) + 1000)
    torch.Generator = _Generator
if replay and replay[0] == "record":
    from torch2jax.check.script_replay import install_recorder
    install_recorder(replay[1])
if block:
    # an import of torch fails; sys.modules holds no entry for it (a None there breaks libraries that look for
    # torch's Tensor class when torch is in sys.modules, as equinox's pretty-printer does)
    class _BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "torchaudio", "torchtext", "functorch"):
                raise ImportError(f"{name} is blocked: the translation must run without torch")
            return None
    sys.meta_path.insert(0, _BlockTorch())
if replay and replay[0] == "replay":
    from torch2jax.check.script_replay import install_replayer
    install_replayer(replay[1], replay[2])
sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
sys.argv = [path]
if call:
    import importlib.util
    spec = importlib.util.spec_from_file_location("_t2j_script", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_t2j_script"] = mod
    spec.loader.exec_module(mod)
    fn = getattr(mod, call)
    kwargs = {}
    import inspect
    p = inspect.signature(fn).parameters.get("key")
    if p is not None and p.default is inspect.Parameter.empty:  # a translated function that draws random numbers
        import jax
        kwargs["key"] = jax.random.key(0)
    fn(**kwargs)
else:
    runpy.run_path(path, run_name="__main__")
"""


def run_script(path: str, timeout: float, memory_mb: int, block_torch: bool = False, call: str = "",
               cwd: str | None = None, replay: tuple = ()) -> dict:
    """Run a script (or one function of a file) in plain python: {"rc", "stdout", "stderr", "timed_out"}.
    replay: ("record", draws.npz) on the torch side, ("replay", draws.npz, status.json) on the JAX side
    (script_replay.py)."""
    from torch2jax.check.isolation import limit_memory

    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONHASHSEED"] = "0"
    mem = max(memory_mb, 0) + 4096  # plus what importing torch / jax reserves
    try:
        proc = subprocess.run([sys.executable, "-c", BOOT, path, call, "1" if block_torch else "0", *replay],
                              capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                              preexec_fn=(lambda: limit_memory(mem)) if memory_mb > 0 else None,
                              start_new_session=True)
        return {"rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr, "timed_out": False}
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return {"rc": None, "stdout": out, "stderr": "", "timed_out": True}


NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])|\b(?:nan|inf)\b")
METRIC = re.compile(r"loss|acc|metric|final|error|err\b|perplex|ppl|score|val|test|eval|mse|mae|auc|f1|prec|"
                    r"recall|step|epoch|iter|batch|correct|total|reward|norm", re.I)
TIMING = re.compile(r"\btime\b|\bsec|\bs/it|it/s|elapsed|took|\bms\b|seconds|throughput|samples/s|tok/s|eta\b",
                    re.I)


def metric_lines(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines()
            if NUMBER.search(line) and METRIC.search(line) and not TIMING.search(line)]


def _tol(token: str) -> float:
    if "." in token and "e" not in token.lower():
        return 10.0 ** -len(token.split(".")[1])
    return 0.0


def compare_outputs(t_out: str, j_out: str, rtol: float = 1e-3) -> cmp.Comparison:
    c = cmp.Comparison()
    t_lines, j_lines = metric_lines(t_out), metric_lines(j_out)
    # lines only one side prints in that form are no metrics of both: a model's repr (torch's
    # `(1): BatchNorm2d(128, eps=1e-05, ...)` against Equinox's), a tensor printed with its type
    shared = {NUMBER.sub("#", line) for line in t_lines} & {NUMBER.sub("#", line) for line in j_lines}
    if shared:
        t_lines = [line for line in t_lines if NUMBER.sub("#", line) in shared]
        j_lines = [line for line in j_lines if NUMBER.sub("#", line) in shared]
    if not t_lines:
        c.problems.append("the original printed no metric lines (loss, accuracy, step ...): nothing compared")
        return c
    for i, (a, b) in enumerate(zip(t_lines, j_lines)):
        ta, tb = NUMBER.sub("#", a), NUMBER.sub("#", b)
        if ta != tb:
            c.ok = False
            c.problems.append(f"metric line {i + 1}: torch {a!r} vs JAX {b!r}")
            break
        for x, y in zip(NUMBER.findall(a), NUMBER.findall(b)):
            fx, fy = float(x), float(y)
            if not any(ch in x for ch in ".eEn") and not any(ch in y for ch in ".eEn"):
                if int(fx) != int(fy):
                    c.ok = False
                    c.problems.append(f"metric line {i + 1}: torch {a!r} vs JAX {b!r}")
                continue
            if np.isnan(fx) and np.isnan(fy):
                continue
            err = abs(fx - fy)
            c.max_abs = max(c.max_abs, err)
            c.max_rel = max(c.max_rel, err / max(abs(fx), 1e-12))
            if not err <= rtol * abs(fx) + 1.01 * max(_tol(x), _tol(y)) + 1e-12:
                c.ok = False
                c.problems.append(f"metric line {i + 1}: torch {a!r} vs JAX {b!r}")
        if not c.ok:
            break
    if c.ok and len(t_lines) != len(j_lines):
        c.ok = False
        extra = (t_lines[len(j_lines):] or j_lines[len(t_lines):])[0]
        c.problems.append(f"torch printed {len(t_lines)} metric lines, JAX {len(j_lines)}; first extra: {extra!r}")
    return c


def tail(text: str, n: int = 5) -> list[str]:
    return [line for line in text.strip().splitlines()[-n:]]
