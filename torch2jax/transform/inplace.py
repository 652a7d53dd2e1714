"""In-place updates become functional ones with the same result.

Runs before the ops pass and writes torch-level code that the ops pass then translates with the tables:

    z.sub_(a).div_(b)          ->  z = z.sub(a).div(b)
    x.clamp_(min=0)            ->  x = x.clamp(min=0)
    x.zero_() / x.fill_(v)     ->  x = torch.zeros_like(x) / x = torch.full_like(x, v)
    y.copy_(src)               ->  y = torch.broadcast_to(src, y.shape).to(y.dtype)
    x.normal_()                ->  x = x.normal_()          (a random record computes the new value with a key)
    x[2:5] = 0                 ->  x = x.at[2:5].set(0)
    out[:, 0] += v             ->  out = out.at[:, 0].add(v)
    x[i][j] = v                ->  x = x.at[i, j].set(v)
    y[y < 0] = 0.0             ->  y = torch.where(y < 0, 0.0, y)
    self.buf[i] = v            ->  self.buf = self.buf.at[i].set(v)
    torch.add(a, b, out=c)     ->  c = torch.add(a, b)
    F.relu(x, inplace=True)    ->  x = F.relu(x, inplace=True)      (the ops pass drops `inplace`)
    y = x.add_(1) * 2          ->  x = x.add(1)
                                   y = x * 2

Aliasing: torch tensors are shared objects, JAX arrays are values. After `y = x` (or a view: `y = x[0]`,
`y = x.view(-1)`, `y = x.t()`, a list `xs = [x, w]`) a mutation of one is seen through the others, so every
alias that is read later is rebound after the update (a plain alias is rebound, a view is recomputed, and a
mutated view writes itself back into its base). What cannot be made right (a caller's tensor, a list element
taken by a loop, a view with no inverse) gets a diagnostic on that line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import libcst as cst

from torch2jax.transform.base import Pass, add_marker
from torch2jax.transform.codegen import code_of
from torch2jax.transform.names import bound_in_function, dotted, self_calls
from torch2jax.transform.ops import BUILTIN_CLASH
from torch2jax.transform.positions import start_line
from torch2jax.transform.templates import BindError, bind, paren
from torch2jax.transform.walk import (AUGASSIGN, SETITEM, Transformer, Visitor, find_all, names_read, transform, walk,
                                      words)

# Tensor in-place methods of torch (beyond those named in the tables): recognised even without a record, so that
# a missing mapping is reported rather than left silently.
TORCH_INPLACE = frozenset("""
abs_ absolute_ acos_ acosh_ add_ addbmm_ addcdiv_ addcmul_ addmm_ addmv_ addr_ arccos_ arcsin_ arctan_ asin_ asinh_
atan_ atan2_ atanh_ baddbmm_ bernoulli_ bitwise_and_ bitwise_not_ bitwise_or_ bitwise_xor_ cauchy_ ceil_ clamp_
clamp_max_ clamp_min_ clip_ copy_ copysign_ cos_ cosh_ cumprod_ cumsum_ deg2rad_ detach_ digamma_ div_ divide_ eq_
erf_ erfc_ erfinv_ exp_ exp2_ expm1_ exponential_ fill_ fill_diagonal_ fix_ float_power_ floor_ floor_divide_ fmod_
frac_ gcd_ ge_ geometric_ greater_ greater_equal_ gt_ hardtanh_ heaviside_ hypot_ i0_ index_add_ index_copy_
index_fill_ index_put_ index_reduce_ lcm_ ldexp_ le_ leaky_relu_ lerp_ less_ less_equal_ lgamma_ log_ log10_ log1p_
log2_ log_normal_ logical_and_ logical_not_ logical_or_ logical_xor_ logit_ lt_ masked_fill_ masked_scatter_ mul_
multiply_ mvlgamma_ nan_to_num_ ne_ neg_ negative_ normal_ not_equal_ pow_ put_ rad2deg_ random_ reciprocal_ relu_
remainder_ renorm_ requires_grad_ resize_ resize_as_ round_ rsqrt_ scatter_ scatter_add_ scatter_reduce_ set_
sgn_ share_memory_ sigmoid_ sign_ sin_ sinc_ sinh_ sqrt_ square_ squeeze_ sub_ subtract_ swapaxes_ swapdims_ t_
tan_ tanh_ transpose_ tril_ triu_ true_divide_ trunc_ uniform_ unsqueeze_ xlogy_ zero_
""".split())
NO_OP_INPLACE = frozenset({"requires_grad_", "share_memory_"})
# torch.nn.functional / torch functions with an in-place twin `NAME_(input, ...)`
INIT_PREFIX = "torch.nn.init."

# views: a mutation of the view is a mutation of its base
IDENTITY_ATTRS = frozenset({"data"})
IDENTITY_CALLS = frozenset({"detach"})
RESHAPE_VIEWS = frozenset({"view", "reshape", "flatten", "ravel", "squeeze", "unsqueeze", "unflatten", "view_as",
                           "reshape_as"})
SELF_INVERSE_CALLS = frozenset({"t", "transpose", "swapaxes", "swapdims"})
SELF_INVERSE_ATTRS = frozenset({"T", "mT"})
OPAQUE_VIEWS = frozenset({"narrow", "select", "diagonal", "expand", "expand_as", "unfold", "as_strided", "real",
                          "imag", "movedim", "moveaxis", "indices", "values"})
MULTI_VIEWS = frozenset({"chunk", "split", "unbind", "tensor_split", "split_with_sizes", "hsplit", "vsplit"})

# the translations of torch's views: `t2j.narrow(x, ...)`, `jnp.reshape(x, ...)`, `jnp.swapaxes(x, ...)`
TRANSLATED_VIEW_PREFIXES = ("t2j.", "jnp.")
TRANSLATED_VIEWS = RESHAPE_VIEWS | SELF_INVERSE_CALLS | OPAQUE_VIEWS | MULTI_VIEWS | {"expand_dims", "broadcast_to"}


def _tree_at_field(key: str, value: cst.BaseExpression) -> tuple[str, cst.BaseExpression] | None:
    """`key = eqx.tree_at(lambda m: m.a.b, key, v)` -> ("key.a.b", v)."""
    if not (type(value) is cst.Call and dotted(value.func) == "eqx.tree_at" and len(value.args) >= 3
            and type(value.args[0].value) is cst.Lambda and dotted(value.args[1].value) == key):
        return None
    fn = value.args[0].value
    params = fn.params.params
    path = dotted(fn.body)
    if len(params) != 1 or path is None or not path.startswith(params[0].name.value + "."):
        return None
    return key + path[len(params[0].name.value):], value.args[2].value


def _translated_view(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """The base of a translated view call (its first positional argument), or None."""
    if type(node) is not cst.Call or not node.args or node.args[0].keyword is not None:
        return None
    name = dotted(node.func) or ""
    if not name.startswith(TRANSLATED_VIEW_PREFIXES) or name.rsplit(".", 1)[1] not in TRANSLATED_VIEWS:
        return None
    return node.args[0].value


# `x[idx] op= v` with a basic index -> `x.at[idx].<method>(v)`
AT_METHODS = {"+=": "add", "-=": "subtract", "*=": "multiply", "/=": "divide", "**=": "power"}
# `R.<name>(v)` on the view R as the new value of R -> `x.at[idx].<method>(v)`
AT_SHORTCUT = {"add": "add", "sub": "subtract", "subtract": "subtract", "mul": "multiply", "multiply": "multiply",
               "div": "divide", "divide": "divide", "true_divide": "divide", "pow": "power"}
BINOP_AT = {cst.Add: "add", cst.Subtract: "subtract", cst.Multiply: "multiply", cst.Divide: "divide",
            cst.Power: "power"}
AUG_TO_BINOP = {"+=": cst.Add, "-=": cst.Subtract, "*=": cst.Multiply, "/=": cst.Divide, "//=": cst.FloorDivide,
                "%=": cst.Modulo, "**=": cst.Power, "&=": cst.BitAnd, "|=": cst.BitOr, "^=": cst.BitXor,
                "<<=": cst.LeftShift, ">>=": cst.RightShift, "@=": cst.MatrixMultiply}

BOOL_CALLS = frozenset({"isnan", "isinf", "isfinite", "isneginf", "isposinf", "isclose", "logical_and", "logical_or",
                        "logical_not", "logical_xor", "eq", "ne", "lt", "gt", "le", "ge", "greater", "less",
                        "greater_equal", "less_equal", "not_equal", "bool", "isin", "signbit", "bernoulli"})
# Calls whose result may hold leading size-1 dims the slot it is assigned to does not have: torch's item assignment
# drops them (`tokens[t] = torch.multinomial(p, 1)`), JAX's .at[].set does not broadcast them away. A call with
# keepdim=True is one too.
LEADING_ONES_CALLS = frozenset({"multinomial", "unsqueeze", "topk", "kthvalue"})
INT_CALLS = frozenset({"len", "int", "round", "item", "size", "numel", "dim", "ndimension", "nelement", "argmax",
                       "argmin", "max", "min", "abs", "sum"})
NON_TENSOR_RESULTS = frozenset({"item", "tolist", "size", "dim", "numel", "ndimension", "nelement", "element_size",
                                "data_ptr", "is_contiguous", "stride", "storage_offset", "get_device", "equal",
                                "allclose", "is_floating_point", "is_complex", "parameters", "named_parameters",
                                "state_dict", "keys", "values", "items", "numpy"})
# methods that lists, dicts, sets and strings have too: not evidence that the receiver is a tensor
CONTAINER_METHODS = frozenset({"split", "index", "count", "add", "sort", "copy", "remove", "clear", "update", "pop",
                               "join", "lower", "upper", "strip", "replace", "get", "keys", "values", "items",
                               "append", "extend", "insert", "format", "startswith", "endswith", "find",
                               "setdefault", "reverse", "discard", "union", "intersection", "encode", "decode"})
CONTAINER_CALLS = frozenset({"list", "dict", "set", "tuple", "defaultdict", "OrderedDict", "deque", "Counter",
                             "collections.defaultdict", "collections.OrderedDict", "collections.deque"})
CONTAINER_LITERALS = (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp, cst.SimpleString,
                      cst.ConcatenatedString, cst.FormattedString)
NOT_LVALUE_NAMES = frozenset({"True", "False", "None", "self", "cls", "super"})
TORCH_MODULE_QUAL = ("torch.nn.", "torch.optim.", "torch.utils.")


def _name_arg(args) -> list[cst.Arg]:
    return list(args)


def _strip_last_comma(args: list[cst.Arg]) -> list[cst.Arg]:
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return args


def _call(func: cst.BaseExpression, args: list[cst.Arg]) -> cst.Call:
    return cst.Call(func=func, args=_strip_last_comma(list(args)))


def _method(receiver: cst.BaseExpression, name: str, args: list[cst.Arg]) -> cst.Call:
    return _call(cst.Attribute(value=paren(receiver), attr=cst.Name(name)), args)


def _arg(value: cst.BaseExpression, keyword: str | None = None) -> cst.Arg:
    if keyword is None:
        return cst.Arg(value=value)
    return cst.Arg(value=value, keyword=cst.Name(keyword),
                   equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                         whitespace_after=cst.SimpleWhitespace("")))


def _elements(items: list[cst.SubscriptElement]) -> list[cst.SubscriptElement]:
    out = []
    for i, el in enumerate(items):
        comma = cst.MaybeSentinel.DEFAULT if i == len(items) - 1 else cst.Comma(
            whitespace_after=cst.SimpleWhitespace(" "))
        out.append(el.with_changes(comma=comma))
    return out


def _at(base: cst.BaseExpression, index: list[cst.SubscriptElement], method: str,
        args: list[cst.BaseExpression]) -> cst.Call:
    sub = cst.Subscript(value=cst.Attribute(value=paren(base), attr=cst.Name("at")), slice=_elements(index))
    return _call(cst.Attribute(value=sub, attr=cst.Name(method)), [_arg(a) for a in args])


def _assign(target: cst.BaseAssignTargetExpression, value: cst.BaseExpression) -> cst.Assign:
    return cst.Assign(targets=[cst.AssignTarget(target=target)], value=value)


def _is_true(node: cst.BaseExpression | None) -> bool:
    return type(node) is cst.Name and node.value == "True"


def _names_in(node: cst.CSTNode) -> set[str]:
    return names_read(node)


def _has_call(node: cst.CSTNode) -> bool:
    found = []

    class V(Visitor):
        def visit_Call(self, n) -> None:
            found.append(n)

    walk(node, V())
    return bool(found)


def _bare(node: cst.BaseExpression) -> cst.BaseExpression:
    """The expression without its own parentheses (not an empty tuple's: `()` is nothing without them)."""
    while getattr(node, "lpar", None) and not (type(node) is cst.Tuple and not node.elements):
        node = node.with_changes(lpar=[], rpar=[])
    return node


# --- facts about one function (or the module body), read before it is rewritten ---------------------------
@dataclass
class ScopeFacts:
    params: list[str] = field(default_factory=list)
    annotated_tensors: set[str] = field(default_factory=set)
    loads: dict[str, list[int]] = field(default_factory=dict)  # dotted name -> lines where it appears
    loops: list[tuple[int, int]] = field(default_factory=list)
    ints: set[str] = field(default_factory=set)
    bools: set[str] = field(default_factory=set)
    tensors: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    loop_targets: dict[str, str] = field(default_factory=dict)  # name -> "range", "parameters", "self.<field>", "other"
    mask_defs: dict[str, cst.BaseExpression] = field(default_factory=dict)
    arrays: set[str] = field(default_factory=set)  # operands or results of arithmetic: arrays, not lists or dicts
    assign_lines: dict[str, list[int]] = field(default_factory=dict)  # name -> lines of plain assignments


class _FactsCollector(Visitor):
    def __init__(self, pass_: "InplacePass", root: cst.CSTNode) -> None:
        self.p = pass_
        self.root = root
        self.facts = ScopeFacts()
        self.assigns: list[tuple[str, cst.BaseExpression]] = []
        self.receivers: set[str] = set()  # names used as receivers of tensor-only methods or torch call inputs
        self.depth = 0
        self.positions = pass_.ctx.positions
        self._placed: cst.CSTNode | None = None  # the last node visited that has a source position

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node in self.positions:
            self._placed = node
        return super().on_visit(node)

    @property
    def line(self) -> int:
        """The line of the last node visited that has a source position (found when asked: most nodes never ask)."""
        return 1 if self._placed is None else start_line(self.positions, self._placed)

    def _line(self, node) -> tuple[int, int]:
        pos = self.p.ctx.positions.get(node)
        return (pos.start.line, pos.end.line) if pos else (self.line, self.line)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if node is self.root:
            for p in list(node.params.posonly_params) + list(node.params.params) + list(node.params.kwonly_params):
                self.facts.params.append(p.name.value)
                ann = code_of(p.annotation.annotation) if p.annotation else ""
                if "Tensor" in ann:
                    self.facts.annotated_tensors.add(p.name.value)
            return True
        self.depth += 1  # nested functions: only their reads count (closures read later)
        return True

    def leave_FunctionDef(self, node) -> None:
        if node is not self.root:
            self.depth -= 1

    def visit_ClassDef(self, node) -> bool:
        self.depth += 1
        return True

    def leave_ClassDef(self, node) -> None:
        self.depth -= 1

    def visit_Name(self, node: cst.Name) -> None:
        self.facts.loads.setdefault(node.value, []).append(self.line)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        path = dotted(node)
        if path:
            self.facts.loads.setdefault(path, []).append(self.line)

    def _loop(self, node) -> None:
        self.facts.loops.append(self._line(node))

    def visit_For(self, node: cst.For) -> None:
        self._loop(node)
        if self.depth:
            return
        kind = "other"
        it = node.iter
        found = field_loop(node) if node.orelse is None else None
        if found is not None:
            # for layer in self.layers / for emb in self.embs.values(): a list field or a dict field's values, whose
            # elements the module-updates pass puts back when the loop is in initialisation (below)
            kind = f"self.{found[1]}" + (".values()" if found[2] == "dict" else "")
        if type(it) is cst.Call:
            fname = dotted(it.func) or ""
            if fname == "range":
                kind = "range"
            elif fname.rsplit(".", 1)[-1] in ("parameters", "named_parameters", "buffers", "named_buffers"):
                kind = "parameters"
            elif fname == "zip" and it.args and all(parameter_listing(a.value) for a in it.args):
                kind = "parameters"  # for p_ema, p in zip(ema.parameters(), model.parameters()): an EMA update
            elif fname == "enumerate" and type(node.target) is cst.Tuple and node.target.elements:
                first = node.target.elements[0].value
                if type(first) is cst.Name:
                    self.facts.ints.add(first.value)
                    self.facts.loop_targets[first.value] = "range"
        targets = [node.target] if type(node.target) is not cst.Tuple else [e.value for e in
                                                                                node.target.elements]
        for t in targets:
            if type(t) is cst.Name and t.value not in self.facts.loop_targets:
                self.facts.loop_targets[t.value] = kind
                if kind == "range":
                    self.facts.ints.add(t.value)

    def visit_While(self, node) -> None:
        self._loop(node)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if self.depth:
            return
        sides = (_bare(node.left), _bare(node.right))
        if any(isinstance(s, CONTAINER_LITERALS + (cst.Tuple,)) for s in sides):
            return
        if type(node.operator) is cst.Modulo and isinstance(sides[0], CONTAINER_LITERALS):
            return
        for side in sides:
            if type(side) is cst.Name:
                self.facts.arrays.add(side.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        if self.depth:
            return
        for t in node.targets:
            key = dotted(t.target) if type(t.target) in (cst.Name, cst.Attribute) else None
            if key:
                self.assigns.append((key, node.value))
                self.facts.assign_lines.setdefault(key, []).append(self.line)
                field = _tree_at_field(key, node.value)
                if field is not None:  # code translated before: `x = eqx.tree_at(lambda m: m.f, x, v)` sets x.f
                    self.assigns.append(field)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self.depth or node.value is None:
            return
        if type(node.target) is cst.Name:
            self.assigns.append((node.target.value, node.value))

    def visit_Call(self, node: cst.Call) -> None:
        if self.depth:
            return
        func = node.func
        if type(func) is cst.Attribute:
            recv = dotted(func.value)
            name = func.attr.value
            qual = self.p.ctx.scopes.qualname(func)
            if qual is None and recv and not self.p.ctx.scopes.is_import(recv.split(".")[0]):
                if name in ("append", "extend", "insert", "items", "keys", "values", "setdefault", "popitem"):
                    self.facts.containers.add(recv)
                elif name.endswith("_") and name in self.p.inplace_names():
                    self.receivers.add(recv)
                elif name in self.p.ctx.tables.methods and name not in CONTAINER_METHODS:
                    self.receivers.add(recv)
        qual = self.p.ctx.scopes.qualname(func)
        if qual and qual.startswith("torch.") and not qual.startswith(TORCH_MODULE_QUAL) and node.args:
            first = dotted(node.args[0].value)
            if first:
                self.receivers.add(first)

    def finish(self) -> ScopeFacts:
        f = self.facts
        f.tensors |= f.annotated_tensors | self.receivers
        for _ in range(3):
            for name, value in self.assigns:
                if is_mask_expr(value, f.bools):
                    f.bools.add(name)
                    f.mask_defs.setdefault(name, value)
                if self.p.is_tensor_expr(value, f):
                    f.tensors.add(name)
                elif self._is_container(value):
                    f.containers.add(name)
                elif self._is_int(value, f):
                    f.ints.add(name)
                elif isinstance(_bare(value), (cst.BinaryOperation, cst.UnaryOperation)):
                    f.arrays.add(name)
        f.tensors -= f.containers
        f.ints -= f.tensors
        return f

    def _is_container(self, value) -> bool:
        if isinstance(value, CONTAINER_LITERALS):
            return True
        if type(value) is cst.BinaryOperation and type(value.operator) is cst.Multiply:
            return type(value.left) is cst.List or type(value.right) is cst.List
        if type(value) is cst.Call:
            qual = self.p.ctx.scopes.qualname(value.func) or dotted(value.func) or ""
            if qual in CONTAINER_CALLS or qual.startswith("numpy.") or qual.startswith("np."):
                return True
        return False

    def _is_int(self, value, f: ScopeFacts) -> bool:
        value = _bare(value)
        if type(value) is cst.Integer:
            return True
        if type(value) is cst.UnaryOperation:
            return self._is_int(value.expression, f)
        if type(value) is cst.Name:
            return value.value in f.ints
        if type(value) is cst.BinaryOperation:
            return self._is_int(value.left, f) and self._is_int(value.right, f)
        if type(value) is cst.Call:
            name = value.func.attr.value if type(value.func) is cst.Attribute else dotted(value.func)
            return name in ("len", "int", "item", "size", "numel")
        if type(value) is cst.Subscript and type(value.value) is cst.Attribute:
            return value.value.attr.value == "shape"
        return False


# --- targets of a mutation: a storage owner (a name or attribute) and the views that lead to the place -----
@dataclass
class Step:
    kind: str  # same | index | mask | reshape | self_inverse | permute | opaque | copy
    expr: cst.BaseExpression  # the view expression (its result)
    parent: cst.BaseExpression  # the expression it is a view of
    index: list = field(default_factory=list)  # index / mask: subscript elements
    op: cst.BaseExpression | None = None  # self_inverse / permute: the attribute or call that re-applies it


@dataclass
class Target:
    owner: cst.BaseExpression  # a Name or dotted Attribute: what gets rebound
    key: str
    steps: list[Step]
    view: cst.BaseExpression  # the place itself (owner when there are no steps)


@dataclass
class Tracked:
    """A name that shares storage with others: a view of `parent` (recomputed with `fwd`), or a container."""

    key: str
    kind: str  # same | index | reshape | self_inverse | permute | opaque | container
    fwd: cst.BaseExpression | None
    sources: set[str]
    steps: list[Step]
    line: int
    deps: set[str] = field(default_factory=set)  # names the forward expression reads (an index variable)


@dataclass
class Frame:
    _facts: ScopeFacts | None
    class_name: str | None = None  # the class a method belongs to
    method: str | None = None
    tracked: dict[str, Tracked] = field(default_factory=dict)
    caller_visible: set[str] = field(default_factory=set)
    declare: dict[str, str] = field(default_factory=dict)  # free name rebound here -> "global" | "nonlocal"
    is_function: bool = False
    collect: Callable[[], ScopeFacts] | None = None  # gives the facts when first read (the module's: see visit_Module)
    function: cst.FunctionDef | None = None  # the function's node: its bound names are found when first asked
    _bound: frozenset[str] | None = None

    @property
    def facts(self) -> ScopeFacts:
        if self._facts is None:
            self._facts = self.collect()
        return self._facts

    @property
    def bound(self) -> frozenset[str]:
        """Names local to the function (parameters and assignments)."""
        if self._bound is None:
            self._bound = bound_in_function(self.function) if self.function is not None else frozenset()
        return self._bound


class Unsupported(Exception):
    """A mutation this pass cannot rewrite: the reason is reported and the code left as it is."""


def is_mask_expr(node, bools: set[str]) -> bool:
    """A boolean tensor: a comparison, ~m, m1 & m2, isnan(x), x.bool(), dtype=torch.bool, or a name in bools."""
    node = _bare(node)
    if type(node) is cst.Comparison:
        return all(isinstance(c.operator, (cst.LessThan, cst.GreaterThan, cst.LessThanEqual,
                                           cst.GreaterThanEqual, cst.Equal, cst.NotEqual))
                   for c in node.comparisons)
    if type(node) is cst.UnaryOperation and type(node.operator) is cst.BitInvert:
        return is_mask_expr(node.expression, bools)
    if type(node) is cst.BinaryOperation and isinstance(node.operator, (cst.BitAnd, cst.BitOr,
                                                                            cst.BitXor)):
        return is_mask_expr(node.left, bools) or is_mask_expr(node.right, bools)
    if type(node) is cst.Name:
        return node.value in bools
    if type(node) is cst.Call:
        func = node.func
        name = func.attr.value if type(func) is cst.Attribute else dotted(func)
        if name in BOOL_CALLS:
            return name != "bernoulli"
        if name in ("to", "type") and node.args and "bool" in code_of(node.args[0].value):
            return True
        if any(a.keyword is not None and a.keyword.value == "dtype" and code_of(a.value).endswith("bool")
               for a in node.args):
            return True
    return False


def _outside_functions(stmts):
    """The statements that run in the module's frame: those of the module and of class bodies, not of methods or
    functions (which have frames of their own)."""
    for stmt in stmts:
        if type(stmt) is cst.ClassDef:
            if type(stmt.body) is cst.IndentedBlock:
                yield from _outside_functions(stmt.body.body)
            else:
                yield stmt
        elif type(stmt) is not cst.FunctionDef:
            yield stmt


def _table_words(tables, inplace_names: frozenset) -> tuple[frozenset, frozenset, frozenset]:
    """What InplacePass's statement words test that the tables decide (the same for every file): the words of an
    in-place method or function, those of a function that takes inplace, and the qualified names of the latter.
    Kept on the tables."""
    cached = tables.__dict__.get("_inplace_words")
    if cached is None:
        records, methods = tables.records, tables.methods
        mutation = {"out=", AUGASSIGN, SETITEM} | inplace_names
        mutation |= {m + "_" for m in methods if m not in BUILTIN_CLASH and not m.startswith("_")}
        mutation |= {q.rsplit(".", 1)[-1] + "_" for q in records}
        takes_inplace = frozenset(q for q, r in records.items() if r.param("inplace") is not None)
        cached = tables.__dict__["_inplace_words"] = (
            frozenset(mutation), frozenset(q.rsplit(".", 1)[-1] for q in takes_inplace), takes_inplace)
    return cached


class InplacePass(Pass):
    EXPRESSIONS = False  # its hooks are on statements and blocks; expressions are rewritten by _Hoister
    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.frames: list[Frame] = []
        self.classes: list[str] = []
        self.kinds: list[str] = []  # "class" / "function" nesting
        self.init_helpers: dict[str, set[str]] = {}  # class -> methods that __init__ calls (they may set fields)
        self.module: cst.Module | None = None
        self.elifs: set[int] = set()
        self.loop_stack: list[list] = []  # per loop: [node, mutated keys]
        self.line = (1, 1)
        self._inplace_names: frozenset | None = None
        self._torch_alias = next((k for k, v in ctx.scopes.aliases.items() if v == "torch"), None)
        self.module_level_mutates = True
        self._module_words: set[str] | None = None  # _module_level_words
        # words without which a statement mutates nothing (mutation_kind, _set_item, _aug_assign): an in-place
        # method (add_) or torch function (relu_), out=, an item assignment, an augmented assignment; or True
        # with a function that takes inplace (F.relu(x, inplace=True), F.relu(x, True))
        aliases = ctx.scopes.aliases
        table_words, inplace_words, takes_inplace = _table_words(ctx.tables, self.inplace_names())
        self.mutation_words = table_words | {k for k, q in aliases.items() if q.endswith("_")}
        self.inplace_words = inplace_words | {k for k, q in aliases.items() if q in takes_inplace}

    def _may_mutate(self, node: cst.CSTNode) -> bool:
        words = self.ctx.words(node)
        return not self.mutation_words.isdisjoint(words) or (
            "True" in words and not self.inplace_words.isdisjoint(words))

    def wants(self, node: cst.CSTNode) -> bool:
        """A function without a mutation is left alone (its frame and aliases are its own). Outside functions the
        statements share the module's frame: without any mutation at that level, only those that mutate matter."""
        if type(node) in (cst.Module, cst.FunctionDef):
            return self._may_mutate(node)
        if self.frames[-1].is_function or self.module_level_mutates:
            return True
        return self._may_mutate(node)

    # --- bookkeeping ---------------------------------------------------------------------------------------
    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    def inplace_names(self) -> frozenset:
        if self._inplace_names is None:
            methods = self.ctx.tables.methods
            self._inplace_names = TORCH_INPLACE | {n for n in methods if n.endswith("_") and not n.startswith("_")}
        return self._inplace_names

    def visit_Module(self, node: cst.Module) -> None:
        self.module = node
        self.module_level_mutates = any(self._may_mutate(s) for s in _outside_functions(node.body))
        scopes = self.ctx.scopes
        aliases = dict(scopes.aliases)

        def collect() -> ScopeFacts:
            # the module's facts (a walk of the whole file) are rarely needed when only functions mutate: collected
            # when first read, as they stood here (no enclosing function shadows a name, no alias added yet)
            saved = scopes.aliases, scopes.shadow_stack
            scopes.aliases, scopes.shadow_stack = aliases, []
            try:
                collector = _FactsCollector(self, node)
                walk(node, collector)
                return collector.finish()
            finally:
                scopes.aliases, scopes.shadow_stack = saved

        self.frames.append(Frame(None, collect=collect))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node.name.value)
        self.kinds.append("class")

    def leave_ClassDef(self, original, updated):
        self.classes.pop()
        self.kinds.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.scopes.push(node)
        collector = _FactsCollector(self, node)
        walk(node, collector)
        facts = collector.finish()
        in_class = bool(self.kinds) and self.kinds[-1] == "class"
        self.kinds.append("function")
        frame = Frame(facts, class_name=self.classes[-1] if in_class else None,
                      method=node.name.value if in_class else None)
        frame.caller_visible = {p for p in facts.params if p not in ("self", "cls")}
        frame.function = node
        frame.is_function = True
        self.frames.append(frame)
        saved, self.loop_stack = self.loop_stack, []
        self._saved_loops = getattr(self, "_saved_loops", []) + [saved]

    def leave_FunctionDef(self, original, updated):
        self.ctx.scopes.pop()
        frame = self.frames.pop()
        self.kinds.pop()
        self.loop_stack = self._saved_loops.pop()
        if frame.declare and type(updated.body) is cst.IndentedBlock:
            # a tensor of an enclosing scope updated in place: the rebinding must reach that scope
            decls = []
            for kind in ("global", "nonlocal"):
                names = sorted(n for n, k in frame.declare.items() if k == kind)
                if names:
                    node = cst.Global if kind == "global" else cst.Nonlocal
                    decls.append(cst.SimpleStatementLine([node(names=[
                        cst.NameItem(cst.Name(n), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                                     if i < len(names) - 1 else cst.MaybeSentinel.DEFAULT)
                        for i, n in enumerate(names)])]))
            body = list(updated.body.body)
            at = 1 if body and _is_docstring(body[0]) else 0
            body[at:at] = decls
            updated = updated.with_changes(body=updated.body.with_changes(body=body))
        return updated

    def _declare_free(self, key: str, node) -> None:
        """`x` updated in place inside a function that does not bind it: rebinding needs global/nonlocal."""
        name = key.split(".")[0].split("[")[0]
        if "." in key or "[" in key:
            return  # an attribute or item: set on the shared object, no declaration needed
        frame = self.frame
        if not frame.is_function or name in frame.bound or name in frame.declare:
            return
        enclosing = [f for f in self.frames[1:-1] if f.is_function and name in f.bound]
        kind = "nonlocal" if enclosing else "global"
        frame.declare[name] = kind
        self.report("T2J301", f"{name} belongs to an enclosing scope: declared {kind} so that the update reaches it",
                    node)

    def visit_If(self, node: cst.If) -> None:
        if type(node.orelse) is cst.If:
            self.elifs.add(id(node.orelse))

    def visit_For(self, node: cst.For) -> None:
        self.loop_stack.append([node, []])
        # the loop variable is rebound at every iteration
        for name in _names_in(node.target):
            self.kill(name)

    def visit_While(self, node: cst.While) -> None:
        self.loop_stack.append([node, []])

    def leave_While(self, original, updated):
        self.loop_stack.pop()
        return self._hoist_header(original, updated, "test", hoistable=False)

    def leave_For(self, original: cst.For, updated: cst.For):
        _, mutated = self.loop_stack.pop()
        it = original.iter
        if mutated and type(it) is cst.Call and dotted(it.func) == "range":
            names = ", ".join(dict.fromkeys(mutated))
            self.report("T2J304", f"the loop accumulates into {names}: it stays a Python loop (unrolled when "
                                  f"traced); jax.lax.fori_loop or jax.lax.scan fits if the trip count is large",
                        original)
        return self._hoist_header(original, updated, "iter", hoistable=True)

    def leave_If(self, original: cst.If, updated: cst.If):
        return self._hoist_header(original, updated, "test", hoistable=id(original) not in self.elifs)

    def leave_IndentedBlock(self, original, updated):
        if not updated.body:
            return updated.with_changes(body=[cst.SimpleStatementLine([cst.Pass()])])
        return updated

    def _hoist_header(self, original, updated, attr: str, hoistable: bool):
        expr = getattr(updated, attr)
        if not self._mentions_mutation(getattr(original, attr)):
            return updated
        self.line = self._lines(original)
        if not hoistable:
            self.report("T2J305", "in-place update in a loop condition or elif test: move it into the body by hand",
                        getattr(original, attr))
            return updated
        out: list[cst.BaseSmallStatement] = []
        try:
            new_expr = self.hoist(expr, out)
        except Unsupported as e:
            self.report("T2J305", str(e), getattr(original, attr))
            return updated
        lines = [self._line_of(s) for s in out]
        for line in lines:
            self.ctx.positions.setdefault(line, self.ctx.positions.get(original))
        pending = list(self._markers[-1])
        self._markers[-1].clear()
        if lines:
            lines[0] = lines[0].with_changes(leading_lines=updated.leading_lines)
            if pending:
                lines[0] = add_marker(lines[0], pending)
        return cst.FlattenSentinel(lines + [updated.with_changes(**{attr: new_expr}, leading_lines=[])])

    def _mentions_mutation(self, node: cst.CSTNode) -> bool:
        if not self._may_mutate(node):
            return False
        return any(self.mutation_kind(n) is not None for n in find_all(node, cst.Call))

    def _lines(self, node) -> tuple[int, int]:
        pos = self.ctx.positions.get(node)
        return (pos.start.line, pos.end.line) if pos else self.here()[:1] * 2

    @staticmethod
    def _line_of(small: cst.BaseSmallStatement) -> cst.SimpleStatementLine:
        return cst.SimpleStatementLine(body=[small])

    # --- statements ----------------------------------------------------------------------------------------
    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        self.line = self._lines(original)
        outs: list[tuple[cst.BaseSmallStatement, bool]] = []
        changed = False
        for orig_small, small in zip(original.body, updated.body):
            produced = self.statement(orig_small, small)
            if produced is None:
                outs.append((small, True))
            else:
                changed = True
                outs.extend(produced)
        if not changed:
            return updated
        pending = list(self._markers[-1])
        self._markers[-1].clear()
        if not outs:
            return cst.FlattenSentinel([])
        primary = max((i for i, (_, p) in enumerate(outs) if p), default=0)
        lines = []
        for i, (small, _) in enumerate(outs):
            line = cst.SimpleStatementLine(body=[small.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)])
            if i == primary:
                line = line.with_changes(trailing_whitespace=updated.trailing_whitespace)
                if pending:
                    line = add_marker(line, pending)
            self.ctx.positions.setdefault(line, self.ctx.positions.get(original))
            lines.append(line)
        lines[0] = lines[0].with_changes(leading_lines=updated.leading_lines)
        if len(lines) == 1:
            return lines[0]
        return cst.FlattenSentinel(lines)

    def statement(self, orig: cst.BaseSmallStatement, small: cst.BaseSmallStatement):
        """The statements that replace one small statement, each flagged primary (it carries the line's comment),
        or None when nothing changes."""
        out: list[tuple[cst.BaseSmallStatement, bool]] = []
        try:
            if type(small) is cst.Expr:
                return self._expr_statement(orig, small, out)
            if type(small) is cst.Assign:
                return self._assign(orig, small, out)
            if type(small) is cst.AugAssign:
                return self._aug_assign(orig, small, out)
            if type(small) is cst.AnnAssign and small.value is not None:
                pre: list = []
                value = self.hoist(small.value, pre)
                if not pre and value is small.value:
                    self._plain_assign(small.target, small.value)
                    return None
                out.extend((s, False) for s in pre)
                out.append((small.with_changes(value=value), True))
                self._plain_assign(small.target, value)
                return out
            if type(small) is cst.Return and small.value is not None:
                pre = []
                value = self.hoist(small.value, pre)
                if not pre and value is small.value:
                    return None
                out.extend((s, False) for s in pre)
                out.append((small.with_changes(value=value), True))
                return out
        except Unsupported as e:
            self.report("T2J305", str(e), orig)
            return None
        return None

    def _expr_statement(self, orig: cst.Expr, small: cst.Expr, out):
        if not self._mentions_mutation(orig.value):
            return None
        pre: list = []
        value = self.hoist(small.value, pre)
        if not pre and value is small.value:
            return None
        for i, s in enumerate(pre):
            out.append((s, i == 0))
        if not self._is_reference(value):
            out.append((small.with_changes(value=value), not pre))
        return out

    @staticmethod
    def _is_reference(node: cst.BaseExpression) -> bool:
        node = _bare(node)
        if type(node) is cst.Name:
            return True
        if type(node) is cst.Attribute:
            return InplacePass._is_reference(node.value)
        if type(node) is cst.Subscript:
            return InplacePass._is_reference(node.value) and not _has_call(node.slice[0]) if node.slice else False
        if type(node) is cst.Call:  # a view of a reference: x.view(-1) left over from `x.view(-1).add_(1)`
            return type(node.func) is cst.Attribute and node.func.attr.value in (
                RESHAPE_VIEWS | SELF_INVERSE_CALLS | IDENTITY_CALLS | {"permute"}) \
                and InplacePass._is_reference(node.func.value) and not any(_has_call(a) for a in node.args)
        return False

    def _assign(self, orig: cst.Assign, small: cst.Assign, out):
        pre: list = []
        value = self.hoist(small.value, pre)
        subs = [t for t in small.targets if self._contains_subscript(t.target)]
        for i, s in enumerate(pre):
            out.append((s, False))
        if not subs:
            if not pre and value is small.value:
                for t in small.targets:
                    self._plain_assign(t.target, small.value)
                return None
            out.append((small.with_changes(value=value), True))
            for t in small.targets:
                self._plain_assign(t.target, value)
            return out
        plain = [t for t in small.targets if t not in subs]
        source = value
        if plain:
            out.append((small.with_changes(targets=plain, value=value), False))
            for t in plain:
                self._plain_assign(t.target, value)
            first = plain[0].target
            source = first if type(first) in (cst.Name, cst.Attribute) else value
        done_any = False
        for t in subs:
            if type(t.target) is not cst.Subscript:
                raise Unsupported("a tensor element inside a tuple target: assign each element on its own line")
            stmts = self._set_item(orig, t.target, source, op=None)
            if stmts is None:
                out.append((cst.Assign(targets=[t], value=source), True))
                continue
            done_any = True
            out.extend(stmts)
        if not done_any and not pre and value is small.value:
            return None
        return out

    def _contains_subscript(self, target) -> bool:
        if type(target) is cst.Subscript:
            return True
        if type(target) in (cst.Tuple, cst.List):
            return any(self._contains_subscript(e.value) for e in target.elements)
        return False

    def _aug_assign(self, orig: cst.AugAssign, small: cst.AugAssign, out):
        pre: list = []
        value = self.hoist(small.value, pre)
        out.extend((s, False) for s in pre)
        op = code_of(small.operator).strip()
        target = small.target
        if type(target) is cst.Subscript:
            stmts = self._set_item(orig, target, value, op=op)
            if stmts is None:
                if not pre and value is small.value:
                    return None
                out.append((small.with_changes(value=value), True))
                return out
            out.extend(stmts)
            return out
        # a name or attribute: `x += y` rebinds in JAX, mutates in torch
        key = dotted(target)
        changed = bool(pre) or value is not small.value
        out.append((small.with_changes(value=value), True))
        if key is None:
            return out if changed else None
        f = self.frame.facts
        self._frozen_check(key, orig)
        is_tensor = key in f.tensors or self._is_tensor_value(value) or key in self.frame.tracked and any(
            s in f.tensors for s in self.frame.tracked[key].sources)
        if key in f.ints or not is_tensor:
            self.kill(key)
            return out if changed else None
        self._note_loop(key)
        extra = self.propagate(key, orig)
        out.extend((s, False) for s in extra)
        return out if (changed or extra) else None

    def _tracked_related(self, key: str) -> bool:
        return key in self.frame.tracked or any(key in t.sources for t in self.frame.tracked.values())

    def _is_tensor_value(self, value) -> bool:
        return self.is_tensor_expr(value, self.frame.facts)

    # --- index assignment --------------------------------------------------------------------------------
    def _set_item(self, orig, target: cst.Subscript, value: cst.BaseExpression, op: str | None):
        """`x[idx] = value` (op None) or `x[idx] op= value`: statements, or None to leave it as it is."""
        index = list(target.slice)
        if any(type(el.slice) is cst.Index and isinstance(el.slice.value, (
                cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)) for el in index):
            return None  # d["key"] = v
        if type(value) in (cst.List, cst.Dict, cst.ListComp, cst.DictComp, cst.SimpleString):
            return None
        tgt = self.resolve(target, setitem=True)
        if tgt is None:
            return None
        kind = tgt.steps[-1].kind
        if not self._looks_tensor(tgt, kind, value):
            self.report("T2J305", f"cannot tell whether {code_of(tgt.owner)} is a tensor or a list/dict: the item "
                                  f"assignment is left as it is (a JAX array needs "
                                  f"`{code_of(tgt.owner)} = {code_of(tgt.owner)}.at[...].set(...)`)", orig)
            return None
        last = tgt.steps[-1]
        parent = last.parent
        if kind == "mask":
            mask = last.index[0].slice.value
            if op is None:
                same_mask = type(value) is cst.Subscript and len(value.slice) == 1 \
                    and value.slice[0].slice.deep_equals(last.index[0].slice)
                if same_mask:
                    if not self._mask_has_shape_of(mask, parent):
                        self.report("T2J307", f"the mask {code_of(mask)} must have the shape of {code_of(parent)} for "
                                              f"where(); a mask over leading dimensions needs mask[..., None]", orig)
                    parent_new = self._where_call(mask, value.value, parent)  # x[m] = y[m]  ->  where(m, y, x)
                elif self._scalar_like(value) and self._mask_has_shape_of(mask, parent):
                    parent_new = self._where_call(mask, value, parent)
                else:
                    # a value per selected element, or a mask over leading dimensions: torch's semantics at run time
                    self.need("t2j")
                    parent_new = cst.Call(cst.parse_expression("t2j.masked_set"),
                                          [cst.Arg(parent), cst.Arg(mask), cst.Arg(value)])
            else:
                parent_new = self._where_call(mask, cst.BinaryOperation(
                    left=paren(parent), operator=AUG_TO_BINOP[op](), right=paren(value)), parent)
        elif op is None:
            parent_new = None  # set
        else:
            parent_new = None
        stmts = self.mutate(tgt, value, orig, op=op, set_value=parent_new)
        return stmts

    def _module_level_words(self) -> set[str]:
        """The words of the statements that run in the module's frame (not inside functions or methods)."""
        if self._module_words is None:
            self._module_words = set().union(*(self.ctx.words(s) for s in _outside_functions(self.module.body)))
        return self._module_words

    def _looks_tensor(self, tgt: Target, kind: str, value) -> bool:
        f = self.frame.facts
        root = tgt.key.split(".")[0]
        if tgt.key in f.containers or root in f.containers:
            return False
        if tgt.key.startswith("self.") and self.frame.class_name:
            field_facts = self._field(tgt.key)
            if field_facts is not None:
                if field_facts.kind in ("list", "dict", "static", "module"):
                    return False
                if field_facts.kind in ("array", "buffer"):
                    return True
        if tgt.key in f.tensors or tgt.key in self.frame.tracked or tgt.key in f.arrays and tgt.key not in f.ints:
            return True
        if self.frame.is_function and root not in self.frame.bound:
            # the innermost enclosing frame that binds it; the module's facts (a walk of the whole file) only when
            # the module's own statements mention it
            outer = next((fr for fr in reversed(self.frames[:-1]) if not fr.is_function or root in fr.bound), None)
            if outer is not None and (outer.is_function or root in self._module_level_words()) \
                    and (root in outer.facts.tensors or root in outer.facts.arrays):
                return True
        if kind == "mask":
            return True
        return self._index_is_tensorish(tgt) or self._is_tensor_value(value)

    @staticmethod
    def _index_is_tensorish(tgt: Target) -> bool:
        for step in tgt.steps:
            if step.kind in ("reshape", "self_inverse", "permute", "same"):
                return True
            if len(step.index) > 1:
                return True
            for el in step.index:
                if type(el.slice) is cst.Slice:
                    return True
                v = el.slice.value
                if type(v) is cst.Ellipsis or (type(v) is cst.Name and v.value == "None"):
                    return True
        return False

    def _field(self, key: str):
        facts = self.ctx.module_facts
        cls = self.frame.class_name
        if facts is None or cls is None or cls not in facts.classes:
            return None
        return facts.classes[cls].fields.get(key.split(".")[1])

    def _scalar_like(self, value) -> bool:
        value = _bare(value)
        if type(value) in (cst.Integer, cst.Float):
            return True
        if type(value) is cst.UnaryOperation:
            return self._scalar_like(value.expression)
        if type(value) is cst.Call and dotted(value.func) in ("float", "int", "math.inf"):
            return True
        if type(value) is cst.Attribute and dotted(value) in ("math.inf", "math.nan", "math.pi", "np.inf"):
            return True
        if type(value) is cst.Name:
            return value.value in self.frame.facts.ints or value.value.isupper() \
                or value.value in self.frames[0].facts.ints
        return False

    def _mask_has_shape_of(self, mask, base, depth: int = 0) -> bool:
        """Whether the mask is computed elementwise from `base` itself (x < 0, isnan(x), ~m, m1 & m2)."""
        mask = _bare(mask)
        if depth > 5:
            return False
        if mask.deep_equals(_bare(base)) if type(mask) in (cst.Name, cst.Attribute) else False:
            return True
        if type(mask) is cst.Comparison:
            operands = [mask.left] + [c.comparator for c in mask.comparisons]
            return any(_bare(o).deep_equals(_bare(base)) or self._mask_has_shape_of(o, base, depth + 1)
                       for o in operands if not isinstance(_bare(o), (cst.Integer, cst.Float)))
        if type(mask) is cst.UnaryOperation:
            return self._mask_has_shape_of(mask.expression, base, depth + 1)
        if type(mask) is cst.BinaryOperation:
            return self._mask_has_shape_of(mask.left, base, depth + 1) or self._mask_has_shape_of(
                mask.right, base, depth + 1)
        if type(mask) is cst.Call:
            if type(mask.func) is cst.Attribute and self.ctx.scopes.qualname(mask.func) is None:
                return self._mask_has_shape_of(mask.func.value, base, depth + 1)
            return any(self._mask_has_shape_of(a.value, base, depth + 1) for a in mask.args[:1])
        if type(mask) is cst.Name and mask.value in self.frame.facts.mask_defs:
            return self._mask_has_shape_of(self.frame.facts.mask_defs[mask.value], base, depth + 1)
        return False

    def _where_call(self, mask, a, b) -> cst.Call:
        return self.torch_call("where", [mask, a, b])

    # --- expressions: in-place calls are hoisted in front of their statement ------------------------------
    def mutation_kind(self, call: cst.Call) -> str | None:
        func = call.func
        qual = self.ctx.scopes.qualname(func)
        if qual is not None:
            if not qual.startswith("torch.") or qual.startswith(INIT_PREFIX):
                return None
            if any(a.keyword is not None and a.keyword.value == "out" for a in call.args):
                return "out"
            short = qual.rsplit(".", 1)[1]
            if short.endswith("_") and not short.startswith("_") and call.args \
                    and self.ctx.tables.records.get(qual[:-1]) is not None:
                return "function_"
            record = self.ctx.tables.records.get(qual)
            if record is not None and record.param("inplace") is not None:
                try:
                    bound = bind(record, list(call.args))
                except BindError:
                    return None
                if _is_true(bound.args.get("inplace")) and "inplace" in bound.given:
                    return "inplace_kw"
            return None
        if type(func) is cst.Attribute:
            name = func.attr.value
            if not name.endswith("_") or name.startswith("_") or name not in self.inplace_names() and not (
                    name[:-1] in self.ctx.tables.methods and name[:-1] not in BUILTIN_CLASH):
                return None
            recv = dotted(func.value)
            if recv is not None:
                head = recv.split(".")[0]
                if recv == "self" or self.ctx.scopes.is_import(head):
                    return None
            if type(func.value) in (cst.SimpleString, cst.List, cst.Dict, cst.Integer, cst.Float):
                return None
            return "method"
        return None

    def hoist(self, expr: cst.BaseExpression, pre: list) -> cst.BaseExpression:
        """Rewrite the in-place calls inside `expr`: a mutation of a named tensor becomes a statement appended to
        `pre` (in evaluation order) and the call is replaced by the mutated tensor."""
        if not self._mentions_mutation(expr):
            return expr
        hoister = _Hoister(self, pre)
        return transform(expr, hoister)

    def rewrite_call(self, original: cst.Call, updated: cst.Call, hoister: "_Hoister"):
        kind = self.mutation_kind(original)
        if kind is None:
            return updated
        if kind == "method":
            return self._rewrite_method(original, updated, hoister)
        if kind == "out":
            args = [a for a in updated.args if not (a.keyword is not None and a.keyword.value == "out")]
            out_arg = next(a for a in updated.args if a.keyword is not None and a.keyword.value == "out").value
            value = self._carried(updated.with_changes(args=_strip_last_comma(args)), original)
            if type(out_arg) is cst.Tuple:
                if not all(type(e.value) is cst.Name for e in out_arg.elements) or not hoister.hoistable():
                    raise Unsupported("out= with a tuple of non-names: assign the results by hand")
                hoister.pre.append(_assign(out_arg.with_changes(lpar=[], rpar=[]), value))
                self.report("T2J301", f"out={code_of(out_arg)} becomes an assignment of the result", original)
                for e in out_arg.elements:
                    hoister.pre.extend(self.propagate(e.value.value, original))
                return out_arg
            tgt = self.resolve(out_arg, setitem=True) if type(out_arg) is cst.Subscript else \
                self.resolve(out_arg)
            if tgt is None:
                return value
            return self._emit(original, tgt, value, hoister, what=f"out={code_of(out_arg)}")
        # torch.relu_(x, ...) / F.relu(x, inplace=True): the first argument is updated
        if not updated.args or updated.args[0].keyword is not None and kind == "function_":
            return updated
        first = updated.args[0].value
        if kind == "function_":
            func = updated.func
            new_func = func.with_changes(attr=cst.Name(func.attr.value[:-1])) if isinstance(
                func, cst.Attribute) else func.with_changes(value=func.value[:-1])
            value = self._carried(updated.with_changes(func=new_func), original)
        else:
            args = [a for a in updated.args if not (a.keyword is not None and a.keyword.value == "inplace")]
            value = self._carried(updated.with_changes(args=_strip_last_comma(args)), original)
            record = self.ctx.tables.records.get(self.ctx.scopes.qualname(original.func))
            bound = bind(record, list(original.args))
            first = bound.args.get(record.params[0].name, first)
        tgt = self.resolve(first)
        if tgt is None:
            return value
        return self._emit(original, tgt, value, hoister, what=code_of(original.func))

    def _carried(self, value, original: cst.Call):
        """The out-of-place call built for an in-place one reports at its source position (a later pass's
        diagnostic about it points at the call, not at its statement)."""
        if type(value) is cst.Call and value is not original:
            pos = self.ctx.positions.get(original)
            if pos is not None:
                self.ctx.positions.setdefault(value, pos)
        return value

    def _rewrite_method(self, original: cst.Call, updated: cst.Call, hoister: "_Hoister"):
        name = original.func.attr.value
        recv_orig = original.func.value
        recv = updated.func.value
        chained = hoister.chain_targets.pop(id(recv_orig), None) if type(recv_orig) is cst.Call else None
        if chained is not None:
            tgt = chained
        else:
            tgt = self.resolve(recv_orig)
        value = self._carried(self.functional(name, recv, list(updated.args), original), original)
        if value is recv:
            return recv  # requires_grad_(): nothing to update
        if hoister.continues_chain():
            hoister.chain_targets[id(original)] = tgt
            return value
        if tgt is None:
            return value  # a temporary: the out-of-place form computes the same value
        if tgt.steps and any(s.kind in ("mask", "copy") for s in tgt.steps):
            self.report("T2J301", f"{code_of(tgt.steps[-1].expr)} is a copy in torch (advanced indexing): "
                                  f"{name} does not change {code_of(tgt.owner)}; written out of place", original)
            return value
        return self._emit(original, tgt, value, hoister, what=f".{name}()")

    def _emit(self, original, tgt: Target, value, hoister: "_Hoister", what: str):
        if not hoister.hoistable():
            raise Unsupported(f"in-place update {code_of(original)} inside a lambda, comprehension or conditional "
                              f"expression: rewrite it as statements by hand")
        if hoister.read_before(tgt.key, original):
            self.report("T2J302", f"{tgt.key} is read earlier in this statement than its in-place update "
                                  f"({what}); the translation evaluates the update first", original)
        stmts = self.mutate(tgt, value, original, what=what)
        hoister.pre.extend(s for s, _ in stmts)
        return tgt.view

    def functional(self, name: str, receiver: cst.BaseExpression, args: list[cst.Arg], node):
        """The out-of-place expression for `receiver.<name>(args)` (an in-place method)."""
        while type(receiver) is cst.Attribute and receiver.attr.value in IDENTITY_ATTRS:
            receiver = receiver.value  # m.fc.weight.data is m.fc.weight (and a module's array has no .data)
        methods = self.ctx.tables.methods
        base = name[:-1]
        if name == "zero_" and not args:
            return self.torch_call("zeros_like", [receiver])
        if name == "fill_" and len(args) == 1:
            return self.torch_call("full_like", [receiver, args[0].value])
        if name == "copy_" and args:
            src = args[0].value
            return self.broadcast_cast(src, receiver)
        if name in NO_OP_INPLACE and name not in methods:
            if name == "requires_grad_" and args and not _is_true(args[0].value):
                raise Unsupported(f"{name}(False) freezes a tensor: exclude it from the gradient (jax.lax."
                                  f"stop_gradient, or optax.masked / eqx.partition for parameters)")
            self.report("T2J301", f"{name} dropped: JAX differentiates with respect to function arguments", node)
            return receiver
        record = methods.get(name)
        if record is not None and (record.random or base not in methods):
            return _method(receiver, name, args)
        if base in methods and not methods[base].attr:
            return _method(receiver, base, args)
        if record is not None:
            return _method(receiver, name, args)
        raise Unsupported(f"Tensor.{name} has no functional mapping (neither Tensor.{base} nor Tensor.{name} is "
                          f"in the tables): left as it is")

    def torch_call(self, name: str, args: list[cst.BaseExpression]) -> cst.Call:
        """`torch.<name>(args)` when the tables map it (the ops pass translates it), else `jnp.<name>(args)`."""
        if self._torch_alias is not None and f"torch.{name}" in self.ctx.tables.records:
            func = cst.Attribute(value=cst.Name(self._torch_alias), attr=cst.Name(name))
        else:
            self.need("jnp")
            self.ctx.scopes.aliases.setdefault("jnp", "jax.numpy")
            func = cst.Attribute(value=cst.Name("jnp"), attr=cst.Name(name))
        return _call(func, [_arg(a) for a in args])

    def broadcast_cast(self, src, like) -> cst.BaseExpression:
        """`src` broadcast to `like`'s shape and cast to its dtype (what copy_ and item assignment do)."""
        shape = cst.Attribute(value=paren(like), attr=cst.Name("shape"))
        dtype = cst.Attribute(value=paren(like), attr=cst.Name("dtype"))
        methods = self.ctx.tables.methods
        bcast = self.torch_call("broadcast_to", [src, shape])
        if "to" in methods:
            return _method(bcast, "to", [_arg(dtype)])
        if bcast.func.value.value != "jnp":
            return _method(bcast, "type", [_arg(dtype)]) if "type" in methods else bcast
        return _method(bcast, "astype", [_arg(dtype)])

    # --- targets -------------------------------------------------------------------------------------------
    def lvalue_key(self, node: cst.BaseExpression) -> str | None:
        path = dotted(_bare(node))
        if path is None:
            return None
        head = path.split(".")[0]
        if head in NOT_LVALUE_NAMES and path == head or self.ctx.scopes.is_import(head):
            return None
        if head in ("True", "False", "None"):
            return None
        return path

    def resolve(self, node: cst.BaseExpression, setitem: bool = False) -> Target | None:
        """The owner (a name or attribute) whose storage `node` is, and the view steps from it; None for a
        temporary (a call result, an arithmetic expression)."""
        steps: list[Step] = []
        cur = _bare(node)
        while True:
            key = self.lvalue_key(cur)
            if key is not None and not (type(cur) is cst.Attribute and cur.attr.value in (
                    IDENTITY_ATTRS | SELF_INVERSE_ATTRS)):
                steps.reverse()
                if steps and key in self.frame.facts.containers and steps[0].kind in ("index", "mask", "copy"):
                    # xs[i][j] = v with a list xs: the element xs[i] is the owner
                    first = steps.pop(0)
                    if not steps and setitem:
                        return None  # xs[i] = v: a list item assignment stays
                    self._merge_int_indices(steps)
                    return Target(first.expr, code_of(first.expr), steps, _bare(node))
                self._merge_int_indices(steps)
                return Target(cur, key, steps, _bare(node))
            step = self.view_step(cur, last=not steps and setitem)
            if step is None:
                return None
            if step.kind == "opaque":
                if not steps and not setitem:
                    raise Unsupported(f"in-place update through {code_of(cur)}, a view with no simple inverse: "
                                      f"the base is not updated; rewrite it by hand")
                raise Unsupported(f"assignment through {code_of(cur)}, a view with no simple inverse: rewrite it by "
                                  f"hand")
            steps.append(step)
            cur = _bare(step.parent)

    def view_step(self, node: cst.BaseExpression, last: bool) -> Step | None:
        if type(node) is cst.Subscript:
            kind = self.index_kind(node.slice)
            if kind == "mask" and len(node.slice) == 1:
                return Step("mask", node, node.value, list(node.slice))
            if kind in ("mask", "advanced") and not last:
                return Step("copy", node, node.value, list(node.slice))
            return Step("index", node, node.value, list(node.slice))
        if type(node) is cst.Attribute:
            if node.attr.value in IDENTITY_ATTRS:
                return Step("same", node, node.value)
            if node.attr.value in SELF_INVERSE_ATTRS:
                return Step("self_inverse", node, node.value, op=node)
            return None
        translated = _translated_view(node)
        if translated is not None:
            # `t2j.narrow(x, ...).copy_(v)` in code translated before (a view left as it was, T2J305): still a
            # view of x, left again, so that translating twice changes nothing
            return Step("opaque", node, translated)
        if type(node) is cst.Call and type(node.func) is cst.Attribute:
            name = node.func.attr.value
            if self.ctx.scopes.qualname(node.func) is not None:
                return None
            parent = node.func.value
            if name in IDENTITY_CALLS and not node.args:
                return Step("same", node, parent)
            if name in RESHAPE_VIEWS:
                return Step("reshape", node, parent)
            if name in SELF_INVERSE_CALLS:
                return Step("self_inverse", node, parent, op=node)
            if name == "permute":
                dims = self._int_literals(node.args)
                if dims is None:
                    return Step("opaque", node, parent)
                inv = [0] * len(dims)
                for i, d in enumerate(dims):
                    inv[d % len(dims)] = i
                op = cst.parse_expression(f"_.permute({', '.join(map(str, inv))})")
                return Step("permute", node, parent, op=op)
            if name in OPAQUE_VIEWS or name in MULTI_VIEWS:
                return Step("opaque", node, parent)
        return None

    @staticmethod
    def _int_literals(args) -> list[int] | None:
        values = [a.value for a in args]
        if len(values) == 1 and type(values[0]) in (cst.Tuple, cst.List):
            values = [e.value for e in values[0].elements]
        out = []
        for v in values:
            try:
                out.append(int(code_of(v)))
            except ValueError:
                return None
        return out

    def _merge_int_indices(self, steps: list[Step]) -> None:
        """x[i][j] -> one step x[i, j] when the first index is made of integers (each drops a dimension)."""
        i = 0
        while i + 1 < len(steps):
            a, b = steps[i], steps[i + 1]
            if a.kind == "index" and b.kind in ("index", "mask") and all(self._is_int_index(el) for el in a.index) \
                    and b.kind == "index":
                merged = Step("index", b.expr, a.parent, a.index + b.index)
                steps[i:i + 2] = [merged]
                continue
            i += 1

    def _is_int_index(self, el: cst.SubscriptElement) -> bool:
        if type(el.slice) is not cst.Index:
            return False
        v = _bare(el.slice.value)
        if type(v) is cst.Integer:
            return True
        if type(v) is cst.UnaryOperation and type(v.expression) is cst.Integer:
            return True
        return type(v) is cst.Name and v.value in self.frame.facts.ints

    def index_kind(self, elements) -> str:
        """basic (ints, slices, None, ...: a view), mask (a boolean tensor), advanced (a tensor or list index:
        a copy), or unknown (a name that may be an int or a tensor; treated as basic)."""
        kinds = []
        for el in elements:
            if type(el.slice) is cst.Slice:
                kinds.append("basic")
                continue
            v = _bare(el.slice.value)
            if is_mask_expr(v, self.frame.facts.bools):
                kinds.append("mask")
            elif type(v) in (cst.Integer, cst.Ellipsis) or type(v) is cst.Name and v.value == "None":
                kinds.append("basic")
            elif type(v) is cst.UnaryOperation and type(v.expression) is cst.Integer:
                kinds.append("basic")
            elif type(v) in (cst.List, cst.Tuple, cst.ListComp):
                kinds.append("advanced")
            elif type(v) is cst.Name:
                f = self.frame.facts
                kinds.append("basic" if v.value in f.ints else "advanced" if v.value in f.tensors else "unknown")
            elif type(v) is cst.Call:
                name = v.func.attr.value if type(v.func) is cst.Attribute else dotted(v.func)
                kinds.append("basic" if name in INT_CALLS and name not in ("argmax", "argmin", "max", "min",
                                                                           "abs", "sum") else "advanced")
            elif type(v) is cst.BinaryOperation and not _has_call(v):
                kinds.append("unknown")
            else:
                kinds.append("unknown")
        if "mask" in kinds:
            return "mask"
        if "advanced" in kinds:
            return "advanced"
        if "unknown" in kinds:
            return "unknown"
        return "basic"

    # --- mutation ------------------------------------------------------------------------------------------
    def mutate(self, tgt: Target, value, node, op: str | None = None, set_value=None, what: str = ""):
        """Statements that give `tgt`'s place the new value: `value` for a method or item assignment, or
        `place op value` for an augmented item assignment. Then the aliases' rebinds."""
        steps = tgt.steps
        new = self._owner_value(tgt, value, op, set_value)
        stmt = _assign(tgt.owner, new)
        out = [(stmt, True)]
        self._declare_free(tgt.key, node)
        if what:
            self.report("T2J301", f"in-place {what} on {tgt.key} rewritten as a functional update", node)
        elif steps:
            self.report("T2J301", f"item assignment to {tgt.key} rewritten with .at[]", node)
        self._frozen_check(tgt.key, node)
        self._note_loop(tgt.key)
        out.extend((s, False) for s in self.propagate(tgt.key, node))
        return out

    def _owner_value(self, tgt: Target, value, op, set_value):
        steps = tgt.steps
        if not steps:
            return value
        last = steps[-1]
        if set_value is not None:
            new = set_value  # a mask assignment: the parent's new value
            rest = steps[:-1]
        elif last.kind == "index" and op is not None:
            # x[idx] op= v
            kind = self.index_kind(last.index)
            method = AT_METHODS.get(op)
            if method and kind == "basic":
                new = _at(last.parent, last.index, method, [value])
            else:
                new = _at(last.parent, last.index, "set", [cst.BinaryOperation(
                    left=last.expr, operator=AUG_TO_BINOP[op](), right=paren(value))])
            rest = steps[:-1]
        elif op is not None:
            new = cst.BinaryOperation(left=paren(last.expr), operator=AUG_TO_BINOP[op](), right=paren(value))
            rest = steps
        else:
            new = value
            rest = steps
        for step in reversed(rest):
            new = self.inverse(step, new)
        return new

    def inverse(self, step: Step, child_new: cst.BaseExpression) -> cst.BaseExpression:
        """The new value of `step.parent` once the view `step.expr` holds `child_new`."""
        if step.kind == "same":
            return child_new
        if step.kind == "index":
            shortcut = self._at_shortcut(step, child_new)
            if shortcut is not None:
                return shortcut
            return _at(step.parent, step.index, "set", [self._fit_slot(step, child_new)])
        if step.kind == "reshape":
            shape = cst.Attribute(value=paren(step.parent), attr=cst.Name("shape"))
            return _method(child_new, "reshape", [_arg(shape)])
        if step.kind == "self_inverse":
            op = step.op
            if type(op) is cst.Attribute:
                return op.with_changes(value=paren(child_new))
            return op.with_changes(func=op.func.with_changes(value=paren(child_new)))
        if step.kind == "permute":
            return step.op.with_changes(func=step.op.func.with_changes(value=paren(child_new)))
        raise Unsupported(f"{code_of(step.expr)} has no simple inverse: its base is not updated")

    def _fit_slot(self, step: Step, value: cst.BaseExpression) -> cst.BaseExpression:
        """`t2j.drop_leading_ones(v, x[i].ndim)` for a value that may carry size-1 dims in front of the slot's."""
        call = _bare(value)
        while type(call) is cst.Subscript:  # v.topk(1)[1]
            call = _bare(call.value)
        if type(call) is not cst.Call:
            return value
        name = call.func.attr.value if type(call.func) is cst.Attribute else dotted(call.func) or ""
        keepdim = any(a.keyword is not None and a.keyword.value == "keepdim" and _is_true(a.value) for a in call.args)
        if name.rsplit(".", 1)[-1] not in LEADING_ONES_CALLS and not keepdim:
            return value
        self.need("t2j")
        ndim = cst.Attribute(value=paren(step.expr), attr=cst.Name("ndim"))
        return _call(cst.Attribute(value=cst.Name("t2j"), attr=cst.Name("drop_leading_ones")),
                     [_arg(value), _arg(ndim)])

    def _at_shortcut(self, step: Step, child_new) -> cst.BaseExpression | None:
        """x.at[i].set(x[i].add(v)) -> x.at[i].add(v); zeros_like/full_like -> set(0) / set(v)."""
        kind = self.index_kind(step.index)
        if kind != "basic":
            return None  # a tensor index may repeat: torch's x[idx] += v does not accumulate, .at[].add would
        value = _bare(child_new)
        if type(value) is cst.Call and type(value.func) is cst.Attribute:
            name = value.func.attr.value
            recv = value.func.value
            if name in AT_SHORTCUT and recv.deep_equals(step.expr) and len(value.args) == 1 \
                    and value.args[0].keyword is None and not value.args[0].star:
                return _at(step.parent, step.index, AT_SHORTCUT[name], [value.args[0].value])
            if name in ("zeros_like", "full_like") and value.args and value.args[0].value.deep_equals(step.expr) \
                    and all(a.keyword is None for a in value.args):
                fill = cst.Integer("0") if name == "zeros_like" else value.args[1].value if len(
                    value.args) == 2 else None
                if fill is not None:
                    return _at(step.parent, step.index, "set", [fill])
        if type(value) is cst.BinaryOperation and type(value.operator) in BINOP_AT \
                and _bare(value.left).deep_equals(step.expr):
            return _at(step.parent, step.index, BINOP_AT[type(value.operator)], [value.right])
        return None

    def _frozen_check(self, key: str, node) -> None:
        frame = self.frame
        if not key.startswith("self.") or frame.class_name is None or frame.method == "__init__":
            return
        facts = self.ctx.module_facts
        if facts is None or not facts.is_module(frame.class_name):
            return
        if frame.method in self._init_helpers_of(frame.class_name):
            return  # a helper that only __init__ calls: still initialisation (a submodule's field: eqx.tree_at)
        self.report("T2J303", f"{key} is updated inside {frame.method}: Equinox modules are frozen after __init__; "
                              f"keep it as state (eqx.nn.State) or return the new value to the caller", node)

    def _put_back(self, loop_kind: str) -> bool:
        """A loop over a list field's elements or a dict field's values (visit_For's "self.<field>" or
        "self.<field>.values()") in __init__ or a method only __init__ calls: the module-updates pass collects the
        rebuilt elements and puts them back into the field (ModuleUpdatesPass._rebuilt_field_loop)."""
        frame = self.frame
        if frame.class_name is None or not (frame.method == "__init__"
                                            or frame.method in self._init_helpers_of(frame.class_name)):
            return False
        kind = "dict" if loop_kind.endswith(".values()") else "list"
        return getattr(self._field(loop_kind.removesuffix(".values()")), "kind", None) == kind

    def _init_helpers_of(self, class_name: str) -> set[str]:
        """init_helpers of the file's first class of that name (classes without a mutation are not visited)."""
        if class_name not in self.init_helpers:
            finder = _FirstClass(class_name)
            walk(self.module, finder)
            self.init_helpers[class_name] = init_helpers(finder.found, self.ctx.word_cache) \
                if finder.found is not None else set()
        return self.init_helpers[class_name]

    def _note_loop(self, key: str) -> None:
        """An accumulation: a mutation, inside a loop, of a value that the loop body did not create."""
        if not self.loop_stack:
            return
        loop = self.loop_stack[-1][0]
        pos = self.ctx.positions.get(loop)
        if pos is None:
            return
        root = key.split("[")[0]
        lines = self.frame.facts.assign_lines.get(root, [])
        if any(pos.start.line <= line < self.line[0] for line in lines):
            return  # rebuilt at every iteration
        self.loop_stack[-1][1].append(key)

    # --- aliases -------------------------------------------------------------------------------------------
    def _used_later(self, key: str) -> bool:
        lines = self.frame.facts.loads.get(key, [])
        start, end = self.line
        if any(line > end for line in lines):
            return True
        for lo, hi in self.frame.facts.loops:
            if lo <= start <= hi and any(lo <= line <= hi for line in lines):
                return True
        return False

    def propagate(self, key: str, node) -> list[cst.BaseSmallStatement]:
        """After `key` got a new value: write it back into what it is a view of, rebind and recompute its aliases."""
        frame = self.frame
        out: list[cst.BaseSmallStatement] = []
        updated = [key]
        cur = key
        while cur in frame.tracked and frame.tracked[cur].kind != "container":
            t = frame.tracked[cur]
            parent = next(iter(t.sources)) if t.sources else None
            if parent is None:
                break
            if t.kind == "opaque" or t.fwd is None:
                self.report("T2J302", f"{cur} is a view of {parent} (line {t.line}); {parent} is not updated by "
                                      f"this in-place change", node)
                break
            new = cst.Name(cur) if "." not in cur else cst.parse_expression(cur)
            try:
                for step in reversed(t.steps):
                    new = self.inverse(step, new)
            except Unsupported:
                self.report("T2J302", f"{cur} is a view of {parent} (line {t.line}) with no simple inverse; "
                                      f"{parent} is not updated by this in-place change", node)
                break
            out.append(_assign(cst.parse_expression(parent), new))
            updated.append(parent)
            cur = parent
        root = cur
        self._caller_check(root, node)
        for k in updated:
            loop_kind = frame.facts.loop_targets.get(k.split(".")[0])
            if loop_kind == "other" or loop_kind is not None and loop_kind.startswith("self.") \
                    and not self._put_back(loop_kind):
                self.report("T2J302", f"{k} is a loop variable: the collection it came from keeps the old value",
                            node)
        for k, t in list(frame.tracked.items()):
            if k in updated or not (t.sources & set(updated)):
                continue
            live = self._used_later(k) or any(self._used_later(d) for d, dt in frame.tracked.items()
                                               if k in dt.sources)
            if not live:
                updated.append(k)
                continue
            if t.fwd is None or t.kind == "opaque" and t.fwd is None:
                self.report("T2J302", f"{k} shares memory with {', '.join(sorted(t.sources))} (line {t.line}) "
                                      f"and keeps the old value here", node)
                continue
            out.append(_assign(cst.parse_expression(k), t.fwd))
            updated.append(k)
        if len(out):
            rebound = [code_of(s.targets[0].target) for s in out]
            self.report("T2J301", f"aliases of {key} rebound after its in-place update: {', '.join(rebound)}", node)
        return out

    def _caller_check(self, root: str, node) -> None:
        frame = self.frame
        name = root.split(".")[0]
        if root in frame.caller_visible and len(self.frames) > 1:
            self.report("T2J306", f"{root} is an argument that torch updates in place: the caller's tensor no "
                                  f"longer changes; return the new value if the caller needs it", node)
            frame.caller_visible.discard(root)  # once per argument
        elif name != root and name in frame.caller_visible and name not in ("self", "cls"):
            pass  # an attribute of an argument: the module/training passes thread that state

    def kill(self, name: str) -> None:
        """`name` is rebound: it no longer shares storage with anything."""
        frame = self.frame
        frame.tracked.pop(name, None)
        frame.caller_visible.discard(name)
        for k, t in list(frame.tracked.items()):
            if name in t.sources:
                if t.kind == "container":
                    t.sources.discard(name)  # the list still holds the old tensor: it can no longer be rebuilt
                    t.fwd = None
                else:
                    del frame.tracked[k]  # a view of the old tensor: no longer tied to the name
                    continue
            if name in t.deps:
                t.fwd = None  # x[i] after i changed: cannot be recomputed or written back
                t.kind = "opaque" if t.kind != "container" else t.kind
            if not t.sources:
                del frame.tracked[k]

    def _plain_assign(self, target, value) -> None:
        """`target = value` in the source: a rebind, and maybe a new alias or view."""
        if type(target) in (cst.Tuple, cst.List):
            names = [e.value for e in target.elements]
            for n in names:
                key = self.lvalue_key(n) if type(n) in (cst.Name, cst.Attribute) else None
                if key:
                    self.kill(key)
            # a, b = x.chunk(2): views that cannot be recomputed one by one
            v = _bare(value)
            if type(v) is cst.Call and type(v.func) is cst.Attribute and v.func.attr.value in MULTI_VIEWS:
                src = self.lvalue_key(v.func.value)
                if src:
                    for n in names:
                        key = self.lvalue_key(n) if type(n) in (cst.Name, cst.Attribute) else None
                        if key:
                            self.frame.tracked[key] = Tracked(key, "opaque", None, {src}, [], self.line[0])
            return
        key = self.lvalue_key(target) if type(target) in (cst.Name, cst.Attribute) else None
        if key is None:
            return
        self.kill(key)
        v = _bare(value)
        line = self.line[0]
        if type(v) in (cst.List, cst.Tuple):
            sources = {self.lvalue_key(e.value) for e in v.elements if type(e) is not cst.StarredElement}
            sources.discard(None)
            if sources:
                self.frame.tracked[key] = Tracked(key, "container", value, set(sources), [], line, _names_in(v))
            return
        try:
            tgt = self.resolve(v)
        except Unsupported:
            # an opaque view: recomputed when its base changes, cannot write back
            base = self._opaque_base(v)
            if base:
                self.frame.tracked[key] = Tracked(key, "opaque", value, {base}, [], line, _names_in(v))
            return
        if tgt is None or tgt.key == key:
            return
        if any(s.kind in ("copy", "mask") for s in tgt.steps):
            return
        f = self.frame.facts
        if not tgt.steps and tgt.key not in f.tensors and tgt.key not in f.arrays and not (
                tgt.key in self.frame.tracked):
            return  # `lr = args.lr`: not known to be a tensor, and numbers are not shared
        kind = tgt.steps[-1].kind if tgt.steps else "same"
        deps = _names_in(v) - {tgt.key.split(".")[0]}
        self.frame.tracked[key] = Tracked(key, kind, value, {tgt.key}, tgt.steps, line, deps)
        self._kill_deps_watch(key)

    def _opaque_base(self, v) -> str | None:
        cur = v
        while type(cur) in (cst.Call, cst.Attribute, cst.Subscript):
            cur = cur.func.value if type(cur) is cst.Call and type(cur.func) is cst.Attribute else (
                cur.value if type(cur) is not cst.Call else None)
            if cur is None:
                return None
            key = self.lvalue_key(cur)
            if key:
                return key
        return None

    def _kill_deps_watch(self, key: str) -> None:
        pass

    # --- expression facts ----------------------------------------------------------------------------------
    def is_tensor_expr(self, node, facts: ScopeFacts) -> bool:
        node = _bare(node)
        if type(node) is cst.Name:
            return node.value in facts.tensors
        if type(node) is cst.Call:
            qual = self.ctx.scopes.qualname(node.func)
            if qual is not None:
                return qual.startswith("torch.") and not qual.startswith(TORCH_MODULE_QUAL) \
                    or qual.startswith("torch.nn.functional.")
            if type(node.func) is cst.Attribute:
                name = node.func.attr.value
                if name in NON_TENSOR_RESULTS:
                    return False
                if name in self.ctx.tables.methods and name not in CONTAINER_METHODS or name in self.inplace_names():
                    return True
                return self.is_tensor_expr(node.func.value, facts) and name not in ("tolist", "item")
            return False
        if type(node) is cst.Subscript:
            return self.is_tensor_expr(node.value, facts)
        if type(node) is cst.BinaryOperation:
            return self.is_tensor_expr(node.left, facts) or self.is_tensor_expr(node.right, facts)
        if type(node) is cst.UnaryOperation:
            return self.is_tensor_expr(node.expression, facts)
        if type(node) is cst.Attribute:
            return node.attr.value in ("data", "T", "mT", "grad", "real", "imag") and self.is_tensor_expr(
                node.value, facts)
        return False


