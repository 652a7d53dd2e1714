"""Stage 1, the interface: which entries a file has, and whether the translation's signatures are compatible.

The contract: a function keeps its positional parameters (a random one gains a keyword-only `key`; one reading a
stateful model may gain `state`); a module class becomes an `eqx.Module` whose `__init__` takes the same
parameters plus a keyword-only `key` (or none where torch's constructor draws no random numbers, a loss module
without parameters: it is then built without one) and whose `__call__` takes `forward`'s parameters (plus `state`
when it holds BatchNorm statistics) and `key=None`.

`script_kind` reads the source only (no import): a file with top-level statements that do work (loops, calls,
`with`) is a script and is run, never imported.
"""
from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass

# Parameters the translation may add.
ADDED_KEYWORD = ("key",)
ADDED_POSITIONAL = ("state", "opt_state")  # BatchNorm statistics; a trainer function's optimizer state


@dataclass
class FileShape:
    """What the source of an original file says about how it can be driven."""

    is_script: bool  # top-level code that does work: run as a script, never imported
    has_main_guard: bool  # `if __name__ == "__main__":` (runnable as a script, importable)
    main_calls: set  # names called directly under the main guard


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    parts = [node.test.left, *node.test.comparators]
    names = {p.id for p in parts if isinstance(p, ast.Name)}
    consts = {p.value for p in parts if isinstance(p, ast.Constant)}
    return "__name__" in names and "__main__" in consts


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                         ast.Pass)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # a docstring
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return True  # constants, aliases, model factories: importing is expected to be cheap
    if isinstance(node, ast.Try):  # try: import x / except ImportError
        return all(_is_definition(n) for n in node.body + node.orelse + node.finalbody)
    if isinstance(node, ast.If):
        return _is_main_guard(node) or all(_is_definition(n) for n in node.body + node.orelse)
    return False


def file_shape(source: str) -> FileShape:
    tree = ast.parse(source)
    guard = [n for n in tree.body if _is_main_guard(n)]
    calls = set()
    for g in guard:
        for n in ast.walk(g):
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
                calls.add(n.func.id)
    return FileShape(is_script=not all(_is_definition(n) for n in tree.body), has_main_guard=bool(guard),
                     main_calls=calls)


def imports_torch(source: str) -> list[str]:
    """The torch imports left in a (translated) source: `import torch.nn`, `from torch import ...`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "torch"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "torch":
            out.append(node.module)
    return out


# ---------------------------------------------------------------------------------------------- signatures
def _literal(default):
    """A default's value when it is a plain literal (compared between the two sides), else a sentinel."""
    if isinstance(default, (bool, int, float, str, type(None))):
        return default
    return _NOT_LITERAL


_NOT_LITERAL = object()


def compare_signatures(original: inspect.Signature, translated: inspect.Signature, what: str,
                       added_positional=ADDED_POSITIONAL, require_key: bool = False) -> list[str]:
    """The ways `translated` breaks the contract for `original`'s callers (empty: compatible)."""
    P = inspect.Parameter
    problems = []
    o_params = list(original.parameters.values())
    t_params = list(translated.parameters.values())
    o_pos = [p for p in o_params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    t_pos = [p for p in t_params if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    threaded = {f"{p.name}_state" for p in o_params} - set(original.parameters) if added_positional else set()
    # `encoder_optimizer_state` after `encoder_optimizer`: the optimizer state the translator threads through
    t_pos_kept = [p for p in t_pos if (p.name not in added_positional and p.name not in threaded)
                  or p.name in original.parameters]
    o_names, t_names = [p.name for p in o_pos], [p.name for p in t_pos_kept]
    if o_names != t_names:
        problems.append(f"{what}: positional parameters ({', '.join(o_names)}) became ({', '.join(t_names)})")
    has_var = {k: any(p.kind == k for p in t_params) for k in (P.VAR_POSITIONAL, P.VAR_KEYWORD)}
    for p in o_params:
        if p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD) and not has_var[p.kind]:
            problems.append(f"{what}: lost {'*' if p.kind == P.VAR_POSITIONAL else '**'}{p.name}")
        if p.kind == P.KEYWORD_ONLY and p.name not in translated.parameters and not has_var[P.VAR_KEYWORD]:
            problems.append(f"{what}: lost keyword-only parameter {p.name}")
    for p in o_params:
        q = translated.parameters.get(p.name)
        if q is None or p.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD):
            continue
        if p.default is not P.empty and q.default is P.empty:
            problems.append(f"{what}: parameter {p.name} lost its default {p.default!r}")
        elif p.default is not P.empty and q.default is not P.empty:
            a, b = _literal(p.default), _literal(q.default)
            if a is not _NOT_LITERAL and b is not _NOT_LITERAL and (type(a), a) != (type(b), b) and a != b:
                problems.append(f"{what}: default of {p.name} changed from {p.default!r} to {q.default!r}")
        elif p.default is P.empty and q.default is not P.empty and p.kind != P.KEYWORD_ONLY:
            pass  # a new default breaks no caller
    for q in t_params:
        if q.name in original.parameters or q.kind in (P.VAR_POSITIONAL, P.VAR_KEYWORD):
            continue
        if q.name in ADDED_KEYWORD and q.kind == P.KEYWORD_ONLY:
            continue
        if q.name in added_positional or q.name in threaded:
            continue
        if q.default is P.empty:
            problems.append(f"{what}: new required parameter {q.name}")
    if require_key and "key" not in translated.parameters and not has_var[P.VAR_KEYWORD]:
        problems.append(f"{what}: takes no keyword-only key")
    return problems


def takes_key(sig: inspect.Signature) -> bool:
    p = sig.parameters.get("key")
    return p is not None and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def accepts_key(sig: inspect.Signature | None) -> bool:
    """Whether a (translated) constructor can be given `key=`: a `key` parameter or **kwargs. An unknown signature
    is assumed to."""
    if sig is None:
        return True
    return takes_key(sig) or any(p.kind == inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())


def signature(obj) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def method_signature(cls, name: str) -> inspect.Signature | None:
    """The signature of `cls.name` without `self`."""
    fn = getattr(cls, name, None)
    if fn is None:
        return None
    sig = signature(fn)
    if sig is None:
        return None
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls") and params[0].kind != inspect.Parameter.KEYWORD_ONLY:
        params = params[1:]
    return sig.replace(parameters=params)


def required_positional(sig: inspect.Signature, skip=("state",)) -> list[inspect.Parameter]:
    """Parameters a caller must give (no default), positional or keyword-only, excluding `skip`."""
    P = inspect.Parameter
    return [p for p in sig.parameters.values()
            if p.default is P.empty and p.kind not in (P.VAR_POSITIONAL, P.VAR_KEYWORD) and p.name not in skip]


def describe_signature(sig: inspect.Signature | None) -> str:
    return "(?)" if sig is None else str(sig)
