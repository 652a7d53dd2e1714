"""Rewrites torch calls, Tensor methods and torch attributes with the mapping tables (mappings/*.toml)."""
from __future__ import annotations

import libcst as cst

from torch2jax.mappings import Record
from torch2jax.transform import handlers
from torch2jax.transform.base import FileContext, Pass
from torch2jax.transform.codegen import code_of
from torch2jax.transform.names import dotted
from torch2jax.transform.positions import CopiedCalls
from torch2jax.transform.training_facts import MODULE_METHODS_CHAINED
from torch2jax.transform.templates import (BindError, Bound, bind, carry_layout, choose, expression, paren, parsed,
                                          render)
from torch2jax.transform.transforms import _Rename
from torch2jax.transform.walk import Visitor, find_all, iter_statements, transform, walk

# Short names a template may use, and the import each needs (imports.py adds them).
IMPORT_ROOTS = ("jnp", "jax", "lax", "eqx", "optax", "t2j", "np", "math")
KEY_PLACEHOLDER = "__t2j_key__"
# Tensor method names that builtin types share: only rewritten when the call does not look like str/list/set/dict use.
BUILTIN_CLASH = frozenset({"split", "index", "count", "add", "sort", "copy", "type", "item", "remove", "clear",
                           "update", "pop", "join", "lower", "upper", "strip", "replace", "get", "keys", "values",
                           "items", "append", "extend", "insert", "format", "startswith", "endswith", "find",
                           "all", "any", "max", "min", "sum", "mean", "abs", "round", "repeat", "view", "apply",
                           "float", "double", "half", "int", "long", "bool", "to", "cuda", "cpu", "numpy",
                           "flip", "exp", "log", "fill_", "zero_", "clone", "mul", "div", "sub", "pow"})
# Tensor methods whose first argument may be a string literal: x.type("torch.LongTensor"), x.to("cuda")
STRING_ARG_METHODS = frozenset({"type", "to", "cuda"})
NON_TENSOR_LITERALS = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Dict,
                       cst.Set, cst.ListComp, cst.DictComp, cst.SetComp, cst.Tuple, cst.Integer, cst.Float)


# Builtins that convert a one-element tensor to a Python number. torch takes any one-element tensor; JAX's
# int()/float()/bool()/complex() take only a scalar (ndim 0) array, jax.Array.item() any one-element one.
SCALAR_BUILTINS = frozenset({"int", "float", "bool", "complex"})
# What the translation of a torch call renders that is a JAX array: calls of these (but for the ones below)
ARRAY_FUNC_PREFIXES = ("jnp.", "jax.numpy.", "jax.random.", "jax.nn.", "jax.lax.", "lax.", "t2j.nn.functional.")
NON_ARRAY_FUNCS = frozenset({f"{ns}.{f}" for ns in ("jnp", "jax.numpy") for f in (
    "shape", "ndim", "size", "issubdtype", "iscomplexobj", "isrealobj", "isscalar", "result_type", "finfo", "iinfo",
    "dtype", "promote_types", "can_cast", "broadcast_shapes")})
# Methods that a translation renders on an array, whose result is an array (x.float() -> x.astype(jnp.float32))
ARRAY_METHODS = frozenset({"astype", "reshape", "transpose", "flatten", "ravel", "squeeze", "clip", "round", "conj"})


# `<name>.data` is not a tensor's data when the name says it holds data (a dataset, a loader, a batch object)
DATA_HOLDER_WORDS = ("dataset", "loader", "set", "batch", "sample", "graph", "args", "config", "cfg")
METADATA_ATTRS = frozenset({"shape", "dtype", "ndim"})


# a module's dtype casts: the runtime's layers hold float32 arrays (half and double need an explicit cast)
MODULE_CASTS = {"float": "float32", "double": "float64", "half": "float16", "bfloat16": "bfloat16"}


