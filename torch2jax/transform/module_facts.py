"""Facts about the nn.Module classes of a file, gathered before any rewrite: which classes are modules, their
fields and what kind of value each holds, which hold Equinox state (BatchNorm running statistics).

The facts are plain data so that a folder run can merge them across files (a base class in one file, its
subclasses in another).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from torch2jax.transform.names import Scopes, dotted, self_calls
from torch2jax.transform.walk import CLASS, Visitor, find_all, walk, words

MODULE_BASES = {"torch.nn.Module", "torch.nn.modules.module.Module"}
# torch layers whose forward updates buffers: Equinox state
STATEFUL_LAYERS = {"torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d", "torch.nn.SyncBatchNorm"}
CONTAINERS = {"torch.nn.Sequential", "torch.nn.ModuleList", "torch.nn.ModuleDict"}
PARAMETER = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}


@dataclass
class FieldFacts:
    name: str
    kind: str  # "module" (a layer or user module), "list", "dict", "array", "buffer", "static", "plain", "none"
    type_name: str | None = None  # qualified torch layer name, a user class name, or a static field's type
    stateful: bool = False
    conditional: bool = False  # assigned only on some paths, or also assigned None
    persistent: bool = True  # buffers: part of the state_dict
    holds: tuple[str, ...] = ()  # user module classes inside a container field (Sequential(MaxPool2d, DoubleConv))
    # a submodule whose kind is only known at run time (a module argument, a helper's result, `norm_layer(c)` with
    # norm_layer a class argument): a stateful class calls it through t2j.nn.call_with_state
    dynamic: bool = False
    own_stateful: bool | None = None  # `stateful` from torch layers alone, before ModuleFacts.close adds user classes


def _plain_tensor(name: str, conditional: bool) -> FieldFacts:
    """`self.table = torch.arange(4) + 1`: a tensor attribute that is neither a Parameter nor a registered buffer.
    torch neither trains it nor saves it: a buffer outside the state_dict (trained, it would drift under the
    optimizer, weight decay included)."""
    return FieldFacts(name, "buffer", persistent=False, conditional=conditional)


@dataclass
class ClassFacts:
    name: str
    bases: list[str]
    fields: dict[str, FieldFacts] = field(default_factory=dict)
    uses_training: bool = False
    stateful: bool = False
    members: list[str] = field(default_factory=list)  # user module classes held (for the stateful closure)
    # stateful only through submodules whose kind is known at run time (a norm_layer argument that defaults to
    # BatchNorm2d): __call__ takes `state=None` and returns (out, state) only when given a state
    state_optional: bool = False
    init_params: list[str] = field(default_factory=list)  # __init__'s parameters after self, in order
    param_fields: dict[str, str] = field(default_factory=dict)  # `self.f = p` in __init__: parameter p -> field f
    param_builds: dict[str, list[str]] = field(default_factory=dict)  # `self.f = p(c)`: parameter p -> fields f
    ties: bool = False  # __init__ ties weights: `self.head.weight = self.embed.weight` (runtime/ties.py)
    # fields built from other submodule fields (`self.net = nn.Sequential(self.conv1, ...)`): torch holds one
    # conv1 in both places, a tie of each of its parameters (runtime/ties.share_in_init)
    shares: list[str] = field(default_factory=list)
    # methods besides forward -> the `self.x` they call (fields or methods), and those of them that reach a stateful
    # submodule: they take the state and return (out, state), as forward does (close())
    method_calls: dict[str, set[str]] = field(default_factory=dict)
    stateful_methods: set[str] = field(default_factory=set)


@dataclass
class ModuleFacts:
    classes: dict[str, ClassFacts] = field(default_factory=dict)

    def is_module(self, name: str) -> bool:
        return name in self.classes

    def merge(self, other: "ModuleFacts") -> None:
        self.classes.update(other.classes)
        self.close()

    def close(self) -> None:
        """Propagate statefulness through submodules and base classes to a fixpoint."""
        changed = True
        while changed:
            changed = False
            for c in self.classes.values():
                stateful = c.stateful or any(self.classes[b].stateful for b in c.bases if b in self.classes)
                for f in c.fields.values():
                    held = [f.type_name, *f.holds]
                    if not f.stateful and any(h in self.classes and self.classes[h].stateful for h in held):
                        f.stateful = changed = True
                    stateful = stateful or f.stateful
                if stateful and not c.stateful:
                    c.stateful = changed = True
        surely: set[str] = set()  # stateful whatever the constructor's arguments
        changed = True
        while changed:
            changed = False
            for c in self.classes.values():
                if c.name in surely:
                    continue
                if any(b in surely for b in c.bases) or any(
                        not f.dynamic and (f.own_stateful or any(h in surely for h in (f.type_name, *f.holds)))
                        for f in c.fields.values()):
                    surely.add(c.name)
                    changed = True
        for c in self.classes.values():
            c.state_optional = c.stateful and c.name not in surely
            c.stateful_methods = self._stateful_methods(c) if c.stateful and not c.state_optional else set()

    def _stateful_methods(self, c: ClassFacts) -> set[str]:
        """Methods that call a stateful submodule, or such a method (`def embed(self, x): return self.enc(x)`).
        Not for a class whose state is optional (its forward returns out alone when given none)."""
        def stateful_field(name: str) -> bool:
            cls = c
            while cls is not None:
                if name in cls.fields:
                    return cls.fields[name].stateful or cls.fields[name].dynamic
                cls = next((self.classes[b] for b in cls.bases if b in self.classes), None)
            return False

        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, called in c.method_calls.items():
                if name not in found and any(x in found or stateful_field(x) for x in called):
                    found.add(name)
                    changed = True
        return found


MODULE_LIKE_NAMES = ("model", "net", "encoder", "decoder", "layer", "block", "module", "backbone", "head", "body",
                     "embed", "norm", "attn", "mlp", "proj", "conv", "fc", "classifier")
CONFIG_CALLS = {"int", "float", "str", "bool", "len", "round", "max", "min", "abs", "tuple", "math.sqrt", "math.log",
                "math.ceil", "math.floor", "math.prod"}


def is_config(node: cst.BaseExpression) -> bool:
    """A value that is configuration (numbers, strings, flags, shapes), so a static field, not a pytree leaf."""
    if type(node) in (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString):
        return True
    if type(node) is cst.Name:
        return node.value in ("True", "False") or not any(m in node.value.lower() for m in MODULE_LIKE_NAMES)
    if type(node) is cst.Attribute:  # config.n_embd, args.dropout
        return not any(m in node.attr.value.lower() for m in MODULE_LIKE_NAMES) and is_config(node.value)
    if type(node) is cst.UnaryOperation:
        return is_config(node.expression)
    if type(node) in (cst.BinaryOperation, cst.BooleanOperation):
        return is_config(node.left) and is_config(node.right)
    if type(node) is cst.Comparison:
        return is_config(node.left) and all(is_config(c.comparator) for c in node.comparisons)
    if type(node) is cst.IfExp:
        return is_config(node.body) and is_config(node.orelse)
    if type(node) is cst.Tuple:
        return all(is_config(e.value) for e in node.elements)
    if type(node) is cst.Call:
        return dotted(node.func) in CONFIG_CALLS and all(is_config(a.value) for a in node.args)
    return False


def literal_type(node: cst.BaseExpression) -> str | None:
    if type(node) is cst.Integer:
        return "int"
    if type(node) is cst.Float:
        return "float"
    if type(node) in (cst.SimpleString, cst.ConcatenatedString):
        return "str"
    if type(node) is cst.Name and node.value in ("True", "False"):
        return "bool"
    return None


def torch_name(node: cst.BaseExpression) -> str | None:
    """`self.blocks[0].attn.weight` -> "blocks.0.attn.weight": the torch name of a submodule's attribute reached
    from self (literal indices only)."""
    parts = []
    while type(node) in (cst.Attribute, cst.Subscript):
        if type(node) is cst.Attribute:
            parts.append(node.attr.value)
        else:
            index = node.slice[0].slice if len(node.slice) == 1 else None
            value = index.value if type(index) is cst.Index else None
            if type(value) is cst.Integer:
                parts.append(value.value)
            elif type(value) is cst.SimpleString and value.evaluated_value.isidentifier():
                parts.append(value.evaluated_value)
            else:
                return None
        node = node.value
    if not (type(node) is cst.Name and node.value == "self") or len(parts) < 2:
        return None
    return ".".join(reversed(parts))


def weight_tie(target: cst.BaseExpression, value: cst.BaseExpression) -> tuple[str, str] | None:
    """`self.head.weight = self.embed.weight` in __init__: (alias, source) torch names, when both are weights or
    biases of submodules (sharing a whole submodule is not a tie of this kind)."""
    alias, source = torch_name(target), torch_name(value)
    if alias is None or source is None:
        return None
    if not all(n.rsplit(".", 1)[1].endswith(("weight", "bias")) for n in (alias, source)):
        return None
    return alias, source


def fields_held(value: cst.BaseExpression) -> list[str]:
    """The `self.f` handed whole to a container or constructor (`nn.Sequential(self.conv1, self.relu)`,
    `nn.ModuleList([self.a, self.b])`), not called or read through (`self.f(x)`, `self.f.weight`)."""
    found = []
    todo = [value]
    while todo:
        e = todo.pop()
        if type(e) is cst.Attribute and type(e.value) is cst.Name and e.value.value == "self":
            found.append(e.attr.value)
        elif type(e) is cst.Call:
            todo += [a.value for a in e.args]
        elif type(e) in (cst.List, cst.Tuple):
            todo += [el.value for el in e.elements]
        elif type(e) is cst.Dict:
            todo += [el.value for el in e.elements if type(el) is cst.DictElement]
    return found


def _calls_in(node: cst.CSTNode) -> list[cst.Call]:
    return find_all(node, cst.Call)


def _assigns(node: cst.CSTNode) -> list[cst.Assign]:
    return find_all(node, cst.Assign)


def _bind(params: list[str], args) -> list[tuple[str, cst.BaseExpression]]:
    out = []
    for i, a in enumerate(args):
        if a.star:
            break
        if a.keyword is not None:
            out.append((a.keyword.value, a.value))
        elif i < len(params):
            out.append((params[i], a.value))
    return out


def _assigned(fn: cst.FunctionDef, name: str) -> list[cst.BaseExpression]:
    return [a.value for a in _assigns(fn) for t in a.targets
            if type(t.target) is cst.Name and t.target.value == name]


def _list_contents(fn: cst.FunctionDef | None, name: str) -> list[cst.CSTNode]:
    """What a local list of `fn` is built from: `layers = [...]`, `layers.append(x)` / `.extend(xs)` /
    `.insert(i, x)`, `layers += [...]`."""
    if fn is None:
        return []
    found: list[cst.CSTNode] = list(_assigned(fn, name))
    for n in find_all(fn, cst.Call, cst.AugAssign):
        if type(n) is cst.AugAssign:
            if dotted(n.target) == name:
                found.append(n.value)
        elif type(n.func) is cst.Attribute and dotted(n.func.value) == name \
                and n.func.attr.value in ("append", "extend", "insert"):
            found.extend(a.value for a in n.args)
    return found


def _references_in(node: cst.CSTNode) -> list[cst.BaseExpression]:
    """Names and dotted attributes (nn.BatchNorm2d), outermost first."""
    found = []

    class V(Visitor):
        def visit_Attribute(self, n: cst.Attribute) -> bool:
            found.append(n)
            return dotted(n) is None

        def visit_Name(self, n: cst.Name) -> None:
            found.append(n)

    walk(node, V())
    return found


def _user_classes_in(node: cst.CSTNode, facts: ModuleFacts) -> list[str]:
    return sorted({n.value for n in _references_in(node) if type(n) is cst.Name and n.value in facts.classes})


def _called_attributes(cls: cst.ClassDef) -> set[str]:
    """The X of every `self.X(...)` in the class's methods outside __init__: fields used as callables."""
    return {name for m in cls.body.body if type(m) is cst.FunctionDef and m.name.value != "__init__"
            for name in self_calls(m)}


