"""What the isolated worker does with each request (see isolation.py): load a pair of files, check an entry.

Requests:
    {"op": "load", "pair": id, "original": path, "translated": path, "original_root": dir, "translated_root": dir,
     "allow_torch": bool, "config": {...}}
        -> {"status": "ok", "translated_error": str|None, "torch_needed": bool, "original_error": str|None,
            "entries": [{"name", "kind", "problems", "skip"}]}
    {"op": "numbers" | "training", "pair": ..., (the load fields), "entry": name, "config": {...}}
        -> {"status": "PASS"|"FAIL"|"SKIP"|"ERROR", "message", "max_abs", "max_rel", "inputs", "details"}

The translation is imported first, with every torch module blocked (`sys.modules["torch"] = None` and its
submodules), so a translation that still needs torch fails the interface stage.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import traceback
import types
from contextlib import contextmanager
from pathlib import Path

TORCH_PACKAGES = ("torch", "torchvision", "torchaudio", "torchtext", "functorch")

_PAIRS: dict[str, dict] = {}
CACHE: dict = {}  # per (pair, entry): what the numbers stage found (inputs, constructor) for the training stage


@contextmanager
def torch_blocked():
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in TORCH_PACKAGES}
    for k in list(saved) + list(TORCH_PACKAGES):
        sys.modules[k] = None
    try:
        yield
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] in TORCH_PACKAGES]:
            del sys.modules[k]
        sys.modules.update(saved)


def import_file(path: str, root: str, prefix: str) -> types.ModuleType:
    """Import `path` as `prefix.<its path under root>`, so relative imports inside `root` work; siblings imported
    absolutely (`import utils`) are found in `root` and kept private to this side."""
    path, root = Path(path).resolve(), Path(root).resolve()
    if prefix not in sys.modules:
        pkg = types.ModuleType(prefix)
        pkg.__path__ = [str(root)]
        sys.modules[prefix] = pkg
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    name = ".".join([prefix, *parts])
    before = set(sys.modules)
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(name)
    finally:
        try:
            sys.path.remove(str(root))
        except ValueError:
            pass
        for k in set(sys.modules) - before:  # private copies: the other side imports its own
            mod = sys.modules.get(k)
            f = getattr(mod, "__file__", None) or ""
            if not k.startswith(prefix) and f and Path(f).resolve().is_relative_to(root):
                del sys.modules[k]


def _error_text(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = ""
    for frame in reversed(tb):
        if "torch2jax/check" not in frame.filename and "importlib" not in frame.filename:
            where = f" ({os.path.basename(frame.filename)}:{frame.lineno})"
            break
    return f"{type(e).__name__}: {e}{where}".strip()


def _load(req: dict) -> dict:
    """The two modules of a pair (imported once per worker)."""
    pair = req["pair"]
    if pair in _PAIRS:
        return _PAIRS[pair]
    info = {"translated_error": None, "original_error": None, "torch_needed": False, "tmod": None, "omod": None}
    try:
        with torch_blocked():
            info["tmod"] = import_file(req["translated"], req["translated_root"], f"_t2j_jax_{pair}")
    except BaseException as e:  # noqa: BLE001
        info["translated_error"] = _error_text(e)
        if req.get("allow_torch"):
            sys.modules.pop(f"_t2j_jax_{pair}", None)
            for k in [k for k in sys.modules if k.startswith(f"_t2j_jax_{pair}.")]:
                del sys.modules[k]
            try:
                info["tmod"] = import_file(req["translated"], req["translated_root"], f"_t2j_jax_{pair}")
                info["torch_needed"] = True
            except BaseException as e2:  # noqa: BLE001
                info["translated_error"] = _error_text(e2)
    try:
        info["omod"] = import_file(req["original"], req["original_root"], f"_t2j_torch_{pair}")
    except BaseException as e:  # noqa: BLE001
        info["original_error"] = _error_text(e)
    _PAIRS[pair] = info
    return info


def _no_key_problems(name, ocls, tcls, o_init, config) -> list[str]:
    """A translated module whose `__init__` takes no key: an interface failure only where torch's constructor draws
    random numbers (initial weights). A module whose constructor needs arguments nobody gave, or does not build, is
    left to the numbers stage (which says so, or checks the key there)."""
    from torch2jax.check import interface as itf
    from torch2jax.check.modules import no_key_problem, parse_ctor

    value = ((config or {}).get("args") or {}).get(name)
    if value is None and o_init is not None and itf.required_positional(o_init, skip=()):
        return []
    try:
        problem = no_key_problem(name, ocls, tcls, parse_ctor(value))
    except BaseException:  # noqa: BLE001
        return []
    return [problem] if problem else []


def _entries(info: dict, config: dict | None = None) -> list[dict]:
    import equinox as eqx
    import torch

    from torch2jax.check import interface as itf

    omod, tmod = info["omod"], info["tmod"]
    out = []
    for name, obj in vars(omod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != omod.__name__:
            continue
        if inspect.isfunction(obj):
            kind, problems = "function", []
            t = getattr(tmod, name, None) if tmod is not None else None
            if tmod is not None and t is None:
                problems.append(f"{name} is missing from the translation")
            elif t is not None and not callable(t):
                problems.append(f"{name} is not callable in the translation")
            elif t is not None:
                o_sig, t_sig = itf.signature(obj), itf.signature(t)
                if o_sig is not None and t_sig is not None:
                    problems += itf.compare_signatures(o_sig, t_sig, name)
                    if itf.takes_key(t_sig) and not itf.takes_key(o_sig):
                        kind = "random function"
            out.append({"name": name, "kind": kind, "problems": problems, "skip": None})
        elif inspect.isclass(obj):
            if not issubclass(obj, torch.nn.Module):
                out.append({"name": name, "kind": "class", "problems": [],
                            "skip": "a class, not an nn.Module: not checked"})
                continue
            problems = []
            t = getattr(tmod, name, None) if tmod is not None else None
            if tmod is not None and t is None:
                problems.append(f"class {name} is missing from the translation")
            elif t is not None:
                if not (inspect.isclass(t) and issubclass(t, eqx.Module)):
                    problems.append(f"{name} is not an equinox Module in the translation")
                else:
                    fwd, call = itf.method_signature(obj, "forward"), itf.method_signature(t, "__call__")
                    if getattr(obj, "forward", None) is torch.nn.Module.forward:
                        pass  # no forward: a module used through its other methods (a DDPM's loss, sample)
                    elif call is None:
                        problems.append(f"{name} has no __call__")
                    elif fwd is not None:
                        problems += itf.compare_signatures(fwd, call, f"{name}.forward -> __call__")
                        if "key" not in call.parameters:
                            problems.append(f"{name}.__call__ does not accept key=None")
                    o_init, t_init = itf.method_signature(obj, "__init__"), itf.method_signature(t, "__init__")
                    if o_init is not None and t_init is not None:
                        problems += itf.compare_signatures(o_init, t_init, f"{name}.__init__", added_positional=())
                    if not itf.accepts_key(t_init):
                        problems += _no_key_problems(name, obj, t, o_init, config)
            out.append({"name": name, "kind": "module", "problems": problems, "skip": None})
    return out


def handle(req: dict) -> dict:
    op = req["op"]
    if op == "ping":
        return {"status": "ok", "pid": os.getpid()}
    info = _load(req)
    if op == "load":
        entries = _entries(info, req.get("config")) if info["omod"] is not None else []
        return {"status": "ok", "translated_error": info["translated_error"], "torch_needed": info["torch_needed"],
                "original_error": info["original_error"], "entries": entries}
    if info["omod"] is None or info["tmod"] is None:
        return {"status": "ERROR", "message": "the pair did not load: "
                + (info["original_error"] or info["translated_error"] or "?")}
    name = req["entry"]
    original, translated = getattr(info["omod"], name), getattr(info["tmod"], name)
    config = req.get("config", {})
    cache_key = (req["pair"], name)
    if op == "numbers":
        if inspect.isclass(original):
            from torch2jax.check.modules import check_module

            return check_module(name, original, translated, config, CACHE.setdefault(cache_key, {}))
        from torch2jax.check.functions import check_function

        return check_function(name, original, translated, config, CACHE.setdefault(cache_key, {}))
    if op == "training":
        from torch2jax.check.training import train_module

        return train_module(name, original, translated, config, CACHE.setdefault(cache_key, {}))
    return {"status": "ERROR", "message": f"unknown request {op!r}"}
