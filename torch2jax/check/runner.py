"""The checker's side of `check`: pair the files, pick the entries, send each entry through the stages in the
isolated worker (or run scripts in plain python), and collect the report. Imports neither torch nor jax."""
from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from torch2jax.check import interface as itf
from torch2jax.check.report import ERROR, FAIL, PASS, SKIP, Report, StageResult

SCRIPT_ENTRY = "<script>"


@dataclass
class FilePair:
    original: Path
    translated: Path | None
    display: str
    original_root: Path
    translated_root: Path
    problem: str = ""  # why there is no usable translation
    diagnostics: int = 0  # error diagnostics of a translation made here


def default_examples() -> int:
    env = os.environ.get("TORCH2JAX_CHECK_EXAMPLES")
    if env:
        return int(env)
    return 8 if os.environ.get("CI") else 20


def _translate_into(src: Path, dest: Path) -> tuple[str, int]:
    """Translate `src` to `dest`; (problem, number of error diagnostics)."""
    from torch2jax.files import InputError, translate_file

    try:
        t = translate_file(src)
    except InputError as e:
        return str(e), 0
    if t.failed:
        first = t.diagnostics[0].message if t.diagnostics else "translation failed"
        return f"the translator could not translate it: {first}", 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(t.code)
    return "", sum(d.severity == "error" for d in t.diagnostics)


def resolve_pairs(original, translated, tmp: Path) -> list[FilePair]:
    from torch2jax.files import python_files

    original = Path(original)
    if not original.exists():
        raise FileNotFoundError(f"{original}: no such file or directory")
    if original.is_dir():
        files = python_files(original)
        out_root = Path(translated) if translated is not None else tmp / "translated"
        pairs = []
        for f in files:
            rel = f.relative_to(original)
            dest = out_root / rel
            problem, n = "", 0
            if translated is None:
                problem, n = _translate_into(f, dest)
            elif not dest.exists():
                problem = f"no translation at {dest}"
            pairs.append(FilePair(f, dest if not problem else None, str(rel), original, out_root, problem, n))
        return pairs
    if translated is not None:
        translated = Path(translated)
        if translated.is_dir():
            translated = translated / original.name
        problem = "" if translated.exists() else f"no translation at {translated}"
        return [FilePair(original, translated if not problem else None, str(original), original.parent,
                         translated.parent, problem)]
    dest = tmp / "translated" / original.name
    problem, n = _translate_into(original, dest)
    return [FilePair(original, dest if not problem else None, str(original), original.parent, dest.parent,
                     problem, n)]


def parse_args_option(args) -> tuple[dict, dict]:
    """--args values: "Net=(10, 3)" strings, a spec file (.json / .toml: {"Net": {"args": [...], "kwargs": {...},
    "inputs": {"x": "float32[2,10]"}}}), or a dict. Returns ({entry: constructor}, {"Entry.param": spec})."""
    ctors, inputs = {}, {}
    if args is None:
        return ctors, inputs
    if isinstance(args, dict):
        items = list(args.items())
    else:
        items = []
        for a in [args] if isinstance(args, (str, Path)) else args:
            a = str(a)
            if a.endswith((".json", ".toml")) and Path(a).exists():
                items += list(_read_spec_file(Path(a)).items())
            elif "=" in a:
                k, v = a.split("=", 1)
                items.append((k.strip(), v.strip()))
            else:
                raise ValueError(f"--args {a!r}: expected NAME=ARGS (e.g. 'Net=(10, 3)') or a .json/.toml file")
    for k, v in items:
        if isinstance(v, dict) and "inputs" in v:
            for p, spec in v["inputs"].items():
                inputs[f"{k}.{p}"] = spec
            v = {kk: vv for kk, vv in v.items() if kk != "inputs"}
        ctors[k] = v
    return ctors, inputs


def _read_spec_file(path: Path) -> dict:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import tomllib

    return tomllib.loads(path.read_text())


