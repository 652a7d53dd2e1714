"""Facts about a file's training code, gathered before the rewrites: optimizers and the model each optimizes,
schedulers and their optimizer, which names hold modules, and which functions train a model they receive.

Names are tracked by spelling, not by scope: training scripts name a model `model` and an optimizer `optimizer`
wherever they appear, and a false match costs a diagnostic, not a silent change.
"""
from __future__ import annotations

import builtins

from dataclasses import dataclass, field

import libcst as cst

from torch2jax.transform.module_facts import STATEFUL_LAYERS, ModuleFacts
from torch2jax.transform.names import Scopes, dotted
from torch2jax.transform.walk import Visitor, find_all, iter_statements, names_read, walk, words

SCHEDULER_PREFIX = "torch.optim.lr_scheduler."
MODULE_METHODS_CHAINED = ("to", "cuda", "cpu", "float", "double", "half", "train", "eval")


@dataclass
class OptimizerFacts:
    name: str
    model: str | None  # the name of the module whose parameters it optimizes

    @property
    def state_name(self) -> str:
        return "opt_state" if self.name in ("optimizer", "opt") else f"{self.name}_state"


@dataclass
class TrainerFacts:
    """A function that trains models it receives: it gains each optimizer's state and returns the new state.
    `pairs` lists every (model parameter, optimizer parameter) it trains, the first being (model_param,
    optimizer_param); an optimizer of None is a model updated by hand from its gradients (manual SGD)."""

    name: str
    model_param: str
    optimizer_param: str | None
    pairs: list[tuple[str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.pairs:
            self.pairs = [(self.model_param, self.optimizer_param)]

    @property
    def model_params_trained(self) -> list[str]:
        return list(dict.fromkeys(m for m, _ in self.pairs))

    @property
    def optimizer_params(self) -> list[str]:
        return [o for _, o in self.pairs if o is not None]


@dataclass
class TrainingFacts:
    optimizers: dict[str, OptimizerFacts] = field(default_factory=dict)
    schedulers: dict[str, str] = field(default_factory=dict)  # scheduler name -> optimizer name
    models: dict[str, str] = field(default_factory=dict)  # name -> class (user class or torch layer)
    trainers: dict[str, TrainerFacts] = field(default_factory=dict)
    functions: dict[str, cst.FunctionDef] = field(default_factory=dict)
    factories: dict[str, str] = field(default_factory=dict)  # function returning a module -> its class
    # function or method returning a torch optimizer it builds -> its parameter whose parameters the optimizer
    # takes ("self" for a method building one over its own module, as nanoGPT's configure_optimizers), or None
    optimizer_factories: dict[str, str | None] = field(default_factory=dict)
    model_params: dict[str, dict[str, str]] = field(default_factory=dict)  # function -> {param: class}
    call_bindings: dict[str, list[dict[str, str | None]]] = field(default_factory=dict)  # function -> its calls'
    # {param: argument name}, to tell which model parameter each optimizer parameter goes with
    # models built from torch's own containers that hold BatchNorm (`model = nn.Sequential(..., nn.BatchNorm1d(6))`)
    stateful_builds: set[str] = field(default_factory=set)

    def optimizer(self, name: str) -> OptimizerFacts | None:
        return self.optimizers.get(name)


# translated code's optimizers count too: guesses made from how many optimizers a file has (which model a step
# trains) must come out the same when the translation is translated again
OPTIMIZER_PREFIXES = ("torch.optim.", "torch2jax.runtime.optim.")


def _is_optimizer_class(qual: str | None) -> bool:
    """torch.optim.SGD and the like (not the lr_scheduler module's classes), or the runtime's t2j.optim.SGD."""
    return bool(qual and qual.startswith(OPTIMIZER_PREFIXES) and ".lr_scheduler." not in qual
                and qual.rsplit(".", 1)[1][:1].isupper())


def strip_module_chain(node: cst.BaseExpression) -> cst.BaseExpression:
    """`Net().to(device).train()` -> `Net()`."""
    while type(node) is cst.Call and type(node.func) is cst.Attribute \
            and node.func.attr.value in MODULE_METHODS_CHAINED:
        node = node.func.value
    return node


def parameters_owner(node: cst.BaseExpression) -> str | None:
    """`model.parameters()` / `list(model.parameters())` / `model.fc.parameters()` -> "model"."""
    for call in _calls(node):
        if type(call.func) is cst.Attribute and call.func.attr.value in ("parameters", "named_parameters"):
            path = dotted(call.func.value)
            if path:
                return path.split(".")[0]
    return None


def lists_parameters(node: cst.BaseExpression) -> bool:
    """`model.parameters()` itself (no arguments), the first argument of every torch optimizer."""
    return type(node) is cst.Call and type(node.func) is cst.Attribute and not node.args \
        and node.func.attr.value == "parameters" and dotted(node.func.value) is not None


def parameters_owners(node: cst.BaseExpression) -> set[str]:
    """Every model whose parameters an expression lists: `chain(a.parameters(), b.parameters())` -> {a, b}."""
    owners = set()
    for call in _calls(node):
        if type(call.func) is cst.Attribute and call.func.attr.value in ("parameters", "named_parameters"):
            path = dotted(call.func.value)
            if path:
                owners.add(path.split(".")[0])
    return owners


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    return find_all(node, cst.Call)


class _Collector:
    """Functions (and the factories among them) and the assignments that make optimizers, schedulers and models,
    in source order. Both are statements: no expression is walked to find them."""

    def __init__(self, scopes: Scopes, modules: ModuleFacts, facts: TrainingFacts, word_cache: dict) -> None:
        self.scopes = scopes
        self.modules = modules
        self.facts = facts
        self.word_cache = word_cache
        self.parameter_lists: dict[str, str] = {}  # list name -> the model whose parameters a loop appends to it

    def collect(self, module: cst.Module) -> None:
        for stmt in iter_statements(module):
            if type(stmt) is cst.FunctionDef:
                self.visit_FunctionDef(stmt)
            elif type(stmt) is cst.Assign:
                self.visit_Assign(stmt)
            elif type(stmt) is cst.For:
                self._parameter_lists(stmt)

    def _parameter_lists(self, loop: cst.For) -> None:
        """`for n, p in model.named_parameters(): (decay if p.ndim >= 2 else no_decay).append(p)`: the lists hold
        model's parameters (nanoGPT's weight-decay groups)."""
        owner = parameters_owner(loop.iter)
        if owner is None:
            return
        for call in _calls(loop.body):
            if type(call.func) is cst.Attribute and call.func.attr.value == "append":
                target = call.func.value
                for t in (target.body, target.orelse) if type(target) is cst.IfExp else (target,):
                    if type(t) is cst.Name:
                        self.parameter_lists[t.value] = owner

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.facts.functions.setdefault(node.name.value, node)
        self._optimizer_factory(node)
        if words(node, self.word_cache).isdisjoint(self.modules.classes.keys() | self.facts.factories.keys()):
            return  # it returns no instance of a known class
        returned: dict[str, None] = {}  # in source order: the first one decides (a set's order would vary)
        for stmt in iter_statements(node):
            if type(stmt) is cst.Return:
                value = strip_module_chain(stmt.value) if stmt.value is not None else None
                if type(value) is cst.Call:
                    returned[dotted(value.func)] = None
        classes = [c for c in returned if c in self.modules.classes or c in self.facts.factories]
        if classes:
            self.facts.factories[node.name.value] = self.facts.factories.get(classes[0], classes[0])

    def _optimizer_factory(self, node: cst.FunctionDef) -> None:
        """`def make_opt(net, lr): opt = torch.optim.SGD(net.parameters(), lr); return opt` (or `return
        torch.optim.SGD(...)`): callers bind an optimizer of the model they pass."""
        if "optim" not in words(node, self.word_cache):
            return
        built: dict[str, cst.Call] = {}
        for stmt in iter_statements(node, enter=lambda s: type(s) not in (cst.FunctionDef, cst.ClassDef)):
            if type(stmt) is cst.Assign and len(stmt.targets) == 1 \
                    and type(stmt.targets[0].target) is cst.Name and self._builds_optimizer(stmt.value):
                built[stmt.targets[0].target.value] = stmt.value
            elif type(stmt) is cst.Return and stmt.value is not None:
                call = built.get(stmt.value.value) if type(stmt.value) is cst.Name else (
                    stmt.value if self._builds_optimizer(stmt.value) else None)
                if call is None:
                    continue
                params = [p.name.value for p in node.params.params]
                owner = parameters_owner(call.args[0].value) if call.args else None
                if owner not in params:
                    owner = "self" if params[:1] == ["self"] else None
                self.facts.optimizer_factories[node.name.value] = owner
                return

    def _builds_optimizer(self, value: cst.BaseExpression) -> bool:
        return type(value) is cst.Call and _is_optimizer_class(self.scopes.qualname(value.func))

    def _translated_init(self, value: cst.Call) -> tuple[str, str] | None:
        """(optimizer, model) of `optimizer.init(eqx.filter(model, eqx.is_array))` on a known optimizer."""
        if not (type(value.func) is cst.Attribute and value.func.attr.value == "init" and len(value.args) == 1):
            return None
        opt = dotted(value.func.value)
        arg = value.args[0].value
        if opt not in self.facts.optimizers or not (type(arg) is cst.Call and dotted(arg.func) == "eqx.filter"
                                                      and arg.args):
            return None
        model = dotted(arg.args[0].value)
        return (opt, model) if model is not None else None

    def _factory_model(self, call: cst.Call) -> str | None:
        """The model an optimizer factory's call passes: the argument for its model parameter, or the receiver of a
        method building an optimizer over its own module (`model.configure_optimizers(...)`)."""
        fn_name = call.func.attr.value if type(call.func) is cst.Attribute else dotted(call.func)
        owner = self.facts.optimizer_factories.get(fn_name)
        if owner == "self":
            return dotted(call.func.value) if type(call.func) is cst.Attribute else None
        fn = self.facts.functions.get(fn_name)
        if owner is None or fn is None:
            return None
        params = [p.name.value for p in fn.params.params]
        positional = [a for a in call.args if a.keyword is None and not a.star]
        arg = next((a.value for a in call.args if a.keyword and a.keyword.value == owner), None)
        if arg is None and params.index(owner) < len(positional):
            arg = positional[params.index(owner)].value
        return dotted(arg) if arg is not None else None

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1 or type(node.targets[0].target) is not cst.Name:
            return
        name = node.targets[0].target.value
        value = strip_module_chain(node.value)
        if type(value) is not cst.Call:
            return
        qual = self.scopes.qualname(value.func)
        local = dotted(value.func)
        init_of = self._translated_init(value)
        if init_of is not None:  # `opt_state = optimizer.init(eqx.filter(model, ...))`: a translated optimizer's model
            opt, model = init_of
            if self.facts.optimizers[opt].model is None:
                self.facts.optimizers[opt].model = model
            return
        if qual and qual.startswith(SCHEDULER_PREFIX):
            opt = dotted(value.args[0].value) if value.args else None
            self.facts.schedulers[name] = opt
        elif _is_optimizer_class(qual):
            owner = parameters_owner(value.args[0].value) if value.args else None
            if owner is None and value.args:  # groups of lists a loop filled with one model's parameters
                owners = {self.parameter_lists[n] for n in names_read(value.args[0].value)
                          if n in self.parameter_lists}
                owner = owners.pop() if len(owners) == 1 else None
            self.facts.optimizers[name] = OptimizerFacts(name, owner)
        elif type(value.func) is cst.Name and qual is None and local not in self.facts.functions \
                and local not in self.modules.classes and not hasattr(builtins, local) \
                and len(value.args) >= 2 and value.args[0].keyword is None \
                and lists_parameters(value.args[0].value) and parameters_owner(value.args[0].value) != "self":
            # `optimizer = opt_func(model.parameters(), lr)`: an optimizer class handed in (opt_func=torch.optim.SGD)
            self.facts.optimizers[name] = OptimizerFacts(name, parameters_owner(value.args[0].value))
        elif (local in self.facts.optimizer_factories and type(value.func) is cst.Name) or (
                type(value.func) is cst.Attribute and value.func.attr.value in self.facts.optimizer_factories):
            self.facts.optimizers[name] = OptimizerFacts(name, self._factory_model(value))
        elif local in self.modules.classes:
            self.facts.models[name] = local
        elif qual in ("copy.deepcopy", "copy.copy") and value.args and dotted(value.args[0].value) in self.facts.models:
            # ema_model = copy.deepcopy(model): a model of the same class (an EMA copy, a DQN target network)
            self.facts.models[name] = self.facts.models[dotted(value.args[0].value)]
            if dotted(value.args[0].value) in self.facts.stateful_builds:
                self.facts.stateful_builds.add(name)
        elif local in self.facts.factories:
            self.facts.models[name] = self.facts.factories[local]
        elif qual and qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper() \
                and not qual.endswith("Loss"):  # a criterion (nn.CrossEntropyLoss()) has nothing to train
            self.facts.models[name] = qual
            if self._holds_stateful(value):
                self.facts.stateful_builds.add(name)

    def _holds_stateful(self, value: cst.Call) -> bool:
        """Whether a torch layer's construction builds a BatchNorm, or a file class that holds one."""
        classes = self.modules.classes
        return any(self.scopes.qualname(c.func) in STATEFUL_LAYERS
                   or (dotted(c.func) in classes and classes[dotted(c.func)].stateful) for c in _calls(value))


def _is_method_call_stmt(stmt: cst.BaseStatement, method: str) -> cst.Call | None:
    if type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 and type(stmt.body[0]) is cst.Expr:
        call = stmt.body[0].value
        if type(call) is cst.Call and type(call.func) is cst.Attribute and call.func.attr.value == method:
            return call
    return None


def _find_trainers(facts: TrainingFacts, word_cache: dict) -> None:
    """Functions whose parameters include an optimizer that takes a step, or a model whose parameters are updated
    from their gradients (directly or through another trainer)."""
    changed = True
    while changed:
        changed = False
        for fn in facts.functions.values():
            if fn.name.value in facts.trainers:
                continue
            if words(fn, word_cache).isdisjoint({"step", "grad", *facts.trainers}):
                continue  # neither an optimizer's step(), a manual update nor a trainer's call
            params = [p.name.value for p in fn.params.params]
            pairs = _trainer_pairs(fn, params, facts)
            if pairs:
                facts.trainers[fn.name.value] = TrainerFacts(fn.name.value, pairs[0][0], pairs[0][1], pairs)
                changed = True


def manual_update_owner(stmt: cst.CSTNode) -> tuple[str, cst.For] | None:
    """`for p in model.parameters(): ... p.grad ...` (or over t2j.parameters(model), named_parameters): the model
    whose parameters the loop updates by hand from their gradients, and the loop."""
    if type(stmt) is not cst.For:
        return None
    target = stmt.target
    if type(target) is cst.Tuple and len(target.elements) == 2:
        target = target.elements[1].value  # for name, p in model.named_parameters()
    if type(target) is not cst.Name:
        return None
    it = stmt.iter
    if type(it) is not cst.Call:
        return None
    owner = None
    if type(it.func) is cst.Attribute and it.func.attr.value in ("parameters", "named_parameters") \
            and not it.args:
        owner = dotted(it.func.value)
    elif dotted(it.func) in ("t2j.parameters", "t2j.named_parameters") and len(it.args) == 1:
        owner = dotted(it.args[0].value)
    if owner is None or "." in owner:
        return None
    reads_grad, writes = [], []

    class V(Visitor):
        def visit_Attribute(self, node: cst.Attribute) -> None:
            if node.attr.value == "grad" and type(node.value) is cst.Name and node.value.value == target.value:
                reads_grad.append(node)

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            if dotted(node.target) in (target.value, f"{target.value}.data"):
                writes.append(node)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            if dotted(node.target) in (target.value, f"{target.value}.data"):
                writes.append(node)

        def visit_Call(self, node: cst.Call) -> None:  # p.data.add_(...), p.sub_(...): torch's in-place methods
            func = node.func
            if type(func) is cst.Attribute and func.attr.value.endswith("_") \
                    and not func.attr.value.startswith("_") \
                    and dotted(func.value) in (target.value, f"{target.value}.data"):
                writes.append(node)

    walk(stmt.body, V())
    # it reads the gradients and writes the parameter: a loop that only reads them (a gradient norm) is no update
    return (owner, stmt) if reads_grad and writes else None


def _trainer_pairs(fn: cst.FunctionDef, params: list[str], facts: TrainingFacts) -> list[tuple[str, str | None]]:
    steps: list = []

    class V(Visitor):
        def visit_For(self, node: cst.For) -> None:
            found = manual_update_owner(node)
            if found is not None and found[0] in params:
                steps.append((found[0], None))

        def visit_Call(self, call: cst.Call) -> None:
            if type(call.func) is cst.Attribute and call.func.attr.value == "step" and not call.args:
                steps.append(dotted(call.func.value))
            name = dotted(call.func)
            if name in facts.trainers:
                callee = facts.functions[name]
                bound = _bind_names(call, [p.name.value for p in callee.params.params])
                for m, o in facts.trainers[name].pairs:
                    if bound.get(m) in params and (o is None or bound.get(o) in params):
                        steps.append((bound[m], bound.get(o) if o is not None else None))

    walk(fn, V())
    pairs: list[tuple[str, str | None]] = []
    optimizers = list(dict.fromkeys(s for s in steps if isinstance(s, str) and s in params
                                    and s not in facts.schedulers))
    for s in steps:
        if isinstance(s, tuple):
            if s not in pairs:
                pairs.append(s)
        elif s in optimizers:
            model = _model_of_optimizer_param(fn, params, s, optimizers, facts)
            if model and (model, s) not in pairs:
                pairs.append((model, s))
    return pairs


def _model_of_optimizer_param(fn: cst.FunctionDef, params: list[str], optimizer: str, optimizers: list[str],
                              facts: TrainingFacts) -> str | None:
    """The parameter holding the model an optimizer parameter trains: what the file's calls pass (the model of the
    optimizer given for it), else a parameter whose name starts the optimizer's (encoder / encoder_optimizer), else,
    with one optimizer, the model the function uses."""
    for bound in facts.call_bindings.get(fn.name.value, []):
        opt = facts.optimizers.get(bound.get(optimizer) or "")
        if opt is not None and opt.model is not None:
            hits = [p for p in params if bound.get(p) == opt.model]
            if hits:
                return hits[0]
    named = sorted((p for p in params if p != optimizer and p not in optimizers and optimizer.startswith(p)
                    and (optimizer[len(p):][:1] == "_" or optimizer[len(p):][:1].isupper())),
                   key=len, reverse=True)
    if named:
        return named[0]
    if len(optimizers) > 1:
        return None  # several optimizers: guessing one model for all of them would train the wrong one
    return _model_param(fn, params, optimizer, facts)


def _model_param(fn: cst.FunctionDef, params: list[str], optimizer: str, facts: TrainingFacts) -> str | None:
    """The parameter holding the trained model: one that is called, or named like a model, or whose
    .train()/.parameters() is used."""
    called = set()

    class V(Visitor):
        def visit_Call(self, call: cst.Call) -> None:
            name = dotted(call.func)
            if name in params:
                called.add(name)
            if type(call.func) is cst.Attribute and call.func.attr.value in ("train", "eval", "parameters"):
                owner = dotted(call.func.value)
                if owner in params:
                    called.add(owner)

    walk(fn, V())
    candidates = [p for p in params if p in called and p != optimizer]
    return candidates[0] if candidates else None


def _bind_names(call: cst.Call, params: list[str]) -> dict[str, str | None]:
    out = {}
    for i, arg in enumerate(call.args):
        if arg.star:
            break
        if arg.keyword is not None:
            out[arg.keyword.value] = dotted(arg.value)
        elif i < len(params):
            out[params[i]] = dotted(arg.value)
    return out


def _find_model_params(module: cst.Module, facts: TrainingFacts, word_cache: dict) -> None:
    """Function parameters that receive a model at some call site in the file, and the model's class."""

    class V(Visitor):
        def visit_Call(self, call: cst.Call) -> None:
            name = dotted(call.func)
            fn = facts.functions.get(name or "")
            if fn is None:
                return
            params = [p.name.value for p in fn.params.params]
            bound = _bind_names(call, params)
            facts.call_bindings.setdefault(name, []).append(bound)
            for param, arg in bound.items():
                if arg in facts.models:
                    facts.model_params.setdefault(name, {})[param] = facts.models[arg]

    for stmt in module.body:  # only statements that call a function of the file with a model
        stmt_words = words(stmt, word_cache)
        if not stmt_words.isdisjoint(facts.functions) and not stmt_words.isdisjoint(facts.models):
            walk(stmt, V())


def collect_training_facts(module: cst.Module, scopes: Scopes, modules: ModuleFacts,
                           word_cache: dict | None = None) -> TrainingFacts:
    word_cache = {} if word_cache is None else word_cache
    facts = TrainingFacts()
    _Collector(scopes, modules, facts, word_cache).collect(module)
    _find_model_params(module, facts, word_cache)
    _find_trainers(facts, word_cache)
    return facts
