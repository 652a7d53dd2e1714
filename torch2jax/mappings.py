"""The torch API tables in mappings/*.toml: loading, validation, and argument binding.

One record per torch API, keyed by its qualified name ("torch.sum", "torch.nn.functional.relu") or, for a Tensor
method or attribute, "Tensor.NAME". Keys of a record:

    sig      torch's signature as Python parameters: "input, dim=None, keepdim=False, *, dtype=None"; the first
             parameter of a method record (or of a record with method = true) is the receiver
    to       the JAX expression, written with the parameter names: "jnp.sum(input, axis=dim, keepdims=keepdim)";
             or a list of such templates, the first one that covers the call wins (see templates.py)
    method   true: the record is also the Tensor method of the same name (x.sum(...) is torch.sum(x, ...))
    attr     true: an attribute, not a call (torch.float32, Tensor.T, Tensor.data)
    defaults torch defaults that the target does not share: {correction = "1"} is used when not given
    ignore   parameters dropped without a diagnostic besides the usual ones (device, requires_grad, ...)
    handler  the name of a function in transform/handlers.py, for what a template cannot say
    aliases  other qualified names of the same API ("torch.Tensor.sum", "torch.special.expit")
    random   true: draws random numbers; the template's KEY is a fresh subkey
    safety   safe (exact, the default) or unsafe (a corner case differs; note says which)
    note     why the mapping is not exact, shown in the diagnostic
    tests    expressions that the table test runs through torch and the translation: ["torch.sum(x, 1, True)"]
    inputs   their arguments: {x = "float32[3,4]"}; see tests/table_inputs.py for the spec language
    grad     false: the output is not differentiable (indices, booleans), skip the gradient comparison
    tol      a looser relative tolerance for this record's tests
    layer    true: a torch.nn layer class; its tests are constructor calls, and the table test copies the torch
             layer's weights into the translated one before comparing calls on `inputs`
    skip_test  why the table test does not run this record (it is tested elsewhere: say where)
    pass_kwargs  true: a `**options` argument goes through to the target, which takes every torch keyword
"""
from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

KNOWN_KEYS = {
    "sig", "to", "method", "attr", "defaults", "ignore", "handler", "aliases", "random", "safety", "note",
    "tests", "inputs", "grad", "tol", "skip_test", "layer", "pass_kwargs",
}
# Arguments about memory layout and placement: JAX has no equivalent and they never change a value.
ALWAYS_IGNORED = frozenset({"device", "pin_memory", "layout", "memory_format", "non_blocking", "requires_grad",
                            "inplace", "generator"})
TABLE_DIR_CANDIDATES = (Path(__file__).resolve().parent.parent / "mappings",)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "pos" (positional or keyword), "var" (*args), "kw" (keyword-only)
    has_default: bool


@dataclass(frozen=True)
class Record:
    name: str
    params: tuple[Param, ...]
    templates: tuple[str, ...]
    method: bool = False
    attr: bool = False
    defaults: dict = field(default_factory=dict)
    ignore: frozenset = frozenset()
    handler: str | None = None
    aliases: tuple[str, ...] = ()
    random: bool = False
    safety: str = "safe"
    note: str = ""
    tests: tuple[str, ...] = ()
    inputs: dict = field(default_factory=dict)
    grad: bool = True
    tol: float | None = None
    skip_test: str = ""
    layer: bool = False
    pass_kwargs: bool = False  # `**kwargs` goes through to the target, which takes every torch keyword
    source: str = ""

    @property
    def is_method_only(self) -> bool:
        return self.name.startswith("Tensor.")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


class MappingError(ValueError):
    pass