def _inputs_dict(inputs) -> dict:
    if inputs is None:
        return {}
    if isinstance(inputs, dict):
        return {k: str(v) for k, v in inputs.items()}
    if isinstance(inputs, str):
        inputs = [inputs]
    out = {}
    for text in inputs:
        if ":" not in text:
            raise ValueError(f"--input {text!r}: expected NAME: SPEC, e.g. 'x: float32[8,3,32,32]'")
        k, v = text.split(":", 1)
        out[k.strip()] = v.strip()
    return out


# The replaying run has JIT off (each draw is matched to torch's as it happens): it gets this many times the
# timeout of a plain run.
REPLAY_SLOWDOWN = 5


class Checker:
    def __init__(self, report: Report, *, entries, inputs, args, train, timeout, examples, steps, memory_mb,
                 allow_torch, samples, on_result, keep_worker=False):
        self.report = report
        self.entries = set(entries) if entries else None
        ctors, spec_inputs = parse_args_option(args)
        given = _inputs_dict(inputs)
        from torch2jax.check.inputs import parse_specs

        parse_specs(given)  # bad specs fail here, before any worker starts
        parse_specs(spec_inputs)
        self.config = {"inputs": {**spec_inputs, **given}, "args": ctors,
                       "examples": default_examples() if examples is None else int(examples),
                       "steps": int(steps), "samples": int(samples)}
        train = [train] if isinstance(train, (str, Path)) else list(train or ())
        self.train_scripts = {Path(t).resolve() for t in train if str(t).endswith(".py") or Path(t).is_file()}
        self.train_names = {str(t) for t in train if Path(t).resolve() not in self.train_scripts}
        self.timeout, self.memory_mb, self.allow_torch = float(timeout), int(memory_mb), allow_torch
        self.on_result = on_result
        self.pool = None
        self.keep_worker = keep_worker or os.environ.get("TORCH2JAX_CHECK_KEEP_WORKER", "") not in ("", "0")
        self.run_id = next(_RUNS)
        self.script_runs: dict = {}

    # ------------------------------------------------------------------------------------------ plumbing
    def _script_timeout(self, replay) -> float:
        return self.timeout * (REPLAY_SLOWDOWN if replay and replay[0] == "replay" else 1)

    def emit(self, fp: FilePair, entry: str, stage: str, status: str, message: str = "", **kw) -> StageResult:
        r = self.report.add(StageResult(fp.display, entry, stage, status, message, **kw))
        if self.on_result is not None:
            self.on_result(r)
        return r

    def selected(self, fp: FilePair, name: str) -> bool:
        return self.entries is None or name in self.entries or f"{fp.display}::{name}" in self.entries

    def request(self, fp: FilePair, idx: int, op: str, **extra) -> dict:
        if self.pool is None:
            self.pool = _pool(self.memory_mb, self.keep_worker)
        req = {"op": op, "pair": f"{self.run_id}_{idx}", "original": str(fp.original), "translated": str(fp.translated),
               "original_root": str(fp.original_root), "translated_root": str(fp.translated_root),
               "allow_torch": self.allow_torch, **extra}
        start = time.monotonic()
        try:
            reply = self.pool.call(req, self.timeout)
        except (RuntimeError, OSError) as e:  # the worker could not start (torch or jax missing, a broken runtime)
            reply = {"status": "crash", "detail": str(e).splitlines()[0], "log": str(e)}
        reply["seconds"] = time.monotonic() - start
        return reply

    def close(self):
        if self.pool is not None and not self.keep_worker:
            self.pool.close()

    def _stage_reply(self, fp, name, stage, kind, reply) -> StageResult:
        status = reply.get("status")
        if stage != "interface":
            kind = {"kind": kind, "seconds": reply.get("seconds")}
        else:
            kind = {"kind": kind}
        if status == "timeout":
            return self.emit(fp, name, stage, ERROR, f"timed out after {self.timeout:g} s (killed)", **kind,
                             details=_log_lines(reply))
        if status == "crash":
            return self.emit(fp, name, stage, ERROR, f"crashed: {reply.get('detail', '')}", **kind,
                             details=_log_lines(reply))
        if status == "error":
            return self.emit(fp, name, stage, ERROR, reply.get("detail", "checker error"), **kind,
                             details=(reply.get("traceback") or "").strip().splitlines()[-6:])
        return self.emit(fp, name, stage, status, reply.get("message", ""), **kind,
                         max_abs=reply.get("max_abs"), max_rel=reply.get("max_rel"),
                         inputs=reply.get("inputs", ""), details=reply.get("details") or [])

    # ------------------------------------------------------------------------------------------ files
    def check_pair(self, idx: int, fp: FilePair) -> None:
        if fp.translated is None:
            self.emit(fp, "", "interface", FAIL, fp.problem, kind="file")
            return
        try:
            shape = itf.file_shape(fp.original.read_text())
        except (SyntaxError, UnicodeDecodeError, OSError) as e:
            self.emit(fp, "", "interface", ERROR, f"cannot read the original: {e}", kind="file")
            return
        as_script = shape.is_script or fp.original.resolve() in self.train_scripts
        if not shape.is_script:
            self.check_entries(idx, fp, shape)
        if as_script and self.selected(fp, SCRIPT_ENTRY):
            self.check_script(fp, SCRIPT_ENTRY, "")

    def check_entries(self, idx: int, fp: FilePair, shape: itf.FileShape) -> None:
        load = self.request(fp, idx, "load", config=self.config)
        if load.get("status") != "ok":
            self._stage_reply(fp, "", "interface", "file", load if load.get("status") in ("timeout", "crash")
                              else {"status": "error", "detail": load.get("message") or load.get("detail")})
            return
        if load["original_error"]:
            self.emit(fp, "", "interface", ERROR, f"the original does not import: {load['original_error']}",
                      kind="file")
            return
        for e in load["entries"]:
            if self.selected(fp, e["name"]):
                self.check_entry(idx, fp, shape, load, e)

    def check_entry(self, idx, fp, shape, load, e) -> None:
        name, kind = e["name"], e["kind"]
        if e["skip"]:
            self.emit(fp, name, "interface", SKIP, e["skip"], kind=kind)
            return
        if load["translated_error"] and not load["torch_needed"]:
            torch_imports = _torch_imports(fp.translated)
            msg = f"the translation does not import: {load['translated_error']}"
            if torch_imports:
                msg = f"the translation imports torch ({', '.join(torch_imports)}): {load['translated_error']}"
            self.emit(fp, name, "interface", FAIL, msg, kind=kind)
            return
        if e["problems"]:
            self.emit(fp, name, "interface", FAIL, "; ".join(e["problems"]), kind=kind)
            return
        note = "imports torch (allowed by allow_torch)" if load["torch_needed"] else "imports without torch"
        self.emit(fp, name, "interface", PASS, f"{kind}: signature compatible, {note}", kind=kind)
        if name in self.train_names:
            self.check_script(fp, name, name, interface=False)
            return
        if kind in ("function", "random function") and name in shape.main_calls and shape.has_main_guard:
            self.emit(fp, name, "numbers", SKIP, f"the script's entry point (called under __main__): compare what "
                      f"it prints with --train {name}", kind=kind)
            return
        reply = self.request(fp, idx, "numbers", entry=name, config=self.config)
        r = self._stage_reply(fp, name, "numbers", kind, reply)
        if r.status != PASS or kind != "module":
            return
        reply = self.request(fp, idx, "training", entry=name, config=self.config)
        self._stage_reply(fp, name, "training", kind, reply)

    # ------------------------------------------------------------------------------------------ scripts
    def check_script(self, fp: FilePair, name: str, call: str, interface: bool = True) -> None:
        from torch2jax.check.script_replay import DIVERGED
        from torch2jax.check.training import compare_outputs, metric_lines, run_script, tail

        kind = "script" if not call else "function"
        if interface:
            torch_imports = _torch_imports(fp.translated)
            if torch_imports and not self.allow_torch:
                self.emit(fp, name, "interface", FAIL, f"the translation imports torch ({', '.join(torch_imports)})",
                          kind=kind)
                return
            self.emit(fp, name, "interface", PASS, "script: the translation imports no torch", kind=kind)
        block = not self.allow_torch
        cwd = os.getcwd()
        key = (fp.original.read_bytes(), str(fp.original_root), call)  # the same original runs once per check
        what = f"{call}()" if call else "script"
        run = lambda path, torch_blocked, replay=(): run_script(  # noqa: E731
            str(path), self._script_timeout(replay), self.memory_mb, torch_blocked, call, cwd, replay)
        if key not in self.script_runs:
            draws = self.tmp / f"draws{len(self.script_runs)}.npz"
            self.script_runs[key] = dict(run(fp.original, False, ("record", str(draws))), draws=draws)
        t_run = self.script_runs[key]
        if t_run["timed_out"]:
            self.emit(fp, name, "training", ERROR, f"the original {what} timed out after {self.timeout:g} s",
                      kind=kind)
            return
        if t_run["rc"] != 0:
            self.emit(fp, name, "training", ERROR, f"the original {what} failed (exit {t_run['rc']})", kind=kind,
                      details=tail(t_run["stderr"]))
            return
        replay_note = ""
        if _drew(t_run["draws"]):
            # torch's random draws (initial weights, data, shuffling, dropout) replayed in the translation
            status = self.tmp / f"status{next(_RUNS)}.json"
            j_run = run(fp.translated, block, ("replay", str(t_run["draws"]), str(status)))
            replay = _read_status(status)
            if replay.get("reused") and j_run["rc"] == 0:
                self.emit(fp, name, "training", FAIL, f"the translated {what} uses one key twice: "
                          f"{replay['reused']}", kind=kind)
                return
            before = j_run["stdout"].split(DIVERGED)[0] if DIVERGED in j_run["stdout"] else None
            if j_run["timed_out"]:  # the replaying run has JIT off: slower than the plain one
                limit = self._script_timeout(("replay",))
                replay = {"why": f"the replaying run (JIT off) timed out after {limit:g} s"}
                before = None
            if replay.get("ok") or j_run["rc"] not in (0, None):
                replay_note = f", torch's {replay.get('used', 0)} random draws replayed"
                if replay.get("unused"):
                    replay_note += f" ({replay['unused']} more torch drew were not used)"
            elif before is not None and metric_lines(before):
                # the lines printed before the draws diverged (torch.multinomial in a final sampling step, ...)
                n = len(metric_lines(before))
                t_lines = metric_lines(t_run["stdout"])
                t_run = dict(t_run, stdout="\n".join(t_lines[:n]))
                j_run = dict(j_run, stdout=before)
                replay_note = (f", torch's first {replay.get('used', 0)} random draws replayed; then {replay.get('why')}"
                               f": the {len(t_lines) - n} metric lines after that are not compared")
            else:
                # not replayable: the plain run is evidence only when torch's numbers do not depend on its seed
                j_run = run(fp.translated, block)
                reseeded = run(fp.original, False, ("reseed",))
                if reseeded["rc"] == 0 and not compare_outputs(t_run["stdout"], reseeded["stdout"]).ok:
                    self.emit(fp, name, "training", SKIP, f"the printed numbers depend on torch's random draws, and "
                              f"the translation's draws cannot be replayed ({replay.get('why')}): nothing to "
                              f"compare them with", kind=kind)
                    return
        else:
            j_run = run(fp.translated, block)
        if j_run["timed_out"]:
            self.emit(fp, name, "training", ERROR, f"the translated {what} timed out after {self.timeout:g} s",
                      kind=kind)
            return
        if j_run["rc"] != 0:
            last = _exception_line(j_run["stderr"]) or f"exit {j_run['rc']}"
            self.emit(fp, name, "training", FAIL, f"the translated {what} failed: {last}", kind=kind,
                      details=tail(j_run["stderr"]))
            return
        c = compare_outputs(t_run["stdout"], j_run["stdout"])
        n = len(metric_lines(t_run["stdout"]))
        if c.ok and n == 0:
            self.emit(fp, name, "training", SKIP, c.message, kind=kind)
            return
        self.emit(fp, name, "training", PASS if c.ok else FAIL,
                  f"{n} printed metric lines match{replay_note}" if c.ok else c.message + replay_note, kind=kind,
                  max_abs=c.max_abs,
                  max_rel=c.max_rel, details=[] if c.ok else
                  ["torch: " + x for x in metric_lines(t_run["stdout"])[:3]]
                  + ["JAX:   " + x for x in metric_lines(j_run["stdout"])[:3]])


