"""Keyed randomness: every `__t2j_key__` placeholder becomes a fresh subkey, and keys are threaded through the
call graph so that no key is ever used twice.

The ops pass renders a random record's template with the placeholder where the key goes
(`jax.random.normal(__t2j_key__, (2, 3))`), and the module pass does the same for layer construction
(`t2j.nn.Linear(3, 4, key=__t2j_key__)`). This pass, which runs after them:

1. Facts. Builds the file's scopes (functions, methods, lambdas bound to a name, the module) and classes, and
   finds which functions need a key: one that draws (a placeholder) or calls something that takes a key (a
   local function, `self.m(...)`, a class whose `__init__` takes one, an instance whose `__call__` takes one:
   `self.drop(x)` with `self.drop = t2j.nn.Dropout(...)`, `blk(x)` for `blk in self.blocks`, a runtime layer
   that draws: Dropout, MultiheadAttention/LSTM/GRU/RNN with dropout, Transformer layers, a Sequential holding
   any of these). "Calls something that takes a key" is iterated to a fixpoint over the file. A function that
   seeds itself (`torch.manual_seed(s)`, before its draws and not inside a branch) needs no key parameter.
   `KeyFacts` (plain names) is what a folder run merges across files: `collect_facts` gives one file's, and the
   pass reads project-wide ones from `ctx.key_facts` when the pipeline provides them.
2. Rewrite. A function that needs a key gets a keyword-only parameter (`def f(x, *, key)`; `__call__`/`forward`
   get `*, key=None`, since inference calls them without one). Inside, each statement that uses keys is preceded
   by `key, subkey = jax.random.split(key)` (several keys: `key, subkey1, subkey2 = jax.random.split(key, 3)`),
   and the draws and calls get the subkeys (`y = helper(x, key=subkey)`). Because the split rebinds `key`,
   a loop body gets fresh keys on every iteration. A function with a single use of a key, outside any loop, uses
   its key directly (no split). In a `key=None` scope the split is `t2j.split_key(key)`, which passes None on.
   - comprehensions get one subkey and derive one key per iteration: `[Block(d, key=k) for k in
     jax.random.split(subkey, n)]` over `range(n)`, otherwise `for i, x in enumerate(xs)` and
     `jax.random.fold_in(subkey, i)`; several draws in one iteration use `jax.random.fold_in(k, j)`.
   - a lambda bound to a name (`noise = lambda x: ...`) gets `*, key` like a function and its callers pass one;
     any other lambda that draws closes over one subkey (T2J407: its calls repeat the same numbers).
   - `torch.manual_seed(s)` becomes `key = jax.random.key(s)`; torch.cuda seeding is dropped; module-level code
     that needs a key and has no seed gets `key = jax.random.key(0)` (T2J403).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from torch2jax.transform.base import Pass, add_marker
from torch2jax.transform.names import dotted, self_calls
from torch2jax.transform.ops import KEY_PLACEHOLDER
from torch2jax.transform.templates import expression
from torch2jax.transform.walk import (LAMBDA, SEMICOLON, Transformer, Visitor, content_children, is_layout,
                                      find_all, iter_statements, names_read, transform, walk)

SEED_FUNCS = frozenset({"t2j.manual_seed"})
CUDA_SEED_FUNCS = frozenset({"t2j.cuda_manual_seed"})
GENERATOR_FUNCS = frozenset({"t2j.Generator"})
KEY_FORWARDING_CALLS = frozenset({"t2j.apply", "t2j.apply_in_init"})  # hand a key on to the function they call
STATE_CALL = "t2j.nn.call_with_state"  # calls the module it is given (its first argument), key included
LAYER_PREFIXES = ("t2j.nn.", "eqx.nn.")
# runtime layers whose call draws (their `key` keyword is optional: passing one always is fine)
KEYED_LAYERS = frozenset({
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer", "TransformerDecoder", "Transformer",
})
# the submodules of a keyed layer that draw too, called on their own (`self.transformer.encoder(src)`)
KEYED_SUBLAYERS = {"Transformer": frozenset({"encoder", "decoder"})}
# layers that draw only when built with dropout: the positional index of torch's `dropout` argument
DROPOUT_ARG = {"LSTM": 5, "GRU": 5, "RNN": 6, "MultiheadAttention": 2}
DROPOUT_KWARGS = ("dropout", "dropout_p")
CONTAINER_FACTORIES = frozenset({"ModuleList", "ModuleDict", "Sequential", "list", "tuple", "dict", "OrderedDict"})
KEY_NAMES = ("key", "rng_key", "prng_key", "key_")
COMPS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)
MAX_DEPTH = 6


@dataclass
class KeyFacts:
    """Which callables take a PRNG key, by qualified name (`pkg.mod.func`, `pkg.mod.Class`), with the name of
    their key parameter. A folder run collects every file's facts, merges them, and passes them to each file's
    pass (as `ctx.key_facts`), so that `from utils import noisy; noisy(x)` gets `key=` too."""

    functions: dict[str, str] = field(default_factory=dict)  # function or method -> key parameter name
    constructors: dict[str, str] = field(default_factory=dict)  # class whose __init__ takes a key
    callables: dict[str, str] = field(default_factory=dict)  # class whose instances' __call__ takes a key

    def merge(self, other: KeyFacts) -> KeyFacts:
        return KeyFacts({**self.functions, **other.functions}, {**self.constructors, **other.constructors},
                        {**self.callables, **other.callables})


@dataclass(eq=False)
class ClassInfo:
    name: str
    node: cst.ClassDef
    bases: list[str]
    methods: dict[str, Scope] = field(default_factory=dict)
    attrs: dict[str, list[tuple]] = field(default_factory=dict)  # self.X = expr in any method: (expr, its scope)


@dataclass(eq=False)
class Scope:
    node: cst.CSTNode  # FunctionDef, Lambda or Module
    name: str
    kind: str  # function | method | lambda | module
    parent: Scope | None = None
    cls: ClassInfo | None = None  # the class whose `self` is visible here
    self_name: str | None = None
    funcs: dict[str, Scope] = field(default_factory=dict)  # nested defs and named lambdas
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    values: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)  # name = expr
    elems: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)  # for name in expr
    params: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)  # every identifier in it, for fresh names
    cands: list = field(default_factory=list)  # (call or placeholder, covered by a seed, top-level statement)
    # statement -> the slice of cands collected from it (its own line or header, not the blocks inside)
    cands_of: dict = field(default_factory=dict)
    key_name: str = "key"
    has_key_param: bool = False  # already has a keyword-only `key` that is free to use
    optional: bool = False  # key=None allowed (a module's __call__)
    needs_key: bool = False
    direct: bool = False  # a single use of the key: no split
    short: str = ""  # the def's own name
    closure: bool = False  # a nested function passed as a value (jax.grad(loss_fn)): closes over a key
    closure_name: str = ""  # the parent's variable holding that key


def is_placeholder(node) -> bool:
    return type(node) is cst.Name and node.value == KEY_PLACEHOLDER


def _called_from(cls: cst.ClassDef, start: str) -> set[str]:
    """`start` and the methods it calls on self, transitively."""
    methods = {m.name.value: m for m in _suite_stmts(cls.body) if type(m) is cst.FunctionDef}
    reached, todo = {start}, [start]
    while todo:
        fn = methods.get(todo.pop())
        if fn is None:
            continue
        for call in self_calls(fn):
            if call in methods and call not in reached and call != "__init__":
                reached.add(call)
                todo.append(call)
    return reached


def _names_in(node: cst.CSTNode, skip_defs: bool = False) -> set[str]:
    return names_read(node, (cst.FunctionDef, cst.ClassDef) if skip_defs else ())


def _fresh(taken: set[str], *candidates: str) -> str:
    for c in candidates:
        if c not in taken:
            return c
    base, i = candidates[-1], 2
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def _seed_call(small, funcs) -> cst.Call | None:
    if type(small) is cst.Expr and type(small.value) is cst.Call and dotted(small.value.func) in funcs:
        return small.value
    return None


def _is_seed_stmt(stmt) -> bool:
    return type(stmt) is cst.SimpleStatementLine and any(_seed_call(s, SEED_FUNCS) for s in stmt.body)


def _has_kwarg(call: cst.Call, name: str) -> bool:
    return any(a.keyword is not None and a.keyword.value == name for a in call.args)


def _is_zero(node) -> bool:
    return type(node) in (cst.Integer, cst.Float) and float(node.value) == 0.0


def _suites(stmt) -> list[tuple[cst.BaseSuite, bool]]:
    """The blocks directly inside a compound statement, and whether each is a loop body."""
    out: list[tuple[cst.BaseSuite, bool]] = []
    if type(stmt) is cst.If:
        out.append((stmt.body, False))
        if type(stmt.orelse) is cst.If:
            out += _suites(stmt.orelse)
        elif type(stmt.orelse) is cst.Else:
            out.append((stmt.orelse.body, False))
    elif type(stmt) in (cst.For, cst.While):
        out.append((stmt.body, True))
        if stmt.orelse is not None:
            out.append((stmt.orelse.body, False))
    elif type(stmt) is cst.With:
        out.append((stmt.body, False))
    elif type(stmt) in (cst.Try, cst.TryStar):
        out.append((stmt.body, False))
        out += [(h.body, False) for h in stmt.handlers]
        if stmt.orelse is not None:
            out.append((stmt.orelse.body, False))
        if stmt.finalbody is not None:
            out.append((stmt.finalbody.body, False))
    elif type(stmt) is cst.Match:
        out += [(c.body, False) for c in stmt.cases]
    return out


def _suite_stmts(suite: cst.BaseSuite) -> list:
    if type(suite) is cst.IndentedBlock:
        return list(suite.body)
    return [cst.SimpleStatementLine(list(suite.body))]


def _clauses(comp) -> list[cst.CompFor]:
    out, c = [], comp.for_in
    while c is not None:
        out.append(c)
        c = c.inner_for_in
    return out


def _split_statement(key: str, names: list[str], split: str, count: int | None) -> cst.SimpleStatementLine:
    """`key, subkey = jax.random.split(key)`, with `, count` when given: what the parse of that line gives, built
    directly (one per statement that draws: a parse costs more)."""
    target = cst.Tuple([cst.Element(cst.Name(n)) for n in (key, *names)], lpar=[], rpar=[])
    args = [cst.Arg(cst.Name(key))] + ([cst.Arg(cst.Integer(str(count)))] if count is not None else [])
    return cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(target)], cst.Call(expression(split), args))])


def _call(func: str, *args: cst.BaseExpression) -> cst.Call:
    return cst.Call(expression(func), [cst.Arg(a) for a in args])


def _kwarg(name: str, value: cst.BaseExpression) -> cst.Arg:
    return cst.Arg(value, keyword=cst.Name(name), equal=cst.AssignEqual(
        whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))


# ---------------------------------------------------------------------------------------------------- facts
class Analysis:
    """The file's scopes and classes, the candidate key uses in each scope, and which scopes need a key."""

    def __init__(self, module: cst.Module, ctx, project: KeyFacts | None = None) -> None:
        self.ctx = ctx
        self.project = project or KeyFacts()
        self.classes: dict[str, ClassInfo] = {}
        self.scopes: list[Scope] = []
        self.scope_of: dict[cst.CSTNode, Scope] = {}
        self.module_scope = Scope(module, "", "module")
        self._register(self.module_scope)
        self.module_scope.names = _names_in(module, skip_defs=True)
        self._scan_block(module.body, self.module_scope)
        for s in self.scopes:
            self._choose_key_name(s)
            if s.kind == "function" and s.parent is not None and s.parent.kind in ("function", "method") \
                    and _used_as_value(s.parent.node, s.short):
                s.closure = True
                s.closure_name = _fresh(s.names | s.parent.names, f"{s.short}_key", f"{s.short}_key_")
            if s.kind == "lambda":
                self._collect(s.node.body, s, False, None)
            else:
                body = s.node.body if s.kind == "module" else _suite_stmts(s.node.body)
                self._walk(body, s, False, s.kind == "module")
        self._fixpoint()
        self.uncovered_top = {id(top) for node, covered, top in self.module_scope.cands
                              if not covered and self.is_unit(node, self.module_scope)}

    # --- building scopes
    def _register(self, s: Scope) -> None:
        self.scopes.append(s)
        self.scope_of[s.node] = s

    def _new_function(self, fn: cst.FunctionDef, parent: Scope, cls: ClassInfo | None) -> Scope:
        is_method = cls is not None
        name = f"{cls.name}.{fn.name.value}" if is_method else (
            f"{parent.name}.{fn.name.value}" if parent.kind != "module" else fn.name.value)
        s = Scope(fn, name, "method" if is_method else "function", parent, short=fn.name.value)
        params = fn.params
        every = [*params.posonly_params, *params.params, *params.kwonly_params]
        for p in (params.star_arg, params.star_kwarg):
            if type(p) is cst.Param:
                every.append(p)
        s.params = {p.name.value for p in every}
        decorators = {dotted(d.decorator) for d in fn.decorators}
        positional = [*params.posonly_params, *params.params]
        if is_method and positional and "staticmethod" not in decorators and "classmethod" not in decorators:
            s.cls, s.self_name = cls, positional[0].name.value
        elif parent.cls is not None and not is_method:
            s.cls, s.self_name = parent.cls, parent.self_name  # a nested function sees the method's self
        s.names = _names_in(fn)
        self._register(s)
        self._scan_block(_suite_stmts(fn.body), s)
        return s

    def _new_class(self, node: cst.ClassDef, parent: Scope) -> ClassInfo:
        info = ClassInfo(node.name.value, node, [dotted(a.value) or "" for a in node.bases if a.keyword is None])
        parent.classes[info.name] = info
        self.classes[info.name] = info
        for stmt in _suite_stmts(node.body):
            if type(stmt) is cst.FunctionDef:
                info.methods[stmt.name.value] = self._new_function(stmt, parent, info)
            elif type(stmt) is cst.ClassDef:
                self._new_class(stmt, parent)
        call = "__call__" if "__call__" in info.methods else "forward"
        if call in info.methods and self._is_module_class(info):
            # inference (eqx.nn.inference_mode, torch's eval()) calls it without a key, and it hands that None on
            # to the methods it calls (forward_features(x, key=key))
            for name in _called_from(node, call):
                if name in info.methods:
                    info.methods[name].optional = True
        return info

    def _is_module_class(self, info: ClassInfo, seen=None) -> bool:
        seen = seen or set()
        if info.name in seen:
            return False
        seen.add(info.name)
        for base in info.bases:
            if base.rsplit(".", 1)[-1] == "Module" or (base in self.classes
                                                       and self._is_module_class(self.classes[base], seen)):
                return True
        return False

    def _scan_block(self, stmts, s: Scope) -> None:
        for stmt in stmts:
            if type(stmt) is cst.FunctionDef:
                s.funcs[stmt.name.value] = self._new_function(stmt, s, None)
            elif type(stmt) is cst.ClassDef:
                self._new_class(stmt, s)
            elif type(stmt) is cst.SimpleStatementLine:
                for small in stmt.body:
                    self._scan_small(small, s)
            else:
                if type(stmt) is cst.For:
                    self._bind_loop(stmt.target, stmt.iter, s)
                for suite, _ in _suites(stmt):
                    self._scan_block(_suite_stmts(suite), s)

    def _scan_small(self, small, s: Scope) -> None:
        if type(small) is cst.Expr and type(small.value) is cst.Call and _grows_list(small.value):
            # layers.append(nn.Dropout(p)) / layers.extend([...]): the list's elements, for Sequential(*layers)
            call = small.value
            grown = call.args[0].value
            element = cst.List([cst.Element(grown)]) if call.func.attr.value == "append" else grown
            s.values.setdefault(call.func.value.value, []).append(element)
            return
        if type(small) is cst.AugAssign and type(small.operator) is cst.AddAssign \
                and type(small.target) is cst.Name:
            # layers += [Block(c)]: the list grows by those elements, as with extend
            s.values.setdefault(small.target.value, []).append(small.value)
            return
        if type(small) is cst.Assign:
            targets, value = [t.target for t in small.targets], small.value
        elif type(small) is cst.AnnAssign and small.value is not None:
            targets, value = [small.target], small.value
        else:
            return
        for t in targets:
            if type(t) is cst.Name:
                if type(value) is cst.Lambda and value not in self.scope_of:
                    lam = Scope(value, f"{s.name}.{t.value}" if s.name else t.value, "lambda", s, s.cls, s.self_name)
                    lam.params = {p.name.value for p in value.params.params}
                    lam.names = _names_in(value) | s.names
                    self._register(lam)
                    s.funcs[t.value] = lam
                else:
                    s.values.setdefault(t.value, []).append(value)
            elif type(t) is cst.Attribute and type(t.value) is cst.Name and s.cls is not None \
                    and t.value.value == s.self_name:
                s.cls.attrs.setdefault(t.attr.value, []).append((value, s))
            elif type(t) is cst.Tuple and t.elements and type(t.elements[0].value) is cst.Name \
                    and type(value) is cst.Call and type(value.func) is cst.Call \
                    and dotted(value.func.func) == "eqx.nn.make_with_state" and value.func.args:
                # model, state = eqx.nn.make_with_state(Net)(args): model is what Net(args) builds
                built = cst.Call(value.func.args[0].value, value.args)
                s.values.setdefault(t.elements[0].value.value, []).append(built)

    def _bind_loop(self, target, it, s: Scope) -> None:
        """A loop variable's elements come from `it`: `for blk in self.blocks`, and through enumerate, zip and
        dict.items() (`for i, (norm, blk) in enumerate(zip(self.norms, self.blocks))`)."""
        if type(target) is cst.Name:
            s.elems.setdefault(target.value, []).append(it)
            return
        if not (type(target) in (cst.Tuple, cst.List) and type(it) is cst.Call):
            return
        parts = [e.value for e in target.elements]
        func = dotted(it.func)
        if func == "enumerate" and len(parts) == 2 and it.args:
            self._bind_loop(parts[1], it.args[0].value, s)
        elif func == "zip" and len(parts) == len(it.args) and not any(a.star or a.keyword for a in it.args):
            for part, arg in zip(parts, it.args):
                self._bind_loop(part, arg.value, s)
        elif len(parts) == 2 and type(parts[1]) is cst.Name and type(it.func) is cst.Attribute \
                and it.func.attr.value == "items":
            s.elems.setdefault(parts[1].value, []).append(it.func.value)

    def _choose_key_name(self, s: Scope) -> None:
        if s.kind == "function" or s.kind == "method":
            p = _kwonly_key(s.node)
            if p is not None:
                s.key_name, s.has_key_param = "key", True
                s.optional = s.optional or (p.default is not None)
                return
        s.key_name = _fresh(s.names, *KEY_NAMES)

    # --- candidate key uses, with whether a seed covers them
    def _walk(self, stmts, s: Scope, covered: bool, top_level: bool, top=None) -> None:
        for stmt in stmts:
            here = stmt if top_level else top
            if _is_seed_stmt(stmt):
                covered = True
                continue
            if type(stmt) is cst.ClassDef:
                continue
            first = len(s.cands)
            if type(stmt) is cst.FunctionDef:
                s.cands.append((stmt, covered, here))
            self._collect(stmt, s, covered, here)
            s.cands_of[stmt] = (first, len(s.cands))
            for suite, _ in _suites(stmt):
                self._walk(_suite_stmts(suite), s, covered, False, here)

    def _collect(self, node, s: Scope, covered: bool, top) -> None:
        """The calls and key placeholders in node (in no particular order), not inside a nested block or a lambda
        bound to a name (each has its own scope)."""
        stack = [node]
        while stack:
            n = stack.pop()
            tp = type(n)
            if tp is cst.Call or (tp is cst.Name and n.value == KEY_PLACEHOLDER):
                s.cands.append((n, covered, top))
            elif (tp is cst.IndentedBlock or tp is cst.SimpleStatementSuite) and n is not node:
                continue
            elif tp is cst.Lambda and n in self.scope_of:
                continue
            stack.extend(content_children(n))

    def _fixpoint(self) -> None:
        changed = True
        while changed:
            changed = False
            for s in self.scopes:
                if s.kind == "module" or s.needs_key:
                    continue
                if any(not covered and self.is_unit(n, s) for n, covered, _ in s.cands):
                    s.needs_key = changed = True

    def has_no_unit(self, stmt, s: Scope) -> bool:
        """Known from the candidates collected in it: stmt (of scope s; its own line or header) has no key use."""
        span = s.cands_of.get(stmt)
        return span is not None and not any(self.is_unit(n, s) for n, _, _ in s.cands[span[0]:span[1]])

    # --- what takes a key
    def is_unit(self, node, s: Scope) -> bool:
        if is_placeholder(node):
            return True
        if type(node) is cst.FunctionDef:
            fs = self.scope_of.get(node)
            return fs is not None and fs.closure and fs.needs_key
        if type(node) is cst.Call:
            k = self.call_key(node, s)
            return k is not None and not _has_kwarg(node, k)
        return False

    def call_key(self, call: cst.Call, s: Scope) -> str | None:
        f = call.func
        if dotted(f) in KEY_FORWARDING_CALLS and len(call.args) >= 2:
            # t2j.apply(model, init_fn): takes a key when init_fn does, and hands it on
            fn = call.args[1].value
            return "key" if (self._name_call_key(fn, s, 0) if type(fn) is cst.Name else
                             self._attr_call_key(fn, s, 0) if type(fn) is cst.Attribute else None) else None
        if dotted(f) == STATE_CALL and call.args:
            # t2j.nn.call_with_state(self.drop_path, x, state=state): keyed when the module it calls is; the
            # key goes through to that module
            f = call.args[0].value
            if type(f) in (cst.Name, cst.Attribute, cst.Subscript, cst.Call):
                return "key" if self.call_key(cst.Call(f), s) else None
            return None
        if type(f) is cst.Name:
            return self._name_call_key(f, s, 0)
        if type(f) is cst.Attribute:
            return self._attr_call_key(f, s, 0)
        if type(f) is cst.Subscript:
            return self._elem_call_key(f.value, s, 0)
        if type(f) is cst.Call:
            return self._value_call_key(f, s, 0)
        return None

    def _lookup(self, name: str, s: Scope):
        """Where a name used in scope s is bound: ("func", Scope), ("class", ClassInfo), ("values", exprs),
        ("elems", iterables), or None (a parameter, or unknown)."""
        cur = s
        while cur is not None:
            if name in cur.funcs:
                return "func", cur.funcs[name]
            if name in cur.classes:
                return "class", cur.classes[name]
            if name in cur.values or name in cur.elems:
                return "bound", (cur.values.get(name, []), cur.elems.get(name, []))
            if name in cur.params:
                return None
            cur = cur.parent
        return None

    def _scope_key(self, fs: Scope) -> str | None:
        if fs.closure:
            return None
        return fs.key_name if fs.needs_key or fs.has_key_param else None

    def _name_call_key(self, f: cst.Name, s: Scope, depth: int) -> str | None:
        found = self._lookup(f.value, s)
        if found is None:
            qual = self.ctx.scopes.qualname(f)
            if qual is not None:
                return self.project.functions.get(qual) or self.project.constructors.get(qual)
            return self._model_param_key(f.value, s)
        kind, what = found
        if kind == "func":
            return self._scope_key(what)
        if kind == "class":
            return self.init_key(what)
        values, elems = what
        for v in values:
            if _mode_switch_of(v, f.value):  # `model = eqx.nn.inference_mode(model, True)`: still the parameter
                k = self._model_param_key(f.value, s)
            else:
                k = self._value_call_key(v, s, depth + 1) if type(v) is not cst.Name or v.value != f.value \
                    else None
            if k:
                return k
        for it in elems:
            k = self._elem_call_key(it, s, depth + 1)
            if k:
                return k
        return None

    def _model_param_key(self, name: str, s: Scope) -> str | None:
        """`model(x)` where `model` is a parameter of a function that the file calls with a model of a class
        it defines (`test(model, loader)` after `model = VAE(...)`): that class's call key."""
        cur = s
        while cur is not None and name not in cur.params:
            cur = cur.parent
        facts = getattr(self.ctx, "training_facts", None)  # None where the training pass does not run
        if cur is None or cur.kind not in ("function", "method"):
            return None
        cls = facts.model_params.get(cur.node.name.value, {}).get(name) if facts is not None else None
        info = self.classes.get(cls or "")
        if info is not None:
            return self.callable_key(info)
        return self._passed_class_key(name, cur, 0)

    def _passed_class_key(self, param: str, fs: Scope, depth: int) -> str | None:
        """`block(...)` where `block` is a parameter of fs that its callers in this file fill with a class of
        this file (`ResNet(BasicBlock, ...)` -> `self._make_layer(block, ...)` -> `block(inplanes, planes)`):
        constructing it takes that class's key. Filled with an instance (`Seq2Seq(Encoder(...), dec)`), calling it
        takes the instance's call key."""
        if depth > MAX_DEPTH:
            return None
        positional = [p.name.value for p in fs.node.params.params]
        if fs.kind == "method" and positional and positional[0] == fs.self_name:
            positional = positional[1:]
        for cs in self.scopes:
            for call, _, _ in cs.cands:
                if type(call) is not cst.Call or self._call_target(call, cs) is not fs:
                    continue
                arg = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == param), None)
                plain = [a.value for a in call.args if a.keyword is None and not a.star]
                if arg is None and param in positional and positional.index(param) < len(plain):
                    arg = plain[positional.index(param)]
                if arg is None:
                    continue
                found = self._lookup(arg.value, cs) if type(arg) is cst.Name else None
                if found and found[0] == "class":
                    k = self.init_key(found[1])
                elif found is None and type(arg) is cst.Name and cs.kind in ("function", "method"):
                    k = self._passed_class_key(arg.value, cs, depth + 1) if arg.value in cs.params else None
                else:  # an instance (`Seq2Seq(enc, dec)` after `enc = Encoder(...)`): calling it takes its key
                    k = self._value_call_key(arg, cs, depth + 1)
                if k:
                    return k
        return None

    def _call_target(self, call: cst.Call, s: Scope) -> Scope | None:
        """The function or method of this file that `call` runs (a class's __init__ for a construction)."""
        f = call.func
        if type(f) is cst.Name:
            found = self._lookup(f.value, s)
            if found and found[0] == "func":
                return found[1]
            if found and found[0] == "class":
                return self.find_method(found[1], "__init__")
        if type(f) is cst.Attribute and type(f.value) is cst.Name and s.cls is not None \
                and f.value.value == s.self_name:
            return self.find_method(s.cls, f.attr.value)
        return None

    def _attr_call_key(self, f: cst.Attribute, s: Scope, depth: int) -> str | None:
        v, m = f.value, f.attr.value
        if type(v) is cst.Name and s.cls is not None and v.value == s.self_name:
            meth = self.find_method(s.cls, m)
            if meth is not None:
                return self._scope_key(meth)
            for e, es in self.find_attr(s.cls, m):
                k = self._value_call_key(e, es, depth + 1)
                if k:
                    return k
            return None
        if type(v) is cst.Call and dotted(v.func) == "super" and s.cls is not None:
            for base in s.cls.bases:
                info = self.classes.get(base)
                meth = self.find_method(info, m) if info is not None else None
                if meth is not None:
                    return self._scope_key(meth)
            return None
        if type(v) is cst.Attribute and type(v.value) is cst.Name and s.cls is not None \
                and v.value.value == s.self_name:
            for e, es in self.find_attr(s.cls, v.attr.value):  # self.transformer.encoder(src): a keyed layer's part
                layer = (dotted(e.func) or "").rsplit(".", 1)[-1] if type(e) is cst.Call else ""
                if m in KEYED_SUBLAYERS.get(layer, ()) and self._value_call_key(e, es, depth + 1):
                    return "key"
        cls = self._instance_class(v, s, depth + 1)
        if cls is not None:
            meth = self.find_method(cls, m)
            return self._scope_key(meth) if meth is not None else None
        qual = self.ctx.scopes.qualname(f)
        if qual is not None:
            return self.project.functions.get(qual) or self.project.constructors.get(qual)
        return None

    def _instance_class(self, v, s: Scope, depth: int) -> ClassInfo | None:
        """The class of the object that `v` evaluates to, when it is a local instance of a class in this file."""
        if depth > MAX_DEPTH:
            return None
        exprs: list = []
        if type(v) is cst.Name:
            found = self._lookup(v.value, s)
            if found and found[0] == "bound":
                exprs = [(e, s) for e in found[1][0]]
        elif type(v) is cst.Attribute and type(v.value) is cst.Name and s.cls is not None \
                and v.value.value == s.self_name:
            exprs = self.find_attr(s.cls, v.attr.value)
        elif type(v) is cst.Call:
            exprs = [(v, s)]
        for e, es in exprs:
            if type(e) is cst.Call and type(e.func) is cst.Name:
                found = self._lookup(e.func.value, es)
                if found and found[0] == "class":
                    return found[1]
        if type(v) is cst.Name and not exprs:
            # a model handed to a function (the extracted training step's parameter): the training facts know
            # its class when the file builds it under that name
            facts = getattr(self.ctx, "training_facts", None)
            return self.classes.get(facts.models.get(v.value, "")) if facts is not None else None
        return None

    def _value_call_key(self, e, s: Scope, depth: int) -> str | None:
        """The key keyword for calling the value of expression e (an object built by a call, a name bound to
        one, self.attr), or None."""
        if depth > MAX_DEPTH:
            return None
        if type(e) is cst.Call:
            if type(e.func) is cst.Name:
                found = self._lookup(e.func.value, s)
                if found and found[0] == "class":
                    return self.callable_key(found[1])
            name = dotted(e.func) or ""
            if name.startswith(LAYER_PREFIXES):
                return "key" if self._layer_takes_key(e, s, depth) else None
            qual = self.ctx.scopes.qualname(e.func)
            if qual is not None:
                return self.project.callables.get(qual)
            return None
        if type(e) is cst.Name:
            return self._name_call_key(e, s, depth + 1)
        if type(e) is cst.IfExp:  # DropPath(p) if p > 0 else nn.Identity(): a key for the branch that draws
            return self._value_call_key(e.body, s, depth + 1) or self._value_call_key(e.orelse, s, depth + 1)
        if type(e) is cst.Attribute and type(e.value) is cst.Name and s.cls is not None \
                and e.value.value == s.self_name:
            for v, vs in self.find_attr(s.cls, e.attr.value):
                k = self._value_call_key(v, vs, depth + 1)
                if k:
                    return k
            return None
        if type(e) is cst.Subscript:
            return self._elem_call_key(e.value, s, depth + 1)
        return None

    def _elem_call_key(self, e, s: Scope, depth: int) -> str | None:
        """The key keyword for calling an element of the container e (list, ModuleList, Sequential, dict)."""
        if depth > MAX_DEPTH:
            return None
        parts: list = []
        if type(e) in (cst.List, cst.Tuple, cst.Set):
            for el in e.elements:
                k = self._elem_call_key(el.value, s, depth + 1) if type(el) is cst.StarredElement \
                    else self._value_call_key(el.value, s, depth + 1)
                if k:
                    return k
            return None
        if type(e) is cst.Dict:
            parts = [el.value for el in e.elements if type(el) is cst.DictElement]
        elif type(e) in (cst.ListComp, cst.SetComp, cst.GeneratorExp):
            parts = [e.elt]
        elif type(e) is cst.DictComp:
            parts = [e.value]
        elif type(e) is cst.Call:
            name = (dotted(e.func) or "").rsplit(".", 1)[-1]
            if name in CONTAINER_FACTORIES:
                for a in e.args:
                    if isinstance(a.value, (cst.List, cst.Tuple, cst.Dict, cst.ListComp, cst.GeneratorExp,
                                            cst.DictComp, cst.Call, cst.Name)) and name != "Sequential":
                        k = self._elem_call_key(a.value, s, depth + 1)
                    else:
                        k = self._value_call_key(a.value, s, depth + 1)
                    if k:
                        return k
            return None
        elif type(e) is cst.Name:
            found = self._lookup(e.value, s)
            if found and found[0] == "bound":
                parts_c = found[1][0]
                for v in parts_c:
                    k = self._elem_call_key(v, s, depth + 1)
                    if k:
                        return k
            return None
        elif type(e) is cst.Attribute and type(e.value) is cst.Name and s.cls is not None \
                and e.value.value == s.self_name:
            for v, vs in self.find_attr(s.cls, e.attr.value):
                k = self._elem_call_key(v, vs, depth + 1)
                if k:
                    return k
            return None
        elif type(e) is cst.BinaryOperation:
            return self._elem_call_key(e.left, s, depth + 1) or self._elem_call_key(e.right, s, depth + 1)
        elif type(e) is cst.Subscript:  # for block in self.transformer['h']: the entry's own elements
            for v, vs in self._entries(e, s):
                k = self._elem_call_key(v, vs, depth + 1)
                if k:
                    return k
            return None
        for p in parts:
            k = self._value_call_key(p, s, depth + 1)
            if k:
                return k
        return None

    def _entries(self, e: cst.Subscript, s: Scope) -> list:
        """The expressions `d['name']` stands for when d is built in this file as dict(name=...),
        nn.ModuleDict(dict(name=...)) or {'name': ...}."""
        index = e.slice[0].slice if len(e.slice) == 1 and type(e.slice[0].slice) is cst.Index else None
        if index is None or type(index.value) is not cst.SimpleString:
            return []
        name = index.value.evaluated_value
        if type(e.value) is cst.Attribute and type(e.value.value) is cst.Name and s.cls is not None \
                and e.value.value.value == s.self_name:
            todo = list(self.find_attr(s.cls, e.value.attr.value))
        else:
            return []
        out = []
        while todo:
            v, vs = todo.pop()
            if type(v) is cst.Dict:
                out += [(el.value, vs) for el in v.elements if type(el) is cst.DictElement
                        and type(el.key) is cst.SimpleString and el.key.evaluated_value == name]
            elif type(v) is cst.Call and (dotted(v.func) or "").rsplit(".", 1)[-1] in ("dict", "ModuleDict",
                                                                                          "OrderedDict"):
                out += [(a.value, vs) for a in v.args if a.keyword is not None and a.keyword.value == name]
                todo += [(a.value, vs) for a in v.args if a.keyword is None and not a.star]
        return out

    def _layer_takes_key(self, call: cst.Call, s: Scope, depth: int) -> bool:
        last = dotted(call.func).rsplit(".", 1)[-1]
        if last in KEYED_LAYERS:
            return True
        if last in DROPOUT_ARG:
            positional = [a for a in call.args if a.keyword is None and not a.star]
            value = next((a.value for a in call.args if a.keyword is not None
                          and a.keyword.value in DROPOUT_KWARGS), None)
            if value is None and len(positional) > DROPOUT_ARG[last]:
                value = positional[DROPOUT_ARG[last]].value
            return value is not None and not _is_zero(value)
        if last == "Sequential":
            return any(self._value_call_key(a.value, s, depth + 1) or (
                a.star == "*" and self._elem_call_key(a.value, s, depth + 1)) for a in call.args)
        return False

    def find_method(self, cls: ClassInfo, name: str, seen=None) -> Scope | None:
        seen = seen or set()
        if cls.name in seen:
            return None
        seen.add(cls.name)
        if name in cls.methods:
            return cls.methods[name]
        for base in cls.bases:
            info = self.classes.get(base)
            if info is not None:
                found = self.find_method(info, name, seen)
                if found is not None:
                    return found
        return None

    def find_attr(self, cls: ClassInfo, name: str, seen=None) -> list:
        seen = seen or set()
        if cls.name in seen:
            return []
        seen.add(cls.name)
        out = list(cls.attrs.get(name, []))
        for base in cls.bases:
            info = self.classes.get(base)
            if info is not None:
                out += self.find_attr(info, name, seen)
        return out

    def init_key(self, cls: ClassInfo) -> str | None:
        init = self.find_method(cls, "__init__")
        return self._scope_key(init) if init is not None else None

    def callable_key(self, cls: ClassInfo) -> str | None:
        call = self.find_method(cls, "__call__") or self.find_method(cls, "forward")
        return self._scope_key(call) if call is not None else None

    def facts(self, module_name: str) -> KeyFacts:
        prefix = f"{module_name}." if module_name else ""
        out = KeyFacts()
        for s in self.scopes:
            exported = (s.kind == "function" and s.parent is self.module_scope) or (
                s.kind == "method" and s.parent is self.module_scope and s.cls is not None
                and self.module_scope.classes.get(s.cls.name) is s.cls)
            if exported and (s.needs_key or s.has_key_param):
                out.functions[prefix + s.name] = s.key_name
        for name, info in self.module_scope.classes.items():
            if (k := self.init_key(info)) is not None:
                out.constructors[prefix + name] = k
            if (k := self.callable_key(info)) is not None:
                out.callables[prefix + name] = k
        return out