def _module_names(module: cst.Module, pass_) -> set[str]:
    """Names the file binds to a module it builds (`net = Net()`, `lin = nn.Linear(3, 1).double()`)."""
    names: set[str] = set()
    for node in iter_statements(module):  # assignments are statements: no expression needs reading
        if type(node) is not cst.Assign:
            continue
        value = node.value
        while type(value) is cst.Call and type(value.func) is cst.Attribute \
                and value.func.attr.value in MODULE_METHODS_CHAINED:
            value = value.func.value
        if type(value) is not cst.Call:
            continue
        qual = pass_.scopes.qualname(value.func) or ""
        if dotted(value.func) in pass_.ctx.module_facts.classes or (
                qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper()):
            names.update(t.target.value for t in node.targets if type(t.target) is cst.Name)
    return names


def _placement_call(expr: cst.Expr) -> bool:
    call = expr.value
    return type(call) is cst.Call and type(call.func) is cst.Attribute \
        and call.func.attr.value in ("to", "cuda", "cpu") and dotted(call.func.value) is not None \
        and all(a.keyword is None or a.keyword.value in ("device", "memory_format", "non_blocking")
                for a in call.args)


# nn.Module's listings of its parameters, iterated in comprehensions (`sum(p.numel() for p in model.parameters())`),
# read with next(), or passed on (an optimizer's param groups, `list(...)`, parameters_to_vector): an Equinox module
# has no such methods, the runtime lists the same arrays under the same names. Not buffers(): BatchNorm's statistics
# live in Equinox state, which t2j.named_buffers(model) cannot see.
PARAMETER_LISTINGS = ("parameters", "named_parameters")


def _listing(node) -> tuple[str, str] | None:
    """`model.parameters()` (no arguments, a receiver other than self) -> ("parameters", "model"); the receiver
    may index a container (`model[0].parameters()`)."""
    if not (type(node) is cst.Call and type(node.func) is cst.Attribute and not node.args
            and node.func.attr.value in PARAMETER_LISTINGS):
        return None
    root = node.func.value
    while type(root) in (cst.Attribute, cst.Subscript):
        if type(root) is cst.Subscript and not all(type(e.slice) is cst.Index for e in root.slice):
            return None
        root = root.value
    if type(root) is not cst.Name or root.value == "self":
        return None
    return node.func.attr.value, code_of(node.func.value)


def _listings_in(node: cst.CSTNode) -> list[cst.Call]:
    """The parameter listings under node (`zip(ema.parameters(), model.parameters())`)."""
    found = []

    class V(Visitor):
        def visit_Call(self, n: cst.Call) -> None:
            if _listing(n) is not None:
                found.append(n)

    walk(node, V())
    return found


def _loop_names(target) -> list[str]:
    if type(target) in (cst.Tuple, cst.List):
        return [n for e in target.elements for n in _loop_names(e.value)]
    return [target.value] if type(target) is cst.Name else []


def _lists_parameters(node) -> bool:
    """model.parameters() / named_parameters() (self's too), or the runtime's t2j.parameters(...) forms."""
    if type(node) is not cst.Call:
        return False
    if type(node.func) is cst.Attribute and not node.args and node.func.attr.value in PARAMETER_LISTINGS:
        return True
    return dotted(node.func) in ("t2j.parameters", "t2j.named_parameters")


def _without_requires_grad(comp: cst.CompFor) -> list:
    """comp's `if` clauses without `if p.requires_grad` on its (last) loop variable: every listed array is trained."""
    target = comp.target.elements[-1].value if type(comp.target) is cst.Tuple else comp.target
    if type(target) is not cst.Name:
        return list(comp.ifs)
    return [c for c in comp.ifs if dotted(c.test) != f"{target.value}.requires_grad"]


def _assigned_paths(node: cst.CSTNode) -> set:
    """What `path = ...` (or an augmented assignment) assigns under node: the dotted paths (None for others)."""
    return {dotted(n.target) for n in find_all(node, cst.AssignTarget, cst.AugAssign)}


def is_torch(qual: str | None) -> bool:
    return qual is not None and (qual == "torch" or qual.startswith("torch."))