_RUNS = itertools.count()
_SHARED: dict = {}


def _pool(memory_mb: int, keep: bool):
    """A worker pool: a fresh one, or (keep) the one this process keeps for later checks (closed at exit)."""
    from torch2jax.check.isolation import WorkerPool

    if not keep:
        return WorkerPool(memory_mb)
    if memory_mb not in _SHARED:
        if not _SHARED:
            atexit.register(lambda: [p.close() for p in _SHARED.values()])
        _SHARED[memory_mb] = WorkerPool(memory_mb)
    return _SHARED[memory_mb]


def _torch_imports(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return itf.imports_torch(path.read_text())
    except (SyntaxError, OSError, UnicodeDecodeError):
        return []


def _drew(draws: Path) -> bool:
    """Whether the recorded torch run drew random numbers (script_replay.py)."""
    try:
        import numpy as np

        with np.load(draws, allow_pickle=True) as f:
            return len(f["kinds"]) > 0
    except (OSError, ValueError, KeyError):
        return False


def _read_status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"ok": False, "why": "the translated run left no replay status"}


def _exception_line(stderr: str) -> str:
    """The last `SomeError: message` line of a traceback."""
    for line in reversed(stderr.strip().splitlines()):
        if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt)\b", line):
            return line.strip()
    return ""