class _Hoister(Transformer):
    """Rewrites the in-place calls of one expression, post-order (Python's evaluation order)."""

    def __init__(self, owner: InplacePass, pre: list) -> None:
        super().__init__()
        self.owner = owner
        self.pre = pre
        self.stack: list[cst.CSTNode] = []
        self.chain_targets: dict[int, Target | None] = {}
        self.computed: list[tuple[set[str], int]] = []  # names read by finished computations, their node ids

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.stack.append(node)
        return super().on_visit(node)

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        self.stack.pop()
        if type(original) in (cst.Call, cst.BinaryOperation, cst.UnaryOperation, cst.Comparison):
            reads = {dotted(n) for n in _all_refs(original)} - {None}
            self.computed.append((reads, id(original)))
        return result

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        return self.owner.rewrite_call(original, updated, self)

    def continues_chain(self) -> bool:
        """Whether the call being left is the receiver of another in-place method call."""
        if len(self.stack) < 3:
            return False
        call, attr, outer = self.stack[-1], self.stack[-2], self.stack[-3]
        return type(attr) is cst.Attribute and attr.value is call and type(outer) is cst.Call \
            and outer.func is attr and self.owner.mutation_kind(outer) == "method"

    def hoistable(self) -> bool:
        for i in range(len(self.stack) - 1):
            anc, child = self.stack[i], self.stack[i + 1]
            if type(anc) in (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp):
                return False
            if type(anc) is cst.IfExp and child is not anc.test:
                return False
            if type(anc) is cst.BooleanOperation and child is not anc.left:
                return False
        return True

    def read_before(self, key: str, call: cst.CSTNode) -> bool:
        """Whether a computation finished before this call (in evaluation order) read `key`: it saw the old value
        in torch. A bare reference does not count: it is the same tensor object, which torch updates too."""
        inside: set[int] = set()

        class V(Visitor):
            def on_visit(self, node) -> bool:
                inside.add(id(node))
                return True

        walk(call, V())
        return any(key in reads for reads, node_id in self.computed if node_id not in inside)