def module_name_of(filename: str) -> str:
    return "" if filename.startswith("<") else Path(filename).stem


def collect_facts(module: cst.Module, ctx, module_name: str | None = None) -> KeyFacts:
    """One file's key facts, for a folder run to merge (the tree as the randomness pass sees it)."""
    return Analysis(module, ctx, getattr(ctx, "key_facts", None)).facts(
        module_name if module_name is not None else module_name_of(ctx.filename))


# ---------------------------------------------------------------------------------------------------- rewrite
class RandomnessPass(Pass):
    """Runs after the ops pass: replaces every key placeholder with a fresh subkey and threads keys."""

    def visit_Module(self, node: cst.Module) -> bool:
        return False

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        project = getattr(self.ctx, "key_facts", None)
        if not (project and (project.functions or project.constructors or project.callables)):
            words = self.ctx.words(original)
            if words.isdisjoint(RANDOM_WORDS) or words.isdisjoint(RANDOM_NAMES) or not _mentions_random(original):
                return updated
            if not (words & RANDOM_WORDS) - {"key"} and not _takes_key(original):
                return updated  # `key` only as another name (a dict's key, attention's key argument)
        analysis = Analysis(original, self.ctx, project)
        return _Rewriter(self, analysis).module(original)


RANDOM_NAMES = frozenset({KEY_PLACEHOLDER, "t2j", "eqx"})
# Without any of these words nothing takes or makes a key (a draw, a seed, a generator, a `key` parameter, a layer
# that draws), and the rewrite would give back the same code: but for the semicolon that ends a line of several
# statements, which smalls() drops.
RANDOM_WORDS = frozenset({KEY_PLACEHOLDER, "key", "manual_seed", "cuda_manual_seed", "Generator", SEMICOLON,
                          *KEYED_LAYERS, *DROPOUT_ARG})