def parse_sig(sig: str, where: str) -> tuple[Param, ...]:
    try:
        fn = ast.parse(f"def f({sig}): pass").body[0]
    except SyntaxError as e:
        raise MappingError(f"{where}: bad sig {sig!r}: {e.msg}") from None
    a = fn.args
    pos = a.posonlyargs + a.args
    n_no_default = len(pos) - len(a.defaults)
    params = [Param(p.arg, "pos", i >= n_no_default) for i, p in enumerate(pos)]
    if a.vararg:
        params.append(Param(a.vararg.arg, "var", True))
    params += [Param(p.arg, "kw", d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    return tuple(params)


def _record(name: str, raw: dict, source: str) -> Record:
    where = f"{source}: [{name}]"
    unknown = set(raw) - KNOWN_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
    if "to" not in raw and "handler" not in raw:
        raise MappingError(f"{where}: needs 'to' or 'handler'")
    is_attr = bool(raw.get("attr", False))
    sig = raw.get("sig", "self" if (is_attr and name.startswith("Tensor.")) else "")
    if not is_attr and "sig" not in raw:
        raise MappingError(f"{where}: needs 'sig'")
    to = raw.get("to", [])
    templates = (to,) if isinstance(to, str) else tuple(to)
    for t in templates:
        try:
            ast.parse(t, mode="eval")
        except SyntaxError as e:
            raise MappingError(f"{where}: template {t!r} does not parse: {e.msg}") from None
    if raw.get("safety", "safe") not in ("safe", "unsafe"):
        raise MappingError(f"{where}: safety must be safe or unsafe")
    if raw.get("safety") == "unsafe" and not raw.get("note"):
        raise MappingError(f"{where}: an unsafe mapping needs a note saying what differs")
    params = parse_sig(sig, where)
    names = {p.name for p in params}
    for key in ("defaults", "inputs"):
        if not isinstance(raw.get(key, {}), dict):
            raise MappingError(f"{where}: {key} must be a table")
    for d in raw.get("defaults", {}):
        if d not in names:
            raise MappingError(f"{where}: default for unknown parameter {d!r}")
    return Record(
        name=name,
        params=params,
        templates=templates,
        method=bool(raw.get("method", False)),
        attr=is_attr,
        defaults=dict(raw.get("defaults", {})),
        ignore=frozenset(raw.get("ignore", ())),
        handler=raw.get("handler"),
        aliases=tuple(raw.get("aliases", ())),
        random=bool(raw.get("random", False)),
        safety=raw.get("safety", "safe"),
        note=raw.get("note", ""),
        tests=tuple(raw.get("tests", ())),
        inputs=dict(raw.get("inputs", {})),
        grad=bool(raw.get("grad", True)),
        tol=raw.get("tol"),
        skip_test=raw.get("skip_test", ""),
        layer=bool(raw.get("layer", False)),
        pass_kwargs=bool(raw.get("pass_kwargs", False)),
        source=source,
    )


@dataclass
class Tables:
    records: dict[str, Record]  # by every qualified name and alias
    methods: dict[str, Record]  # Tensor method/attribute name -> record

    @cached_property
    def namespaces(self) -> frozenset[str]:
        """Every qualified name that has a record below it (torch.nn for torch.nn.Linear)."""
        return frozenset(q[:i] for q in self.records for i, c in enumerate(q) if c == ".")

    def all_records(self) -> list[Record]:
        seen, out = set(), []
        for r in list(self.records.values()) + list(self.methods.values()):
            if id(r) not in seen:
                seen.add(id(r))
                out.append(r)
        return out


def table_dir() -> Path:
    for d in TABLE_DIR_CANDIDATES:
        if d.is_dir():
            return d
    raise MappingError("mappings/ folder not found next to the torch2jax package")


@cache
def load_tables(directory: str | None = None) -> Tables:
    records: dict[str, Record] = {}
    methods: dict[str, Record] = {}
    for path in sorted(Path(directory or table_dir()).glob("*.toml")):
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise MappingError(f"{path.name}: {e}") from None
        for name, rec in raw.items():
            r = _record(name, rec, path.name)
            for qual in (name, *r.aliases):
                if qual in records or (qual.startswith("Tensor.") and qual[7:] in methods):
                    raise MappingError(f"{path.name}: [{qual}] is defined twice")
                if qual.startswith("Tensor."):
                    methods[qual[7:]] = r
                else:
                    records[qual] = r
            if r.method:
                short = name.rsplit(".", 1)[1]
                if short in methods:
                    raise MappingError(f"{path.name}: Tensor.{short} is defined twice")
                methods[short] = r
    return Tables(records, methods)