def _is_docstring(stmt) -> bool:
    return type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 and type(stmt.body[0]) is cst.Expr \
        and type(stmt.body[0].value) in (cst.SimpleString, cst.ConcatenatedString)


class _FirstClass(Visitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.found: cst.ClassDef | None = None

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.found is None and type(node) is cst.ClassDef and node.name.value == self.name:
            self.found = node
        return self.found is None and not isinstance(node, cst.BaseExpression)  # no class inside an expression


def field_loop(loop: cst.For) -> tuple[str, str, str] | None:
    """`for layer in self.layers:` -> ("layer", "layers", "list"); `for emb in self.tables.values():` ->
    ("emb", "tables", "dict"): a field's elements one by one."""
    it, target = loop.iter, loop.target
    if type(target) is not cst.Name:
        return None
    if type(it) is cst.Attribute and dotted(it.value) == "self":
        return target.value, it.attr.value, "list"
    if type(it) is cst.Call and not it.args and type(it.func) is cst.Attribute \
            and it.func.attr.value == "values" and type(it.func.value) is cst.Attribute \
            and dotted(it.func.value.value) == "self":
        return target.value, it.func.value.attr.value, "dict"
    return None


def init_helpers(cls: cst.ClassDef, word_cache: dict) -> set[str]:
    """Methods that `__init__` calls on self (transitively) and nothing else calls. word_cache: walk.words'."""
    methods = {s.name.value: s for s in cls.body.body if type(s) is cst.FunctionDef}
    calls: dict[str, set[str]] = {}
    for name, fn in methods.items():
        fn_words = words(fn, word_cache)
        if not any("." + m in fn_words for m in methods):
            continue  # calls no method (the words have `.m` for every attribute m)
        calls[name] = self_calls(fn) & methods.keys()
    reached, todo = set(), ["__init__"] if "__init__" in methods else []
    while todo:
        for callee in calls.get(todo.pop(), ()):
            if callee not in reached and callee != "__init__":
                reached.add(callee)
                todo.append(callee)
    others = set().union(*(c for n, c in calls.items() if n not in reached and n != "__init__")) if calls else set()
    return reached - others


def _all_refs(node: cst.CSTNode) -> list[cst.BaseExpression]:
    return find_all(node, cst.Name, cst.Attribute)


def parameter_listing(node: cst.BaseExpression) -> bool:
    """`model.parameters()`: the listing the module-updates pass puts back when the loop rebinds its elements."""
    return type(node) is cst.Call and type(node.func) is cst.Attribute \
        and node.func.attr.value == "parameters" and not node.args