class _Collector(Visitor):
    def __init__(self, scopes: Scopes, known: ModuleFacts,
                 functions: dict[str, cst.FunctionDef] | None = None) -> None:
        self.scopes = scopes
        self.facts = known
        self.current: ClassFacts | None = None
        self.in_init = False
        self.branch_depth = 0
        self.functions = functions or {}  # the file's top-level functions: builders of layers (make_layers(cfg))
        self.methods: dict[str, cst.FunctionDef] = {}
        self.called: set[str] = set()
        self.params: set[str] = set()
        self.layer_classes: dict[str, set[str | None]] = {}
        # subclasses of torch's Sequential (torchvision's ConvBNReLU): class -> whether it builds BatchNorm
        self.sequential_classes: dict[str, bool] = {}

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        bases = []
        is_module = False
        for b in node.bases:
            qual = self.scopes.qualname(b.value)
            name = dotted(b.value)
            if qual in MODULE_BASES:
                is_module = True
            elif name in self.facts.classes:
                is_module = True
                bases.append(name)
            elif qual == "torch.nn.Sequential" or name in self.sequential_classes:
                self.sequential_classes[node.name.value] = self._has_stateful(node) or self.sequential_classes.get(
                    name, False)
        if not is_module:
            return True
        self.current = ClassFacts(node.name.value, bases)
        self.facts.classes[node.name.value] = self.current
        self.methods = {m.name.value: m for m in node.body.body if type(m) is cst.FunctionDef}
        self.called = _called_attributes(node)
        for name, fn in self.methods.items():
            if name not in ("__init__", "forward", "__call__") and not fn.decorators and fn.params.params \
                    and fn.params.params[0].name.value == "self":
                self.current.method_calls[name] = self_calls(fn)
        return True

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        if self.current is not None and self.current.name == node.name.value:
            self.current = None

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.in_init = self.current is not None and node.name.value == "__init__"
        if self.in_init:
            self.init_fn = node
            self.params, self.layer_classes = self._init_names(node)
            p = node.params
            self.current.init_params = [q.name.value for q in (*p.posonly_params, *p.params, *p.kwonly_params)][1:]

    def _init_names(self, fn: cst.FunctionDef) -> tuple[set[str], dict[str, set[str | None]]]:
        """__init__'s parameters, and the names in it that hold a layer class: `norm_layer=nn.BatchNorm2d`, or
        `if norm_layer is None: norm_layer = nn.BatchNorm2d`. None among a name's classes: a parameter, so a
        caller may pass another class."""
        p = fn.params
        params = [*p.posonly_params, *p.params, *p.kwonly_params]
        names = {q.name.value for q in params}
        classes: dict[str, set[str | None]] = {}
        for q in params:
            cls = self._layer_class(q.default) if q.default is not None else None
            if cls is not None or (q.default is not None and dotted(q.default) == "None"):
                classes.setdefault(q.name.value, set()).update({cls, None})
        for assign in _assigns(fn):
            cls = self._layer_class(assign.value)
            for t in assign.targets:
                if type(t.target) is cst.Name and cls is not None:
                    classes.setdefault(t.target.value, set()).add(cls)
        return names, {k: v for k, v in classes.items() if v - {None}}

    def _layer_class(self, node: cst.BaseExpression) -> str | None:
        """The module class an expression names (not builds): nn.BatchNorm2d, a user module class,
        functools.partial(nn.BatchNorm2d, eps=...)."""
        if type(node) is cst.Call and self.scopes.qualname(node.func) == "functools.partial" and node.args:
            return self._layer_class(node.args[0].value)
        if type(node) not in (cst.Name, cst.Attribute):
            return None
        qual = self.scopes.qualname(node)
        if qual is not None and qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper() \
                and qual not in MODULE_BASES and qual not in PARAMETER:
            return qual
        local = dotted(node)
        return local if local in self.facts.classes else None

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.in_init = False

    def visit_If(self, node) -> None:
        self.branch_depth += 1

    def leave_If(self, node) -> None:
        self.branch_depth -= 1

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self.current is not None and dotted(node) == "self.training":
            self.current.uses_training = True

    def visit_Assign(self, node: cst.Assign) -> None:
        if self.current and len(node.targets) == 1 and weight_tie(node.targets[0].target, node.value):
            self.current.ties = True  # in __init__ or a helper it calls (the module updates pass tells them apart)
        if not (self.in_init and self.current):
            return
        for t in node.targets:
            if type(t.target) is cst.Attribute and dotted(t.target.value) == "self":
                self._field(t.target.attr.value, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self.in_init and self.current and node.value is not None and type(node.target) is cst.Attribute \
                and dotted(node.target.value) == "self":
            self._field(node.target.attr.value, node.value)

    def visit_Call(self, node: cst.Call) -> None:
        if not (self.in_init and self.current) or type(node.func) is not cst.Attribute:
            return
        if dotted(node.func.value) != "self" or not node.args:
            return
        method = node.func.attr.value
        first = node.args[0].value
        if method in ("register_buffer", "register_parameter") and type(first) is cst.SimpleString:
            name = first.evaluated_value
            persistent = not any(a.keyword and a.keyword.value == "persistent" and dotted(a.value) == "False"
                                 for a in node.args)
            if len(node.args) > 2 and node.args[2].keyword is None and dotted(node.args[2].value) == "False":
                persistent = False
            kind = "buffer" if method == "register_buffer" else "array"
            self._add(FieldFacts(name, kind, persistent=persistent,
                                 conditional=self.branch_depth > 0))

    def _add(self, f: FieldFacts) -> None:
        old = self.current.fields.get(f.name)
        if old is None:
            self.current.fields[f.name] = f
            return
        old.conditional = old.conditional or f.conditional or f.kind == "none" or old.kind == "none"
        if old.kind == "none":
            f.conditional = True
            self.current.fields[f.name] = f
        elif "module" in (old.kind, f.kind):
            # `self.shortcut = nn.Sequential()`, then on some paths a Sequential with BatchNorm: either may be there
            merged = self._either(f.name, old, f, True)
            merged.own_stateful = bool(old.own_stateful or f.own_stateful)
            # two stateless layers (Upsample or ConvTranspose2d): whichever it is, it is called without the state
            merged.dynamic = (old.dynamic or f.dynamic) or (merged.dynamic and bool(
                merged.stateful or merged.holds))
            self.current.fields[f.name] = merged

    def _field(self, name: str, value: cst.BaseExpression) -> None:
        if type(value) is cst.Name and value.value in self.params:
            self.current.param_fields.setdefault(value.value, name)
        for call in _calls_in(value):
            if type(call.func) is cst.Name and call.func.value in self.params:
                self.current.param_builds.setdefault(call.func.value, []).append(name)
        if any(f != name and self.current.fields.get(f) is not None
               and self.current.fields[f].kind in ("module", "list", "dict")
               for f in fields_held(value)) and name not in self.current.shares:
            self.current.shares.append(name)
            self.current.ties = True
        self._add(self.classify(name, value))

    def _module_evidence(self, value: cst.BaseExpression) -> tuple[bool, bool]:
        """Whether an argument builds a module, and whether that holds state: nn.Sequential(conv, BatchNorm2d),
        a user module, make_layers(cfg, batch_norm=True)."""
        module = stateful = False
        for call in _calls_in(value):
            qual = self.scopes.qualname(call.func) or ""
            local = dotted(call.func) or ""
            builder = self._builder(call.func)
            if (qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper()) or local in self.facts.classes \
                    or builder is not None:
                module = True
            if builder is not None and self._builds_stateful(builder, set()):
                stateful = True
        return module, stateful or self._has_stateful(value)

    def call_site(self, call: cst.Call, fn: cst.FunctionDef | None, cls: ClassFacts | None) -> None:
        """`Block(64, 64, 1, downsample)`, `VGG(make_layers(cfg, batch_norm=True))`: what a caller hands the
        constructor (or a subclass hands `super().__init__`) tells what the field that keeps it holds."""
        if cls is None or not (cls.param_fields or cls.param_builds):
            return
        self.methods = {}  # the caller's own helpers are not followed
        self.params, self.layer_classes = self._init_names(fn) if fn is not None else (set(), {})
        for param, arg in _bind(cls.init_params, call.args):
            built = self._layer_class(arg)
            for name in cls.param_builds.get(param, []) if built is not None else []:
                f = cls.fields.get(name)  # Block(c, norm_layer=nn.BatchNorm2d): self.norm = norm_layer(c)
                if f is not None and f.kind in ("module", "plain", "static"):
                    f.kind, f.dynamic = "module", True
                    f.stateful = f.stateful or built in STATEFUL_LAYERS
                    f.holds = f.holds + ((built,) if built in self.facts.classes else ())
            f = cls.fields.get(cls.param_fields.get(param, ""))
            if f is None:
                continue
            values = [arg] + (_assigned(fn, arg.value) if fn is not None and type(arg) is cst.Name else [])
            evidence = [self._module_evidence(v) for v in values]
            if any(m for m, _ in evidence) and f.kind in ("static", "plain"):
                f.kind, f.type_name, f.dynamic = "module", None, True
            if any(st for _, st in evidence) and f.kind in ("module", "list", "dict", "plain"):
                f.stateful = True

    def classify(self, name: str, value: cst.BaseExpression) -> FieldFacts:
        facts = self._classify(name, value)
        facts.own_stateful = facts.stateful
        if facts.kind in ("plain", "static") and name in self.called \
                and not (type(value) is cst.Name and value.value in self.layer_classes):
            # self.downsample = downsample, called in forward: a module handed to the constructor (maybe None)
            facts = FieldFacts(name, "module", conditional=facts.conditional or type(value) is cst.Name,
                               dynamic=True)
        if facts.kind in ("module", "list", "dict") and type(value) in (cst.Call, cst.List, cst.ListComp):
            # a container's user classes: their statefulness is only final once every class is read (close());
            # Sequential(*layers) holds what __init__ put in the list
            parts = [value, *(n for a in getattr(value, "args", ()) if type(a.value) is cst.Name
                              for n in _list_contents(getattr(self, "init_fn", None), a.value.value))]
            called = [dotted(call.func) for part in parts for call in _calls_in(part)]
            called += [c for name in called for c in self.layer_classes.get(name or "", ())]  # block = ConvBN
            facts.holds = tuple(dict.fromkeys(c for c in called if c in self.facts.classes))
        return facts

    def _classify(self, name: str, value: cst.BaseExpression) -> FieldFacts:
        cond = self.branch_depth > 0
        if type(value) is cst.Name and value.value == "None":
            return FieldFacts(name, "none", conditional=True)
        if type(value) is cst.IfExp:
            return self._either(name, self._classify(name, value.body), self._classify(name, value.orelse), cond)
        if type(value) is cst.Name and value.value in self.layer_classes:
            return FieldFacts(name, "static", conditional=cond)  # a class kept to build layers later
        if type(value) is cst.Call and type(value.func) is cst.Name \
                and value.func.value in self.layer_classes:
            # norm_layer(planes): a module of the class the name holds; a parameter may hold another class
            classes = self.layer_classes[value.func.value]
            known = classes - {None}
            exact = None not in classes and len(known) == 1
            holds = tuple(c for c in known if c in self.facts.classes)
            return FieldFacts(name, "module", next(iter(known)) if exact else None,
                              stateful=any(c in STATEFUL_LAYERS for c in known), conditional=cond,
                              dynamic=not exact, holds=holds)
        if type(value) is cst.Call:
            builder = self._builder(value.func)
            built = self._built_type(builder) if builder is not None else None
            if built is not None:  # conv3x3(...) whose every return is nn.Conv2d(...)
                return FieldFacts(name, "module", built, stateful=built in STATEFUL_LAYERS, conditional=cond)
            if builder is not None and name in self.called:
                # self.layer1 = self._make_layer(...): whatever the helper builds, called like a module
                return FieldFacts(name, "module", stateful=self._builds_stateful(builder, set()), conditional=cond,
                                  dynamic=True, holds=tuple(_user_classes_in(builder, self.facts)))
            if builder is not None and self._builds_tensor(builder):
                # self.freqs_cis = precompute_freqs_cis(dim, n): a helper that computes a tensor from torch ops
                return _plain_tensor(name, cond)
        if type(value) is cst.Call:
            qual = self.scopes.qualname(value.func)
            local = dotted(value.func)
            if qual in PARAMETER:
                return FieldFacts(name, "array", conditional=cond)
            if qual == "torch.nn.ModuleList" or qual == "torch.nn.ModuleDict":
                kind = "list" if qual.endswith("List") else "dict"
                inner = self._member_type(value)
                return FieldFacts(name, kind, inner, stateful=self._is_stateful_type(inner) or
                                  self._has_stateful(value), conditional=cond)
            if qual == "torch.nn.Sequential":
                # Sequential(*layers): what __init__ put in the list counts as what the Sequential holds
                built = [value, *(n for a in value.args if type(a.value) is cst.Name
                                  for n in _list_contents(getattr(self, "init_fn", None), a.value.value))]
                stateful = any(self._has_stateful(n) for n in built)
                return FieldFacts(name, "module", qual, stateful=stateful, conditional=cond,
                                  dynamic=stateful and not any(self._has_stateful(n, surely=True) for n in built))
            if qual is not None and qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper():
                return FieldFacts(name, "module", qual, stateful=qual in STATEFUL_LAYERS, conditional=cond)
            if local in self.facts.classes:
                self.current.members.append(local)
                return FieldFacts(name, "module", local, conditional=cond)
            if local in self.sequential_classes:  # called like the runtime's Sequential it subclasses
                return FieldFacts(name, "module", local, stateful=self.sequential_classes[local], conditional=cond)
            if qual is not None and qual.startswith("torch"):
                return _plain_tensor(name, cond)
        if type(value) in (cst.List, cst.ListComp):
            inner = self._member_type(value)
            if inner is not None:
                return FieldFacts(name, "list", inner, stateful=self._is_stateful_type(inner), conditional=cond)
        if self._mentions_tensor(value):
            return _plain_tensor(name, cond)
        if is_config(value):
            return FieldFacts(name, "static", literal_type(value), conditional=cond)
        # unknown: a plain field (a module passed in stays trainable; a number stays static under filter_jit)
        return FieldFacts(name, "plain", conditional=cond)

    def _either(self, name: str, a: FieldFacts, b: FieldFacts, cond: bool) -> FieldFacts:
        """`DropPath(p) if p > 0 else nn.Identity()`: a module when either branch builds one."""
        if a.kind == "none" or b.kind == "none":
            other = b if a.kind == "none" else a
            other.conditional = True
            return other
        if a.kind != "module" and b.kind != "module":
            return a if a.kind == b.kind else FieldFacts(name, "plain", conditional=cond)
        same = a.type_name == b.type_name and a.kind == b.kind
        return FieldFacts(name, "module", a.type_name if same else None, stateful=a.stateful or b.stateful,
                          conditional=cond, dynamic=a.dynamic or b.dynamic or not same, holds=a.holds + b.holds)

    def _builder(self, func: cst.BaseExpression) -> cst.FunctionDef | None:
        """The function a field's value comes from when it is a method of the class or a function of the file."""
        path = dotted(func) or ""
        if path.startswith("self.") and path.count(".") == 1:
            return self.methods.get(path[5:])
        return self.functions.get(path)

    def _built_type(self, fn: cst.FunctionDef) -> str | None:
        """The torch layer a builder returns when every return statement builds the same one."""
        found = set()

        class V(Visitor):
            def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
                return n is fn  # returns of nested functions are theirs

            def visit_Return(self, n: cst.Return) -> None:
                found.add(n.value)

        walk(fn, V())
        types = {self.scopes.qualname(v.func) if type(v) is cst.Call else None for v in found}
        if len(types) != 1:
            return None
        qual = types.pop()
        if qual is None or not qual.startswith("torch.nn.") or qual in CONTAINERS \
                or not qual.rsplit(".", 1)[1][:1].isupper():
            return None
        return qual

    def _builds_stateful(self, fn: cst.FunctionDef, seen: set[str]) -> bool:
        """Whether a builder mentions a stateful layer class (nn.BatchNorm2d), directly or through the builders
        it calls. User classes it builds count once their statefulness is known (ModuleFacts.close)."""
        if fn.name.value in seen:
            return False
        seen.add(fn.name.value)
        for node in _references_in(fn):
            if self.scopes.qualname(node) in STATEFUL_LAYERS:
                return True
        for call in _calls_in(fn):
            inner = self._builder(call.func)
            if inner is not None and self._builds_stateful(inner, seen):
                return True
        return False

    def _member_type(self, node: cst.CSTNode) -> str | None:
        for call in _calls_in(node):
            qual = self.scopes.qualname(call.func)
            local = dotted(call.func)
            if local in self.facts.classes:
                return local
            if qual is not None and qual.startswith("torch.nn.") and qual not in CONTAINERS \
                    and qual.rsplit(".", 1)[1][:1].isupper():
                return qual
        return None

    def _is_stateful_type(self, type_name: str | None) -> bool:
        return type_name in STATEFUL_LAYERS or self.sequential_classes.get(type_name or "", False) or (
            type_name in self.facts.classes and self.facts.classes[type_name].stateful)

    def _has_stateful(self, node: cst.CSTNode, surely: bool = False) -> bool:
        """Whether node builds a stateful layer; with `surely`, not counting classes a caller could replace."""
        for call in _calls_in(node):
            if self._is_stateful_type(self.scopes.qualname(call.func)) or self._is_stateful_type(dotted(call.func)):
                return True
            classes = self.layer_classes.get(call.func.value, set()) if type(call.func) is cst.Name else set()
            if (not surely or None not in classes) and any(self._is_stateful_type(c) for c in classes):
                return True  # Sequential(conv, norm_layer(c)) with norm_layer = nn.BatchNorm2d
        return False

    def _builds_tensor(self, fn: cst.FunctionDef) -> bool:
        """fn computes with torch's tensor functions and builds no module (no torch.nn layer, no user class)."""
        calls = _calls_in(fn)
        quals = [self.scopes.qualname(call.func) or "" for call in calls]
        if any(q.startswith("torch.nn.") and q.rsplit(".", 1)[1][:1].isupper() for q in quals):
            return False
        if any(dotted(call.func) in self.facts.classes for call in calls):
            return False
        return any(q.startswith("torch") and not q.startswith("torch.nn.") for q in quals)

    def _mentions_tensor(self, node: cst.CSTNode) -> bool:
        for call in _calls_in(node):
            qual = self.scopes.qualname(call.func)
            if qual is not None and qual.startswith("torch") and not qual.startswith("torch.nn."):
                return True
        return False


def collect_module_facts(module: cst.Module, scopes: Scopes, known: ModuleFacts | None = None,
                         word_cache: dict | None = None) -> ModuleFacts:
    facts = known if known is not None else ModuleFacts()
    functions = {s.name.value: s for s in module.body if type(s) is cst.FunctionDef}
    collector = _Collector(scopes, facts, functions)
    word_cache = {} if word_cache is None else word_cache
    for stmt in module.body:
        if CLASS in words(stmt, word_cache):  # outside a class the collector notes nothing
            walk(stmt, collector)
    if any(c.param_fields or c.param_builds for c in facts.classes.values()):
        _visit_call_sites(module, collector)
    facts.close()
    return facts


def _visit_call_sites(module: cst.Module, collector: _Collector) -> None:
    class V(Visitor):
        def __init__(self) -> None:
            self.fns: list[cst.FunctionDef] = []
            self.classes: list[str] = []

        def visit_ClassDef(self, node: cst.ClassDef) -> None:
            self.classes.append(node.name.value)

        def leave_ClassDef(self, node: cst.ClassDef) -> None:
            self.classes.pop()

        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.fns.append(node)

        def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
            self.fns.pop()

        def visit_Call(self, node: cst.Call) -> None:
            facts = collector.facts.classes
            cls = facts.get(node.func.value) if type(node.func) is cst.Name else None
            func = node.func
            if cls is None and self.classes and self.classes[-1] in facts and type(func) is cst.Attribute \
                    and func.attr.value == "__init__" and type(func.value) is cst.Call \
                    and dotted(func.value.func) == "super":
                cls = next((facts[b] for b in facts[self.classes[-1]].bases if b in facts), None)
            if cls is not None:
                collector.call_site(node, self.fns[-1] if self.fns else None, cls)

    walk(module, V())