def _kwonly_key(fn: cst.FunctionDef) -> cst.Param | None:
    """fn's keyword-only `key` parameter: Equinox's convention for a PRNG key (attention's positional `key` is
    not one)."""
    return next((p for p in fn.params.kwonly_params if p.name.value == "key"), None)


def _takes_key(module: cst.Module) -> bool:
    """Some function takes a PRNG key (_kwonly_key)."""
    return any(type(stmt) is cst.FunctionDef and _kwonly_key(stmt) is not None for stmt in iter_statements(module))


def _mentions_random(module: cst.Module) -> bool:
    return any(not RANDOM_NAMES.isdisjoint(_names_in(stmt)) for stmt in module.body)  # mostly found early


class _Rewriter:
    def __init__(self, p: RandomnessPass, analysis: Analysis) -> None:
        self.p = p
        self.ctx = p.ctx
        self.a = analysis
        self.pending: list = []
        self.default_inserted = False
        self.comp_taken: set[str] = set()
        self._units: dict = {}  # (node, scope) -> units: counted (_count) before they are rewritten
        # the statements being rewritten, outermost first: a diagnostic about a node an earlier pass built (no
        # position of its own) points at the innermost one with a source position (looked up only then)
        self.here: list = []
        # words of a statement that the replacer can report on or change without any unit in it: a generator,
        # a lambda bound to a name, a function that takes a key passed as a value (_Replacer._value_refs)
        self.replacer_words = {"Generator", LAMBDA} | {
            name for scope in analysis.scopes for name, f in scope.funcs.items() if f.needs_key and not f.closure}
        # ... and what else makes the rewrite change a statement with no unit in it: a seed, a placeholder in a class
        # body, a line of several statements ended by a semicolon
        self.quiet_words = self.replacer_words | {KEY_PLACEHOLDER, "manual_seed", "cuda_manual_seed", SEMICOLON}

    # --- diagnostics
    def report(self, code: str, message: str, node=None, where=None) -> None:
        pos = _first_position(self.ctx.positions, node) if node is not None else None
        line, col = (pos.start.line, pos.start.column) if pos else (where or self.innermost(self.here))
        d = self.ctx.report(code, message, line, col)
        if d.safety in ("manual", "unsafe"):
            self.pending.append(d)

    def innermost(self, nodes: list) -> tuple[int, int]:
        """Where the last of nodes with a source position is (1, 0 when none has one)."""
        for node in reversed(nodes):
            pos = self.ctx.positions.get(node)
            if pos is not None:
                return pos.start.line, pos.start.column
        return 1, 0

    # --- units: the key uses of one statement (draws, key-taking calls, comprehensions and lambdas that draw)
    def units(self, node, s: Scope) -> list:
        """Key uses directly in node (not inside a unit comprehension or lambda, nor in a nested block)."""
        key = (node, s)
        if key not in self._units:
            self._units[key] = [] if self.a.has_no_unit(node, s) else self._find_units(node, s)
        return list(self._units[key])

    def _find_units(self, node, s: Scope) -> list:
        found: list = []

        def visit(n) -> None:  # in source order: the units get their keys in this order
            tp = type(n)
            if (tp is cst.IndentedBlock or tp is cst.SimpleStatementSuite) and n is not node:
                return
            if tp is cst.FunctionDef and n is node and self.a.is_unit(n, s):
                found.append(n)
            if tp is cst.Lambda:
                if n not in self.a.scope_of and self.units(n.body, s):
                    found.append(n)
                return
            if tp in COMPS:
                visit(n.for_in.iter)
                if self.comp_levels(n, s)[1]:
                    found.append(n)
                return
            if is_placeholder(n) or (tp is cst.Call and self.a.is_unit(n, s)):
                found.append(n)
            if tp is cst.Attribute:
                visit(n.value)
                return
            for child in content_children(n):
                visit(child)

        visit(node)
        return found

    def comp_levels(self, comp, s: Scope):
        """Units of a comprehension by level (level c: evaluated once per iteration of clause c)."""
        clauses = _clauses(comp)
        levels: list[list] = [[] for _ in clauses]
        pieces: list[tuple[int, cst.CSTNode]] = []
        for c, clause in enumerate(clauses):
            pieces += [(c, i.test) for i in clause.ifs]
            if clause.inner_for_in is not None:
                pieces.append((c, clause.inner_for_in.iter))
        elts = [comp.key, comp.value] if type(comp) is cst.DictComp else [comp.elt]
        pieces += [(len(clauses) - 1, e) for e in elts]
        for c, piece in pieces:
            levels[c] += self.units(piece, s)
        return levels, any(levels)

    # --- keys for n units of a statement
    def keys(self, units: list, s: Scope):
        """(the split statement or None, one key expression per unit). A nested function that closes over a
        key gets a variable of its own (`loss_fn_key`): a closure reads the variable when it is called."""
        closures = [u for u in units if type(u) is cst.FunctionDef]
        if s.direct and not closures:
            return None, [cst.Name(s.key_name)]
        kn = s.key_name
        n = len(units)
        base = _fresh(s.names, "subkey", "subkey_")
        plain = iter([base] if n - len(closures) == 1 else [f"{base}{i + 1}" for i in range(n - len(closures))])
        names = [self.a.scope_of[u].closure_name if type(u) is cst.FunctionDef else next(plain) for u in units]
        split = "t2j.split_key" if s.optional else "jax.random.split"
        self.p.need("t2j" if s.optional else "jax")
        stmt = _split_statement(kn, names, split, None if n == 1 else n + 1)
        return stmt, [cst.Name(x) for x in names]

    def fold_in(self, key: cst.BaseExpression, i, s: Scope) -> cst.BaseExpression:
        self.p.need("t2j" if s.optional else "jax")
        index = cst.Integer(str(i)) if isinstance(i, int) else cst.Name(i)
        return _call("t2j.fold_in" if s.optional else "jax.random.fold_in", key, index)

    def replacer(self, mapping: dict, s: Scope, suites: dict | None = None) -> _Replacer:
        return _Replacer(self, s, mapping, suites or {})

    def thread_expr(self, expr, key: cst.BaseExpression, s: Scope, units=None):
        """Give every unit in expr a key derived from `key` (no statements available: fold_in per unit)."""
        units = self.units(expr, s) if units is None else units
        if not units:
            return expr
        keys = [key] if len(units) == 1 else [self.fold_in(key, j, s) for j in range(len(units))]
        return transform(expr, self.replacer(dict(zip(units, keys)), s))

    # --- module, functions, classes
    def module(self, m: cst.Module) -> cst.Module:
        s = self.a.module_scope
        s.direct = self._direct(list(m.body), s)
        body = self.block(list(m.body), s, False, top=True)
        return m.with_changes(body=body)

    def _direct(self, stmts, s: Scope) -> bool:
        count, looped = self._count(stmts, s, False)
        return count == 1 and not looped

    def _count(self, stmts, s: Scope, in_loop: bool) -> tuple[int, bool]:
        n, looped = 0, False
        for stmt in stmts:
            if type(stmt) is cst.ClassDef:
                continue
            found = self.units(stmt, s)
            k = len(found) + sum(type(u) is cst.FunctionDef for u in found)  # a closure's key: always split
            n += k
            looped = looped or (in_loop and k > 0)
            if type(stmt) is cst.FunctionDef:
                continue
            for suite, is_loop in _suites(stmt):
                k, lp = self._count(_suite_stmts(suite), s, in_loop or is_loop)
                n, looped = n + k, looped or lp
        return n, looped

    def function(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        s = self.a.scope_of[fn]
        params = fn.params
        if s.closure and s.needs_key:
            s.direct = self._direct(_suite_stmts(fn.body), s)
            if s.direct:
                s.key_name = s.closure_name
                return fn.with_changes(body=self.suite(fn.body, s, False))
            body = self.suite(fn.body, s, False)
            first = cst.parse_statement(f"{s.key_name} = {s.closure_name}\n")
            if type(body) is cst.IndentedBlock:
                stmts = list(body.body)
                at = 1 if stmts and _is_docstring(stmts[0]) else 0
                body = body.with_changes(body=stmts[:at] + [first] + stmts[at:])
            else:
                body = body.with_changes(body=[*first.body, *body.body])
            return fn.with_changes(body=body)
        if s.needs_key and not s.has_key_param:
            default = cst.Name("None") if s.optional else None
            params = _add_kwonly(fn, params, s.key_name, default)
            what = "a keyword-only key=None" if s.optional else "a keyword-only key"
            name = s.name + "()"
            self.report("T2J402", f"{name} now takes {what}" + (f" (named {s.key_name}: `key` is taken)"
                                                             if s.key_name != "key" else "")
                        + "; its callers in this file pass one, callers elsewhere must too", fn)
        s.direct = self._direct(_suite_stmts(fn.body), s)
        body = self.suite(fn.body, s, False)
        return fn.with_changes(params=params, body=body)

    def class_def(self, node: cst.ClassDef) -> cst.ClassDef:
        out = []
        counter = [0]
        for stmt in _suite_stmts(node.body) if type(node.body) is cst.IndentedBlock else [node.body]:
            if type(stmt) is cst.FunctionDef:
                out.append(self.function(stmt))
            elif type(stmt) is cst.ClassDef:
                out.append(self.class_def(stmt))
            else:
                out.append(self._class_body_stmt(stmt, counter))
        if type(node.body) is not cst.IndentedBlock:
            return node
        return node.with_changes(body=node.body.with_changes(body=out))

    def _class_body_stmt(self, stmt, counter):
        """A draw in a class body runs once, at class creation, where no key is threaded: a fixed key."""
        found = [n for n in find_all(stmt, cst.Name) if is_placeholder(n)]
        if not found:
            return stmt
        saved, self.pending = self.pending, []
        mapping = {}
        for n in found:
            self.p.need("jax")
            mapping[n] = _call("jax.random.key", cst.Integer(str(counter[0])))
            counter[0] += 1
            self.report("T2J409", "a draw in a class body runs once, at class creation, with no key threaded "
                                  "to it: it uses a fixed jax.random.key", stmt)
        new = transform(stmt, _NameSwap(mapping))
        new = add_marker(new, self.pending) if self.pending else new
        self.pending = saved
        return new

    # --- blocks and statements
    def suite(self, suite: cst.BaseSuite, s: Scope, in_loop: bool) -> cst.BaseSuite:
        if type(suite) is cst.IndentedBlock:
            return suite.with_changes(body=self.block(list(suite.body), s, in_loop))
        smalls = self.smalls(list(suite.body), s, in_loop)
        return suite.with_changes(body=smalls or [cst.Pass()])

    def block(self, stmts, s: Scope, in_loop: bool, top: bool = False) -> list:
        out = []
        for stmt in stmts:
            out += self.statement(stmt, s, in_loop, top)
        if not out and not top:
            out = [cst.SimpleStatementLine([cst.Pass()])]
        return out

    def statement(self, stmt, s: Scope, in_loop: bool, top: bool = False) -> list:
        saved, self.pending = self.pending, []
        self.here.append(stmt)
        try:
            result = self._statement(stmt, s, in_loop, top)
            if self.pending and result:
                main = result[-1]
                result[-1] = add_marker(main, self.pending)
            return result
        finally:
            self.pending = saved
            self.here.pop()

    def _default_key(self, stmt, s: Scope) -> list:
        if not (s.kind == "module" and id(stmt) in self.a.uncovered_top and not self.default_inserted):
            return []
        self.default_inserted = True
        self.p.need("jax")
        new = cst.parse_statement(f"{s.key_name} = jax.random.key(0)\n")
        saved, self.pending = self.pending, []
        self.report("T2J403", "no torch.manual_seed before this code draws random numbers: "
                              f"`{s.key_name} = jax.random.key(0)` was inserted (pick your seed)", stmt)
        new = add_marker(new, self.pending)
        self.pending = saved
        return [new]

    def _statement(self, stmt, s: Scope, in_loop: bool, top: bool) -> list:
        pre = self._default_key(stmt, s) if top else []
        if pre:  # the inserted key takes the blank lines and comments above the statement
            pre[0] = pre[0].with_changes(leading_lines=stmt.leading_lines)
        out = self._statement_inner(stmt, s, in_loop)
        if pre and out:
            out[0] = out[0].with_changes(leading_lines=[])
        return pre + out

    def _untouched(self, stmt, s: Scope) -> bool:
        """A function or class in which nothing takes or makes a key, nor is reported: rewriting it would give the
        same code back. No unit in its header, none in its own scope or any scope inside, no quiet word."""
        if not self.quiet_words.isdisjoint(self.ctx.words(stmt)) or self.units(stmt, s):
            return False
        defs = [stmt] + [d for d in iter_statements(stmt) if type(d) is cst.FunctionDef]
        return not any(self._has_units(self.a.scope_of[d]) for d in defs if d in self.a.scope_of)

    def _has_units(self, scope: Scope) -> bool:
        return any(self.a.is_unit(n, scope) for n, _, _ in scope.cands)

    def _statement_inner(self, stmt, s: Scope, in_loop: bool) -> list:
        pre: list = []
        if type(stmt) in (cst.FunctionDef, cst.ClassDef) and self._untouched(stmt, s):
            return [stmt]
        if type(stmt) is cst.FunctionDef:
            new = self.function(stmt)
            return pre + self._headers(stmt, new, s, {})
        if type(stmt) is cst.ClassDef:
            return pre + [self.class_def(stmt)]
        if type(stmt) is cst.SimpleStatementLine:
            return pre + self.simple_line(stmt, s, in_loop)
        suites = {suite: self.suite(suite, s, in_loop or is_loop) for suite, is_loop in _suites(stmt)}
        if type(stmt) is cst.While and self.units(stmt.test, s):
            self.report("T2J408", "a draw in a while condition is evaluated on every iteration but keyed once, "
                                  "before the loop: every iteration sees the same numbers", stmt.test)
        return pre + self._headers(stmt, stmt, s, suites)

    def _headers(self, original, new, s: Scope, suites: dict) -> list:
        """Keys for the units in a compound statement's header (tests, iterables, decorators, defaults)."""
        units = self.units(original, s)
        split, keys = self.keys(units, s) if units else (None, [])
        result = transform(new, self.replacer(dict(zip(units, keys)), s, suites))
        if split is None:
            return [result]
        split = split.with_changes(leading_lines=result.leading_lines)
        result = result.with_changes(leading_lines=[])
        return [split, result]

    def simple_line(self, line: cst.SimpleStatementLine, s: Scope, in_loop: bool) -> list:
        if len(line.body) == 1:
            small = line.body[0]
            replaced = self.seed(small, s)
            if replaced is not None:
                return [line.with_changes(body=replaced)] if replaced else []
            units = self.units(line, s)
            if not units:
                return [self._reports_only(line, s)]
            split, keys = self.keys(units, s)
            new = transform(line, self.replacer(dict(zip(units, keys)), s))
            if split is None:
                return [new]
            return [split.with_changes(leading_lines=line.leading_lines), new.with_changes(leading_lines=[])]
        smalls = self.smalls(list(line.body), s, in_loop)
        if not smalls:
            return []
        return [line.with_changes(body=smalls)]

    def _reports_only(self, node, s: Scope):
        if self.replacer_words.isdisjoint(self.ctx.words(node)):
            return node  # the replacer would give back the same code, and report nothing
        return transform(node, self.replacer({}, s))

    def smalls(self, smalls: list, s: Scope, in_loop: bool) -> list:
        out = []
        for small in smalls:
            replaced = self.seed(small, s)
            if replaced is not None:
                out += replaced
                continue
            units = self.units(small, s)
            if not units:
                out.append(self._reports_only(small, s))
                continue
            split, keys = self.keys(units, s)
            if split is not None:
                out += list(split.body)
            out.append(transform(small, self.replacer(dict(zip(units, keys)), s)))
        for i in range(len(out) - 1):
            if out[i].semicolon is cst.MaybeSentinel.DEFAULT:
                out[i] = out[i].with_changes(semicolon=cst.Semicolon(
                    whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace(" ")))
        if out:
            out[-1] = out[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        return out

    def seed(self, small, s: Scope):
        """`torch.manual_seed(s)` -> `key = jax.random.key(s)`; cuda seeding -> nothing. None: not a seed."""
        call = _seed_call(small, SEED_FUNCS)
        if call is not None and call.args:
            self.p.need("jax")
            self.report("T2J404", f"torch.manual_seed becomes `{s.key_name} = jax.random.key(...)`: the draws "
                                  "after it use keys split from it", small)
            value = _call("jax.random.key", call.args[0].value.deep_clone())
            return [cst.Assign([cst.AssignTarget(cst.Name(s.key_name))], value)]
        call = _seed_call(small, CUDA_SEED_FUNCS)
        if call is not None:
            self.report("T2J405", "torch.cuda seeding dropped: JAX draws the same numbers on every device", small)
            return []
        return None

    # --- comprehensions and lambdas
    def comprehension(self, comp, first_iter, key: cst.BaseExpression, s: Scope):
        """One key for the whole comprehension; one derived key per iteration of each clause down to the
        deepest one that draws; several draws at one level get `fold_in(level_key, j)`."""
        levels, _ = self.comp_levels(comp, s)
        clauses = _clauses(comp)
        deepest = max(c for c, units in enumerate(levels) if units)
        taken = s.names | self.comp_taken | _names_in(comp)
        split = "t2j.split_key" if s.optional else "jax.random.split"
        wraps: list = []  # per clause: None, ("range", kname, n, keep_target) or ("enum", iname)
        mapping: dict = {}
        parent = key
        for c, clause in enumerate(clauses):
            if c > deepest:
                wraps.append(None)
                continue
            n = _range_arg(clause.iter) if c == 0 else None
            if n is not None:
                kname = _fresh(taken, "k", "k_", "subkey_i")
                taken.add(kname)
                target = clause.target
                keep = not (type(target) is cst.Name and (target.value == "_"
                                                              or target.value not in _used_in_comp(comp)))
                wraps.append(("range", kname, n, keep))
                level_key = cst.Name(kname)
            else:
                iname = _fresh(taken, "i", "j", "idx", "i_")
                taken.add(iname)
                wraps.append(("enum", iname))
                level_key = self.fold_in(parent, iname, s)
            consumers = len(levels[c]) + (1 if c < deepest else 0)
            keys = [level_key] if consumers == 1 else [self.fold_in(level_key, j, s) for j in range(consumers)]
            mapping.update(zip(levels[c], keys))
            if c < deepest:
                parent = keys[-1]
        self.p.need("t2j" if s.optional else "jax")
        added = taken - self.comp_taken
        self.comp_taken |= taken
        try:
            rep = self.replacer(mapping, s)
            new_clause = None
            for c in reversed(range(len(clauses))):
                clause, wrap = clauses[c], wraps[c]
                it = first_iter if c == 0 else transform(clause.iter, rep)
                target = clause.target
                if wrap is not None and wrap[0] == "range":
                    _, kname, n, keep = wrap
                    keys_iter = _call(split, key, n.deep_clone())
                    if keep:
                        target = cst.Tuple([cst.Element(target), cst.Element(cst.Name(kname))], lpar=[], rpar=[])
                        it = _call("zip", it, keys_iter)
                    else:
                        target, it = cst.Name(kname), keys_iter
                elif wrap is not None:
                    if type(target) is cst.Tuple and not target.lpar:
                        target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                    target = cst.Tuple([cst.Element(cst.Name(wrap[1])), cst.Element(target)], lpar=[], rpar=[])
                    it = _call("enumerate", it)
                ifs = [i.with_changes(test=transform(i.test, rep)) for i in clause.ifs]
                new_clause = clause.with_changes(target=target, iter=it, ifs=ifs, inner_for_in=new_clause)
            if type(comp) is cst.DictComp:
                return comp.with_changes(key=transform(comp.key, rep), value=transform(comp.value, rep),
                                         for_in=new_clause)
            return comp.with_changes(elt=transform(comp.elt, rep), for_in=new_clause)
        finally:
            self.comp_taken -= added

    def anon_lambda(self, lam: cst.Lambda, key: cst.BaseExpression, s: Scope):
        self.report("T2J407", "this lambda draws random numbers but is not bound to a name, so its callers "
                              "cannot pass it a key: every call reuses one key and repeats the same numbers", lam)
        return lam.with_changes(body=self.thread_expr(lam.body, key, s))

    def named_lambda(self, lam: cst.Lambda) -> cst.Lambda:
        ls = self.a.scope_of[lam]
        if not ls.needs_key:
            return lam.with_changes(body=transform(lam.body, self.replacer({}, ls)))
        params = _add_kwonly(None, lam.params, ls.key_name, None)
        new = lam.with_changes(params=params, body=self.thread_expr(lam.body, cst.Name(ls.key_name), ls))
        if not lam.params.params and not lam.params.star_arg and isinstance(lam.whitespace_after_lambda,
                                                                              cst.SimpleWhitespace):
            new = new.with_changes(whitespace_after_lambda=cst.SimpleWhitespace(" "))
        return new


def _range_arg(it) -> cst.BaseExpression | None:
    """n in `range(n)` when n is simple enough to repeat."""
    if type(it) is cst.Call and dotted(it.func) == "range" and len(it.args) == 1 and it.args[0].keyword is None \
            and not it.args[0].star and (type(it.args[0].value) is cst.Integer or dotted(it.args[0].value)):
        return it.args[0].value
    return None


def _used_in_comp(comp) -> set[str]:
    names: set[str] = set()
    for piece in ([comp.key, comp.value] if type(comp) is cst.DictComp else [comp.elt]):
        names |= _names_in(piece)
    for clause in _clauses(comp):
        for i in clause.ifs:
            names |= _names_in(i)
        if clause.inner_for_in is not None:
            names |= _names_in(clause.inner_for_in.iter)
    return names


def _is_docstring(stmt) -> bool:
    return type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 and type(stmt.body[0]) is cst.Expr \
        and type(stmt.body[0].value) in (cst.SimpleString, cst.ConcatenatedString)


def _used_as_value(scope_node: cst.CSTNode, name: str) -> bool:
    """Whether `name` appears in scope_node other than as a called function or the def's own name."""
    found = []

    class V(Visitor):
        def visit_Call(self, n: cst.Call) -> bool:
            if type(n.func) is not cst.Name:
                walk(n.func, self)
            forwarding = dotted(n.func) in KEY_FORWARDING_CALLS  # t2j.apply(model, fn) hands fn a key per call
            for i, a in enumerate(n.args):
                if not (forwarding and i == 1):
                    walk(a.value, self)
            return False

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            for d in n.decorators:
                walk(d, self)
            walk(n.params, self)
            walk(n.body, self)
            return False

        def visit_Attribute(self, n: cst.Attribute) -> bool:
            walk(n.value, self)
            return False

        def visit_Arg(self, n: cst.Arg) -> bool:
            walk(n.value, self)
            return False

        def visit_Param(self, n: cst.Param) -> bool:
            if n.default is not None:
                walk(n.default, self)
            return False

        def visit_Name(self, n: cst.Name) -> None:
            if n.value == name:
                found.append(n)

    walk(scope_node.body, V())
    return bool(found)


def _first_position(positions: dict, node):
    """The source position of node, or of its first descendant that has one (nodes a pass built have none)."""
    pos = positions.get(node)
    if pos is not None:
        return pos
    for child in node.children:
        pos = _first_position(positions, child)
        if pos is not None:
            return pos
    return None


class _NameSwap(Transformer):
    def __init__(self, mapping: dict) -> None:
        self.mapping = mapping

    def leave_Name(self, original, updated):
        return self.mapping.get(original, updated)


class _Replacer(Transformer):
    """Puts keys into one statement's units (by node identity) and swaps in already-rewritten blocks."""

    def __init__(self, rw: _Rewriter, s: Scope, mapping: dict, suites: dict) -> None:
        super().__init__()
        self.rw = rw
        self.s = s
        self.mapping = mapping
        self.suites = suites
        self.calls: list[str] = []
        self.visiting: list = list(rw.here)  # where reports point: the draw call itself, mostly (rw.innermost)

    def on_visit(self, node) -> bool:
        if is_layout(type(node)):
            return False  # left as it is (walk.is_layout)
        self.visiting.append(node)
        if type(node) is cst.Call:
            self.calls.append(dotted(node.func) or "")
            if dotted(node.func) in GENERATOR_FUNCS:
                self.rw.report("T2J410", "torch.Generator -> t2j.Generator, a key stream: the draws that took "
                                         "generator= draw with its next_key(), so its seed decides them as in "
                                         "torch (other numbers than torch's); keep it out of jitted code",
                               where=self.rw.innermost(self.visiting))
            self._value_refs(node)
        if isinstance(node, cst.BaseSuite):
            return False  # blocks are rewritten by the rewriter (and swapped in by on_leave)
        if node in self.mapping and isinstance(node, (cst.Lambda, *COMPS)):
            return False
        if type(node) is cst.Lambda and node in self.rw.a.scope_of:
            return False
        return True

    def on_leave(self, original, updated):
        if is_layout(type(original)):
            return updated
        self.visiting.pop()
        if type(original) is cst.Call:
            self.calls.pop()
        if original in self.suites:
            return self.suites[original]
        if type(original) is cst.Lambda and original in self.rw.a.scope_of:
            return self.rw.named_lambda(original)
        if original not in self.mapping:
            return updated
        key = self.mapping[original]
        if is_placeholder(original):
            inner = self.calls[-1] if self.calls else ""
            last = inner.rsplit(".", 1)[-1]
            # a sampling function; not a layer's construction (the module pass's business) nor a user's function
            if inner.startswith(("jax.random.", "t2j.")) and not last[:1].isupper():
                self.rw.report("T2J401", f"{inner or 'draw'}: random stream differs from torch's: same "
                                         "distribution, different numbers", where=self.rw.innermost(self.visiting))
            return key.with_changes(lpar=original.lpar, rpar=original.rpar) if type(key) is cst.Name else key
        if type(original) is cst.Call:
            name = self.rw.a.call_key(original, self.s)
            return updated.with_changes(args=[*updated.args, _kwarg(name, key)])
        if isinstance(original, COMPS):
            first = transform(original.for_in.iter, self)
            return self.rw.comprehension(original, first, key, self.s)
        if type(original) is cst.Lambda:
            return self.rw.anon_lambda(original, key, self.s)
        return updated

    def _value_refs(self, call: cst.Call) -> None:
        """A key-taking local function passed as a value (map(f, xs)): callers unknown."""
        if dotted(call.func) in KEY_FORWARDING_CALLS or dotted(call.func) == "eqx.nn.make_with_state":
            return  # make_with_state(f)(..., key=k): the key goes to f through the call of its result
        for a in call.args:
            if type(a.value) is cst.Name:
                found = self.rw.a._lookup(a.value.value, self.s)
                if found and found[0] == "func" and found[1].needs_key and not found[1].closure:
                    self.rw.report("T2J406", f"{a.value.value} takes a key now, but it is passed as a value here: "
                                             "whoever calls it must pass key= (wrap it: "
                                             f"functools.partial({a.value.value}, key=...))", where=self.rw.innermost(self.visiting))


def _mode_switch_of(value, name: str) -> bool:
    """`eqx.nn.inference_mode(name, ...)`: the same model in another mode."""
    return type(value) is cst.Call and dotted(value.func) == "eqx.nn.inference_mode" and bool(value.args) \
        and type(value.args[0].value) is cst.Name and value.args[0].value.value == name


def _grows_list(call: cst.Call) -> bool:
    return type(call.func) is cst.Attribute and call.func.attr.value in ("append", "extend") \
        and type(call.func.value) is cst.Name and len(call.args) == 1 and not call.args[0].keyword \
        and not call.args[0].star


def _add_kwonly(fn: cst.FunctionDef | None, params: cst.Parameters, name: str,
                default: cst.BaseExpression | None) -> cst.Parameters:
    """`def f(a, b)` -> `def f(a, b, *, key)`, keeping a multi-line, trailing-comma layout."""
    equal = cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")) \
        if default is not None else cst.MaybeSentinel.DEFAULT
    new = cst.Param(cst.Name(name), default=default, equal=equal)
    has_star = type(params.star_arg) in (cst.Param, cst.ParamStar)
    seq = [*params.posonly_params, *params.params]
    if has_star:
        seq.append(params.star_arg)
    seq += list(params.kwonly_params)
    star_kwarg = params.star_kwarg
    last = star_kwarg if type(star_kwarg) is cst.Param else (seq[-1] if seq else None)
    multiline = (fn is not None and last is not None and type(last.comma) is cst.Comma
                 and type(last.comma.whitespace_after) is cst.ParenthesizedWhitespace
                 and type(fn.whitespace_before_params) is cst.ParenthesizedWhitespace)
    star = None if has_star else cst.ParamStar()
    kwonly = list(params.kwonly_params)
    if multiline:
        sep = cst.Comma(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=fn.whitespace_before_params)
        if type(star_kwarg) is cst.Param:
            new = new.with_changes(comma=sep)
            if star is not None:
                star = star.with_changes(comma=sep)
        else:
            trailing = last.comma
            new = new.with_changes(comma=trailing)
            if star is not None:
                star = star.with_changes(comma=sep)
            # the old last parameter now separates instead of closing
            if kwonly:
                kwonly[-1] = kwonly[-1].with_changes(comma=sep)
            elif has_star:
                params = params.with_changes(star_arg=params.star_arg.with_changes(comma=sep))
            elif params.params:
                ps = list(params.params)
                ps[-1] = ps[-1].with_changes(comma=sep)
                params = params.with_changes(params=ps)
            elif params.posonly_params:
                ps = list(params.posonly_params)
                ps[-1] = ps[-1].with_changes(comma=sep)
                params = params.with_changes(posonly_params=ps)
    kwonly.append(new)
    changes = {"kwonly_params": kwonly}
    if star is not None:
        changes["star_arg"] = star
    return params.with_changes(**changes)
