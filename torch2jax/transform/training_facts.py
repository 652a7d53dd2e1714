"""Facts about a file's training code, gathered before the rewrites: optimizers and the model each optimizes,
schedulers and their optimizer, which names hold modules, and which functions train a model they receive.

Names are tracked by spelling, not by scope: training scripts name a model `model` and an optimizer `optimizer`
wherever they appear, and a false match costs a diagnostic, not a silent change.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from torch2jax.transform.module_facts import ModuleFacts
from torch2jax.transform.names import Scopes, dotted
from torch2jax.transform.walk import Visitor, iter_statements, walk, words

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
    """A function that trains a model it receives: it gains the optimizer state and returns the new state."""

    name: str
    model_param: str
    optimizer_param: str


@dataclass
class TrainingFacts:
    optimizers: dict[str, OptimizerFacts] = field(default_factory=dict)
    schedulers: dict[str, str] = field(default_factory=dict)  # scheduler name -> optimizer name
    models: dict[str, str] = field(default_factory=dict)  # name -> class (user class or torch layer)
    trainers: dict[str, TrainerFacts] = field(default_factory=dict)
    functions: dict[str, cst.FunctionDef] = field(default_factory=dict)
    factories: dict[str, str] = field(default_factory=dict)  # function returning a module -> its class
    model_params: dict[str, dict[str, str]] = field(default_factory=dict)  # function -> {param: class}

    def optimizer(self, name: str) -> OptimizerFacts | None:
        return self.optimizers.get(name)


def strip_module_chain(node: cst.BaseExpression) -> cst.BaseExpression:
    """`Net().to(device).train()` -> `Net()`."""
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
            and node.func.attr.value in MODULE_METHODS_CHAINED:
        node = node.func.value
    return node


def parameters_owner(node: cst.BaseExpression) -> str | None:
    """`model.parameters()` / `list(model.parameters())` / `model.fc.parameters()` -> "model"."""
    for call in _calls(node):
        if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("parameters", "named_parameters"):
            path = dotted(call.func.value)
            if path:
                return path.split(".")[0]
    return None


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    found = []

    class V(Visitor):
        SEES_LAYOUT = False

        def visit_Call(self, n: cst.Call) -> None:
            found.append(n)

    walk(node, V())
    return found


class _Collector:
    """Functions (and the factories among them) and the assignments that make optimizers, schedulers and models,
    in source order. Both are statements: no expression is walked to find them."""

    def __init__(self, scopes: Scopes, modules: ModuleFacts, facts: TrainingFacts, word_cache: dict) -> None:
        self.scopes = scopes
        self.modules = modules
        self.facts = facts
        self.word_cache = word_cache

    def collect(self, module: cst.Module) -> None:
        for stmt in iter_statements(module):
            if isinstance(stmt, cst.FunctionDef):
                self.visit_FunctionDef(stmt)
            elif isinstance(stmt, cst.Assign):
                self.visit_Assign(stmt)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.facts.functions.setdefault(node.name.value, node)
        if words(node, self.word_cache).isdisjoint(self.modules.classes.keys() | self.facts.factories.keys()):
            return  # it returns no instance of a known class
        returned: dict[str, None] = {}  # in source order: the first one decides (a set's order would vary)
        for stmt in iter_statements(node):
            if isinstance(stmt, cst.Return):
                value = strip_module_chain(stmt.value) if stmt.value is not None else None
                if isinstance(value, cst.Call):
                    returned[dotted(value.func)] = None
        classes = [c for c in returned if c in self.modules.classes or c in self.facts.factories]
        if classes:
            self.facts.factories[node.name.value] = self.facts.factories.get(classes[0], classes[0])

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1 or not isinstance(node.targets[0].target, cst.Name):
            return
        name = node.targets[0].target.value
        value = strip_module_chain(node.value)
        if not isinstance(value, cst.Call):
            return
        qual = self.scopes.qualname(value.func)
        local = dotted(value.func)
        if qual and qual.startswith(SCHEDULER_PREFIX):
            opt = dotted(value.args[0].value) if value.args else None
            self.facts.schedulers[name] = opt
        elif qual and qual.startswith("torch.optim.") and qual.rsplit(".", 1)[1][:1].isupper():
            owner = parameters_owner(value.args[0].value) if value.args else None
            self.facts.optimizers[name] = OptimizerFacts(name, owner)
        elif local in self.modules.classes:
            self.facts.models[name] = local
        elif local in self.facts.factories:
            self.facts.models[name] = self.facts.factories[local]
        elif qual and qual.startswith("torch.nn.") and qual.rsplit(".", 1)[1][:1].isupper():
            self.facts.models[name] = qual


def _is_method_call_stmt(stmt: cst.BaseStatement, method: str) -> cst.Call | None:
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr):
        call = stmt.body[0].value
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == method:
            return call
    return None


def _find_trainers(facts: TrainingFacts, word_cache: dict) -> None:
    """Functions whose parameters include an optimizer that takes a step (directly or through another trainer)."""
    changed = True
    while changed:
        changed = False
        for fn in facts.functions.values():
            if fn.name.value in facts.trainers:
                continue
            if words(fn, word_cache).isdisjoint({"step", *facts.trainers}):
                continue  # neither an optimizer's step() nor a trainer's call
            params = [p.name.value for p in fn.params.params]
            found = _trainer_params(fn, params, facts)
            if found:
                facts.trainers[fn.name.value] = TrainerFacts(fn.name.value, *found)
                changed = True


def _trainer_params(fn: cst.FunctionDef, params: list[str], facts: TrainingFacts) -> tuple[str, str] | None:
    steps = []

    class V(Visitor):
        SEES_LAYOUT = False

        def visit_Call(self, call: cst.Call) -> None:
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "step" and not call.args:
                steps.append(dotted(call.func.value))
            name = dotted(call.func)
            if name in facts.trainers:
                t = facts.trainers[name]
                callee = facts.functions[name]
                cparams = [p.name.value for p in callee.params.params]
                bound = _bind_names(call, cparams)
                if bound.get(t.optimizer_param) in params and bound.get(t.model_param) in params:
                    steps.append((bound[t.model_param], bound[t.optimizer_param]))

    walk(fn, V())
    for s in steps:
        if isinstance(s, tuple):
            return s
        if s in params and s not in facts.schedulers:
            model = _model_param(fn, params, s, facts)
            if model:
                return model, s
    return None


def _model_param(fn: cst.FunctionDef, params: list[str], optimizer: str, facts: TrainingFacts) -> str | None:
    """The parameter holding the trained model: one that is called, or named like a model, or whose
    .train()/.parameters() is used."""
    called = set()

    class V(Visitor):
        SEES_LAYOUT = False

        def visit_Call(self, call: cst.Call) -> None:
            name = dotted(call.func)
            if name in params:
                called.add(name)
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("train", "eval", "parameters"):
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
        SEES_LAYOUT = False

        def visit_Call(self, call: cst.Call) -> None:
            name = dotted(call.func)
            fn = facts.functions.get(name or "")
            if fn is None:
                return
            params = [p.name.value for p in fn.params.params]
            for param, arg in _bind_names(call, params).items():
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