class OpsPass(Pass):
    def __init__(self, ctx: FileContext, non_tensor_names: set[str] | None = None) -> None:
        super().__init__(ctx)
        self.tables = ctx.tables
        self.scopes = ctx.scopes
        self.call_funcs: set[cst.CSTNode] = set()
        self.inner: set[cst.CSTNode] = set()
        self.discarded: set[cst.CSTNode] = set()  # calls whose value is thrown away (expression statements)
        self.non_tensor_names = non_tensor_names or set()
        self.metadata_reads: set[cst.CSTNode] = set()  # `x.data` in `x.data.shape`, `x.data.zero_()`: kept as x
        self.store_targets: set[cst.CSTNode] = set()
        self.parameter_collections: set[str] = set()  # names bound to a comprehension over a model's parameters
        # parameter listings that leave_Call leaves alone: rewritten by what uses them (a loop, a comprehension,
        # next(), an optimizer's handler, which drops its first argument), or kept (a loop that writes them)
        self.placed_listings: set[cst.Call] = set()
        self.module: cst.Module | None = None
        self.module_names: set[str] | None = None  # names bound to modules, for model.double() (_module_cast)
        self.translated: set[cst.CSTNode] = set()  # what torch calls and Tensor method calls became
        # source positions for torch calls that an earlier pass copied as text (no position)
        self.copied_calls: CopiedCalls | None = None
        self.user_methods: set[str] | None = None  # methods of the file's module classes (_user_method_call)
        # a statement with neither an imported name (torch, F, nn...) nor an attribute named like a Tensor method or
        # attribute (x.view, x.shape, x.data) has nothing to map, and neither has an expression
        self.words = self.expression_words = set(ctx.scopes.aliases) | {"." + m for m in ctx.tables.methods} | {
            ".data", ".requires_grad"} | {"." + m for m in PARAMETER_LISTINGS}

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    # --- bookkeeping on the way down
    def visit_Module(self, node: cst.Module) -> None:
        self.module = node

    def visit_Import(self, node) -> bool:
        return False

    def visit_ImportFrom(self, node) -> bool:
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.push(node)

    def leave_FunctionDef(self, original, updated):
        self.scopes.pop()
        return updated

    def visit_Call(self, node: cst.Call) -> None:
        if node not in self.ctx.positions and self._translatable(node) and self.module is not None:
            if self.copied_calls is None:
                self.copied_calls = CopiedCalls(self.ctx.positions, self.module)
            pos = self.copied_calls.position(node)
            if pos is not None:  # this pass's reports, and the randomness pass's (T2J401), point at the torch call
                self.ctx.positions[node] = pos
        self.call_funcs.add(node.func)
        self._place_listings(node)
        func = node.func
        if type(func) is cst.Attribute and func.attr.value.endswith("_") and type(func.value) is cst.Attribute:
            self.metadata_reads.add(func.value)  # x.data.uniform_(): only x's shape and dtype are read
        if node.args and (self.scopes.qualname(func) or "").startswith("torch.nn.init.") \
                and type(node.args[0].value) is cst.Attribute:
            self.metadata_reads.add(node.args[0].value)  # nn.init.normal_(m.weight.data): a fill of that shape

    def _place_listings(self, node: cst.Call) -> None:
        """next(model.parameters()) is rewritten as a whole; so is torch.optim.X(model.parameters(), ...) (and
        with list(...) / filter(...) around it): its handler drops the listing, optimizing the model given to init."""
        if dotted(node.func) == "next" and len(node.args) in (1, 2):
            self.placed_listings.add(node.args[0].value)
        record = self.tables.records.get(self.scopes.qualname(node.func) or "")
        if record is None or record.handler != "optimizer_params":
            return
        arg = next((a for a in node.args if a.keyword is not None and a.keyword.value == "params"),
                   node.args[0] if node.args and node.args[0].keyword is None and not node.args[0].star else None)
        inner = arg.value if arg is not None else None
        if type(inner) is cst.Call and dotted(inner.func) in ("list", "filter") and inner.args:
            inner = inner.args[-1].value
        if inner is not None:
            self.placed_listings.add(inner)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.placed_listings.add(node.iter)

    def visit_For(self, node: cst.For) -> None:
        """`for pe, pm in zip(ema.parameters(), model.parameters()): pe.copy_(...)`: a loop that writes what it
        lists cannot update the Equinox model in place; its listings stay, to fail loudly."""
        self.placed_listings.add(node.iter)
        if not _assigned_paths(node.body).isdisjoint(_loop_names(node.target)):
            self.placed_listings.update(_listings_in(node.iter))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in METADATA_ATTRS and type(node.value) is cst.Attribute:
            self.metadata_reads.add(node.value)
        self.inner.add(node.value)
        self.inner.add(node.attr)  # `x.grad` / `jax.grad` when `grad` is imported from torch.func: not a reference

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self.store_targets.add(node.target)  # `p.data = v` stays an assignment (the module-updates pass's business)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.store_targets.add(node.target)

    def visit_Expr(self, node: cst.Expr) -> None:
        self.discarded.add(node.value)

    # --- rewrites on the way up
    def leave_SimpleStatementLine(self, original, updated):
        """`model.to(device)` / `model.cuda()` as a statement: torch moves the module in place; JAX places arrays
        on its default device, so there is nothing left to do."""
        if len(original.body) == 1 and type(original.body[0]) is cst.Expr and self._module_cast(
                original.body[0].value):
            self._drop_module_cast(original.body[0].value, original)
            return cst.RemoveFromParent()
        if len(original.body) == 1 and type(original.body[0]) is cst.Expr and _placement_call(original.body[0]):
            self.report("T2J103", f"{code_of(original.body[0].value.func)}() dropped: JAX "
                                  "places arrays on its default device", original)
            return cst.RemoveFromParent()
        return updated

    def visit_Assign(self, node: cst.Assign) -> None:
        """`param_dict = {pn: p for pn, p in self.named_parameters()}` (nanoGPT): a dict of the model's parameters,
        whose items a later comprehension filters by requires_grad."""
        value = node.value
        if len(node.targets) == 1 and type(node.targets[0].target) is cst.Name \
                and type(value) in (cst.DictComp, cst.ListComp) and _lists_parameters(value.for_in.iter):
            self.parameter_collections.add(node.targets[0].target.value)

    def leave_CompFor(self, original: cst.CompFor, updated: cst.CompFor) -> cst.CompFor:
        """`for p in model.parameters() if p.requires_grad` in a comprehension -> `for p in t2j.parameters(model)`:
        the runtime lists the trained arrays only, so a requires_grad filter on the loop variable goes too (also
        over a dict of them: `for pn, p in param_dict.items() if p.requires_grad`)."""
        listing = _listing(original.iter)
        it = original.iter
        if listing is None and type(it) is cst.Call and type(it.func) is cst.Attribute and not it.args \
                and it.func.attr.value in ("items", "values") and dotted(it.func.value) in self.parameter_collections:
            return updated.with_changes(ifs=_without_requires_grad(updated))
        if listing is None:
            return updated
        method, owner = listing
        self.need("t2j")
        self.report("T2J514", f"{owner}.{method}() -> t2j.{method}({owner}): the Equinox model's arrays, torch's "
                              "names and order", original)
        return updated.with_changes(iter=cst.parse_expression(f"t2j.{method}({owner})"),
                                    ifs=_without_requires_grad(updated))

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        """`for name, p in model.named_parameters(): print(...)`: a loop that only reads them (the module-updates
        and training passes turned the loops that write them into functional updates already)."""
        listing = _listing(original.iter)
        if listing is None:
            return updated
        target = updated.target.elements[-1].value if type(updated.target) is cst.Tuple else updated.target
        flag = f"{target.value}.requires_grad" if type(target) is cst.Name else None
        if flag is not None and flag in _assigned_paths(original.body):
            return updated  # `p.requires_grad = False`: freezing, which the runtime's listing cannot express
        method, owner = listing
        self.need("t2j")
        self.report("T2J514", f"{owner}.{method}() -> t2j.{method}({owner}): the Equinox model's arrays, torch's "
                              "names and order", original)
        body = transform(updated.body, _Rename(flag, "True", self.ctx.positions)) if flag is not None else updated.body
        return updated.with_changes(iter=cst.parse_expression(f"t2j.{method}({owner})"), body=body)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if original not in self.placed_listings and _listing(original) is not None:
            return self._passed_listing(original)
        result = self._translate_call(original, updated)
        if result is not updated and isinstance(result, cst.BaseExpression):
            self.translated.add(result)
        return result

    def _passed_listing(self, original: cst.Call) -> cst.BaseExpression:
        """`{"params": model.trunk.parameters(), "lr": 1e-3}` in an optimizer's param groups,
        `list(model.parameters())`, parameters_to_vector(model.parameters()): the runtime's list of the same arrays
        (a param group finds them in the model given to init by identity)."""
        method, owner = _listing(original)
        self.need("t2j")
        self.report("T2J514", f"{owner}.{method}() -> t2j.{method}({owner}): the Equinox model's arrays, torch's "
                              "names and order", original)
        return cst.parse_expression(f"t2j.{method}({owner})")

    def _module_cast(self, call: cst.CSTNode) -> bool:
        """`model.float()` / `nn.Linear(3, 1).double()`: a dtype cast of a module (not of a tensor)."""
        if not (type(call) is cst.Call and type(call.func) is cst.Attribute and not call.args
                and call.func.attr.value in MODULE_CASTS):
            return False
        receiver = call.func.value
        while type(receiver) is cst.Call and type(receiver.func) is cst.Attribute \
                and receiver.func.attr.value in MODULE_METHODS_CHAINED:
            receiver = receiver.func.value  # Net().to(device).double()
        if type(receiver) is cst.Call:
            qual = self.scopes.qualname(receiver.func) or ""
            return dotted(receiver.func) in self.ctx.module_facts.classes or (
                qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper())
        if self.module_names is None:  # found once, when a module cast is first asked about
            self.module_names = _module_names(self.module, self) if self.module is not None else set()
        return dotted(receiver) in self.module_names

    def _drop_module_cast(self, call: cst.Call, node) -> None:
        method = call.func.attr.value
        if method == "float":
            self.note("T2J109", "module .float() dropped: float32 is already the runtime layers' dtype", node)
            return
        how = "needs jax_enable_x64" if method == "double" else "needs a cast of the model's arrays (jax.tree.map)"
        self.report("T2J109", f"module .{method}() dropped: its parameters stay float32 ({MODULE_CASTS[method]} "
                              f"{how})", node)

    def _translate_call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self._module_cast(original):
            self._drop_module_cast(original, original)
            return updated.func.value
        if type(original.func) is cst.Name and original.func.value in SCALAR_BUILTINS:
            return self._scalar_conversion(original, updated)
        if type(original.func) is cst.Name and original.func.value == "next" and len(original.args) in (1, 2) \
                and _listing(original.args[0].value) is not None:
            method, owner = _listing(original.args[0].value)
            self.need("t2j")
            self.report("T2J514", f"{owner}.{method}() -> t2j.{method}({owner}): the Equinox model's arrays, torch's "
                                  "names and order", original)
            return updated.with_changes(args=[updated.args[0].with_changes(
                value=cst.parse_expression(f"iter(t2j.{method}({owner}))")), *updated.args[1:]])
        feature = self._feature_test(original)
        if feature is not None:
            return feature
        if self._layer_by_name(original.func):
            return self._layer_by_name_call(original, updated)
        qual = self.scopes.qualname(original.func)
        if qual is not None:
            if not is_torch(qual):
                return updated
            record = self.tables.records.get(qual)
            if record is None or record.attr:
                self.report("T2J101", f"{qual} has no JAX mapping", original)
                return updated
            return self.apply(record, updated, None, qual)
        func = original.func
        if type(func) is cst.Attribute:
            record = self.tables.methods.get(func.attr.value)
            if record is not None and not record.attr and self.tensor_receiver(func.value, original) \
                    and not self._user_method_call(record, updated):
                return self.apply(record, updated, updated.func.value, f"Tensor.{func.attr.value}")
        return updated

    def _user_method_call(self, record: Record, call: cst.Call) -> bool:
        """`layer.inverse(x)` where a module class of the file defines `inverse` and the arguments do not fit the
        Tensor method of that name: the module's method."""
        if self.user_methods is None:
            facts = self.ctx.module_facts
            self.user_methods = {m for c in facts.classes.values() for m in c.method_calls} if facts else set()
        if call.func.attr.value not in self.user_methods:
            return False
        try:
            bind(record, list(call.args), call.func.value)
        except BindError:
            return True
        return False

    def _layer_by_name(self, node: cst.BaseExpression) -> bool:
        """`getattr(nn, rnn_type)`: a torch.nn layer class looked up by a name known at run time."""
        return type(node) is cst.Call and dotted(node.func) == "getattr" and len(node.args) == 2 \
            and self.scopes.qualname(node.args[0].value) in ("torch.nn", "torch.nn.modules")

    def _layer_by_name_call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        """`getattr(nn, name)(args)` -> `getattr(t2j.nn, name)(args, key=...)`: the runtime's layer of that name,
        which takes torch's arguments (and a key, as every t2j.nn layer but Sequential)."""
        self.need("t2j")
        lookup = updated.func.with_changes(args=[updated.func.args[0].with_changes(
            value=cst.parse_expression("t2j.nn")), *updated.func.args[1:]])
        args = list(updated.args)
        if not any(a.keyword is not None and a.keyword.value == "key" for a in args):
            if args:
                args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            args.append(cst.Arg(cst.Name(KEY_PLACEHOLDER), keyword=cst.Name("key"),
                                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
        self.report("T2J108", f"{code_of(original.func)}: the torch.nn layer named at run time "
                              "becomes the runtime layer of that name (t2j.nn); a name it lacks raises AttributeError "
                              "there", original)
        return updated.with_changes(func=lookup, args=args)

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if original.attr.value == "data" and original not in self.store_targets and self._tensor_data(original):
            return self._detached(original, updated)
        if original in self.call_funcs:
            return updated
        if original in self.inner:  # `x.device.type`: only a tensor attribute that reads as something else
            record = self.tables.methods.get(original.attr.value)
            if record is not None and record.attr and record.templates != (f"self.{original.attr.value}",) \
                    and self.scopes.qualname(original) is None and self.tensor_receiver(original.value, original):
                return self.apply(record, updated, updated.value, f"Tensor.{original.attr.value}")
            return updated
        qual = self.scopes.qualname(original)
        if qual is not None:
            return self.reference(qual, original, updated)
        record = self.tables.methods.get(original.attr.value)
        if record is not None and record.attr and self.tensor_receiver(original.value, original):
            return self.apply(record, updated, updated.value, f"Tensor.{original.attr.value}")
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original in self.inner or original in self.call_funcs:
            return updated
        qual = self.scopes.qualname(original)
        if qual is not None and qual != original.value and "." in qual:
            return self.reference(qual, original, updated)
        return updated

    # --- int(t), float(t), bool(t), complex(t)
    def _scalar_conversion(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        """`int(torch.randint(0, 4, (1,)))` -> `int(jax.random.randint(key, (1,), 0, 4).item())`: torch converts
        any one-element tensor, JAX's int() only a scalar array; .item() takes any one-element array. Only where
        the argument is what a torch call or Tensor method call became (an array): a Python number stays as it is,
        and so does an argument that already ends in .item() (translating the output again changes nothing)."""
        if len(updated.args) != 1 or updated.args[0].keyword is not None or updated.args[0].star \
                or self.scopes.qualname(original.func) is not None:
            return updated  # int(s, 16), or a name the file imports or binds at module level
        value = updated.args[0].value
        if not self._translated_array(value):
            return updated
        if type(value) in (cst.BinaryOperation, cst.UnaryOperation) and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        item = cst.Call(cst.Attribute(value, cst.Name("item")))
        return updated.with_changes(args=[updated.args[0].with_changes(value=item)])

    def _translated_array(self, node: cst.BaseExpression) -> bool:
        """Whether node is a JAX array that this pass translated from torch: a translated call that renders an
        array, or an item of one (`jnp.argmax(x, axis=1, keepdims=True)[0]`)."""
        while type(node) is cst.Subscript:
            node = node.value
        return node in self.translated and _renders_array(node)

    # --- source positions of copied calls
    def _translatable(self, call: cst.Call) -> bool:
        """A torch call, or what may be a Tensor method call: what leave_Call may translate."""
        if is_torch(self.scopes.qualname(call.func)):
            return True
        return type(call.func) is cst.Attribute and call.func.attr.value in self.tables.methods

    # --- helpers
    def _feature_test(self, call: cst.Call) -> cst.BaseExpression | None:
        """`hasattr(torch.nn.functional, "scaled_dot_product_attention")`, a torch-version test: True when the
        translation maps that name (the code it guards is then translated), else False."""
        if not (type(call.func) is cst.Name and call.func.value == "hasattr" and len(call.args) == 2
                and type(call.args[1].value) is cst.SimpleString):
            return None
        owner = self.scopes.qualname(call.args[0].value)
        if owner is None or not is_torch(owner):
            return None
        name = f"{owner}.{call.args[1].value.evaluated_value}"
        found = name in self.tables.records
        self.note("T2J100", f"hasattr({owner}, ...) -> {found}: {name} is {'' if found else 'not '}mapped")
        return cst.Name("True" if found else "False")

    def _tensor_data(self, node: cst.Attribute) -> bool:
        """`p.data`, `m.weight.data`: a tensor's data, not `dataset.data` or `batch.data`."""
        path = dotted(node.value)
        if path is None:
            return type(node.value) in (cst.Call, cst.Subscript)
        last = path.split(".")[-1].lower()
        return path.split(".")[0] not in self.scopes.aliases and path != "self" and not any(
            word in last for word in DATA_HOLDER_WORDS)

    def _detached(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        """`x.data` is x without autograd history: jax.lax.stop_gradient(x); just x where only its shape,
        dtype or size is read."""
        if original in self.metadata_reads:
            self.report("T2J106", ".data dropped: only its shape and dtype are read", original)
            return updated.value
        self.report("T2J106", ".data -> jax.lax.stop_gradient: JAX differentiates only what a transformation asks "
                              "for", original)
        self.need("jax")
        return cst.parse_expression(f"jax.lax.stop_gradient({code_of(updated.value)})")

    def reference(self, qual: str, original, updated) -> cst.BaseExpression:
        """A torch name used as a value: a constant (torch.float32) or a function passed around (F.relu)."""
        if not is_torch(qual):
            return updated
        record = self.tables.records.get(qual)
        if record is None:
            if qual.count(".") >= 1 and qual not in self.tables.namespaces:
                self.report("T2J101", f"{qual} has no JAX mapping", original)
            return updated
        if record.attr:
            return self.apply(record, updated, None, qual)
        target = function_alias(record)
        if target is None:
            self.report("T2J102", f"{qual} is used as a value; only calls of it can be translated", original)
            return updated
        self.need_for(record.templates[0])
        return expression(target)

    def tensor_receiver(self, receiver: cst.BaseExpression, call: cst.CSTNode) -> bool:
        """Whether `receiver.method(...)` is plausibly a Tensor method call and not numpy/str/list/module use."""
        path = dotted(receiver)
        if path is not None:
            head = path.split(".")[0]
            if head in self.scopes.aliases or head in self.scopes.rebound or head in self.non_tensor_names \
                    or path == "self":
                return False  # a module (even when a local of the same name shadows it), not a tensor
        if isinstance(receiver, NON_TENSOR_LITERALS):
            return False
        if type(receiver) is cst.Subscript and type(receiver.value) is cst.Attribute \
                and receiver.value.attr.value == "at":
            return False  # x.at[i].add(v), x.at[i].min(v): JAX's functional update, already translated
        name = call.func.attr.value if type(call) is cst.Call else call.attr.value
        if name in BUILTIN_CLASH and type(call) is cst.Call:
            if call in self.discarded and not name.endswith("_"):
                return False  # list.sort(), set.add(x), dict.update(...): a tensor method's result is never dropped
            first = call.args[0].value if call.args else None
            if type(first) in (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString) \
                    and name not in STRING_ARG_METHODS:
                return False  # str.split(","), "".join(...)
        return True

    def apply(self, record: Record, node, receiver, label: str) -> cst.BaseExpression:
        args = list(node.args) if type(node) is cst.Call else []
        try:
            bound = bind(record, args, receiver)
        except BindError as e:
            self.report("T2J102", str(e), node)
            return node
        if record.handler:
            result = getattr(handlers, record.handler)(self, record, bound, node)
            if result is not None:
                return result
        template = choose(record, bound)
        if template is None:
            given = ", ".join(sorted(bound.given - {record.params[0].name} if receiver is not None else bound.given))
            self.report("T2J102", f"this form of {label} ({given or 'no arguments'}) is not supported", node)
            return node
        out = self.emit(record, template, bound)
        return carry_layout(node, out) if type(node) is cst.Call else out

    def emit(self, record: Record, template: str, bound: Bound) -> cst.BaseExpression:
        params = {p.name for p in record.params}
        extra = {"KEY": cst.Name(KEY_PLACEHOLDER)}  # the randomness pass puts a fresh subkey here
        generator = bound.args.get("generator")
        if "KEY" in template and generator is not None and not (
                type(generator) is cst.Name and generator.value == "None"):
            # torch.randint(..., generator=g): the draw takes the next key of g's own stream (t2j.Generator), so
            # what g's seed decides stays decided by it
            extra["KEY"] = cst.Call(cst.Attribute(paren(generator), cst.Name("next_key")))
        self.need_for(template)
        if record.safety == "unsafe":
            self.report("T2J104", f"{record.name}: {record.note}")
        else:
            self.note("T2J100", f"{record.name} -> {template.split('(')[0]} (mappings/{record.source})")
        out = render(template, bound, params, extra)
        if bound.kwargs and type(out) is cst.Call:  # pass_kwargs: `**options` as the last argument
            args = list(out.args)
            if args:
                args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            out = out.with_changes(args=[*args, *(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)
                                                  for a in bound.kwargs)])
        return out

    def need_for(self, template: str) -> None:
        _, _, used = parsed(template)
        self.need(*(used & set(IMPORT_ROOTS)))


def _renders_array(node: cst.BaseExpression) -> bool:
    """Whether a translation's output is a JAX array by its form: `jnp.sum(x)`, `jax.random.normal(...)`,
    `x.astype(jnp.float32)`, `mean + std * jax.random.normal(...)`; not `x.shape[0]`, `x.size`, `x.item()`."""
    tp = type(node)
    if tp is cst.Call:
        name = dotted(node.func)
        if name is not None and name.startswith(ARRAY_FUNC_PREFIXES):
            return name not in NON_ARRAY_FUNCS
        return type(node.func) is cst.Attribute and node.func.attr.value in ARRAY_METHODS
    if tp is cst.Subscript:
        return _renders_array(node.value)
    if tp is cst.BinaryOperation:
        return _renders_array(node.left) or _renders_array(node.right)
    if tp is cst.UnaryOperation:
        return type(node.operator) is not cst.Not and _renders_array(node.expression)
    return False


def function_alias(record: Record) -> str | None:
    """`jax.nn.relu` when the record's first template is `jax.nn.relu(p1, p2, ..., k=k, key=KEY)`: the target
    takes torch's arguments in torch's order, so the function itself can stand for torch's (F.relu passed as a
    value, nn.Linear in isinstance)."""
    expr, _, _ = parsed(record.templates[0]) if record.templates else (None, None, None)
    if type(expr) is not cst.Call or dotted(expr.func) is None:
        return None
    params = [("*" if p.kind == "var" else "") + p.name for p in record.params if p.kind != "kw"]
    positional = [a for a in expr.args if a.keyword is None]
    names = [a.star + a.value.value if type(a.value) is cst.Name else None for a in positional]
    if names != params[: len(names)]:
        return None
    for a in expr.args:
        if a.keyword is not None and not (type(a.value) is cst.Name
                                          and a.value.value in (a.keyword.value, "KEY")):
            return None
    return dotted(expr.func)