def _log_lines(reply: dict, n: int = 6) -> list[str]:
    log = (reply.get("log") or "").strip()
    return [f"| {line}" for line in log.splitlines()[-n:]] if log else []


def check(original, translated=None, *, entries=None, inputs=None, args=None, train=None, timeout: float = 60,
          examples: int | None = None, steps: int = 3, memory_mb: int = 4096, allow_torch: bool = False,
          samples: int = 200, on_result=None, keep_worker: bool = False) -> Report:
    """Check that `translated` (a file or folder; translated here when None) computes what `original` does.

    entries: names to check (bare `Net` or `file.py::Net`; `<script>` for a script), default every public function
        and nn.Module class, plus the script when the original is one.
    inputs: {"x": "float32[8,3,32,32]"} or ["x: float32[8,3,32,32]", "Net.x: int64[2,5]:0..9", "dim: 1"].
    args: constructor arguments: {"Net": (10, 3)}, ["Net=(10, 3)", "Block=16, 4, p=0.1"] or a .json/.toml file.
    train: scripts (paths) or function names to run for stage 3, comparing the lines they print.
    timeout: seconds per entry and stage; memory_mb: the address space user code may add.
    examples: hypothesis examples per function (default 20; 8 with CI=1); samples: draws for random functions.
    on_result: called with each StageResult as it is made (the CLI streams them).
    keep_worker: keep the isolated worker (torch and jax imported) for this process's later checks
        (also TORCH2JAX_CHECK_KEEP_WORKER=1).
    """
    report = Report()
    checker = Checker(report, entries=entries, inputs=inputs, args=args, train=train, timeout=timeout,
                      examples=examples, steps=steps, memory_mb=memory_mb, allow_torch=allow_torch,
                      samples=samples, on_result=on_result, keep_worker=keep_worker)
    try:
        with tempfile.TemporaryDirectory(prefix="t2j-check-") as tmp:
            checker.tmp = Path(tmp)
            pairs = resolve_pairs(original, translated, Path(tmp))
            known = {fp.original.resolve() for fp in pairs}
            for script in sorted(checker.train_scripts - known):
                pairs += resolve_pairs(script, None, Path(tmp) / f"extra{len(pairs)}")
            for idx, fp in enumerate(pairs):
                checker.check_pair(idx, fp)
            for name in sorted(checker.entries or ()):
                if not any(name in (r.entry, r.name) for r in report.results):
                    r = report.add(StageResult(str(original), name, "interface", FAIL,
                                               "no such public function, nn.Module class or script"))
                    if on_result is not None:
                        on_result(r)
    finally:
        checker.close()
    return report
