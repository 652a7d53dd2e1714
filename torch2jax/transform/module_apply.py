"""`model.apply(init_fn)`: torch calls init_fn on every submodule, which mutates it in place. Equinox modules are
immutable, so the translated init_fn (whose in-place writes the module-updates pass turned into
`m = eqx.tree_at(...)`) returns the module, and the call rebuilds the model from what it returns:

    netG.apply(weights_init)          ->   netG = t2j.apply(netG, weights_init)
    self.apply(self._init_weights)    ->   t2j.apply_in_init(self, self._init_weights)   (inside __init__)

The randomness pass then passes a key to t2j.apply when init_fn draws random numbers.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass
from torch2jax.transform.codegen import code_of
from torch2jax.transform.inplace import init_helpers
from torch2jax.transform.module_facts import MODULE_LIKE_NAMES
from torch2jax.transform.names import dotted
from torch2jax.transform.walk import Visitor, transform, walk


class ModuleApplyPass(Pass):
    TRIGGERS = (".apply(", ".modules()")
    EXPRESSIONS = False  # its hooks: functions, for loops, expression statements

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.init_functions: set[str] = set()  # names (function or method) passed to a model's .apply()
        self.function_depth = 0
        self.in_init: list[bool] = []  # per enclosing function: __init__, or a method only __init__ calls
        self.init_methods: list[set[str]] = []  # per enclosing class: its __init__ and the helpers only it calls
        self.kinds: list[str] = []  # "class" / "function", innermost last
        self.generated: list[set[str]] = [set()]  # function names made in each enclosing function (unique there)

    def wants(self, node) -> bool:
        # statements that call .apply / .modules(), and the init functions passed to .apply (found first)
        return type(node) is cst.Module or not self.words.isdisjoint(self.ctx.words(node))

    def visit_Module(self, node: cst.Module) -> None:
        models = set(getattr(self.ctx.training_facts, "models", None) or {})
        finder = _ApplyCalls(models)
        walk(node, finder)
        self.init_functions = finder.functions
        self.words = {"apply", "modules"} | self.init_functions

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        # torchvision's `self._initialize_weights()` at the end of __init__: its loop over self.modules() runs
        # while the module is being built, as if it were written in __init__
        helpers = init_helpers(node, self.ctx.word_cache) if type(node.body) is cst.IndentedBlock else set()
        self.init_methods.append({"__init__"} | helpers)
        self.kinds.append("class")

    def leave_ClassDef(self, original, updated):
        self.init_methods.pop()
        self.kinds.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        method = bool(self.kinds) and self.kinds[-1] == "class"
        self.in_init.append(node.name.value in self.init_methods[-1] if method else node.name.value == "__init__")
        self.kinds.append("function")
        self.generated.append(set())

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        self.in_init.pop()
        self.kinds.pop()
        self.generated.pop()
        if original.name.value not in self.init_functions or _returns_value(updated):
            return updated
        params = [p.name.value for p in updated.params.params if p.name.value != "self"]
        if not params or type(updated.body) is not cst.IndentedBlock:
            return updated
        body = transform(updated.body, _BareReturns(params[0]))  # an early `return` hands the module back too
        ret = cst.SimpleStatementLine([cst.Return(cst.Name(params[0]))])
        return updated.with_changes(body=body.with_changes(body=[*body.body, ret]))

    def leave_For(self, original: cst.For, updated: cst.For):
        """`for m in self.modules(): <rebind m>` (torchvision's init loop) -> a function of m applied to every
        submodule, in modules()'s pre-order."""
        target, owner = _modules_loop(updated)
        if target is None or not _rebinds(updated.body, target) or _has_break(updated.body):
            return updated
        fn_name, k = f"_update_{target}", 2
        while fn_name in self.generated[-1]:
            fn_name, k = f"_update_{target}{k}", k + 1
        self.generated[-1].add(fn_name)
        body = transform(updated.body, _BareReturns(target, also_continue=True))
        fn = cst.FunctionDef(name=cst.Name(fn_name), params=cst.Parameters([cst.Param(cst.Name(target))]),
                             body=body.with_changes(body=[*body.body, cst.SimpleStatementLine(
                                 [cst.Return(cst.Name(target))])]),
                             leading_lines=updated.leading_lines)
        self.need("t2j")
        if owner == "self":
            if not (self.in_init and self.in_init[-1]):
                self.report("T2J211", f"the loop over self.modules() rebinds {target} outside __init__ (and the "
                                      "methods only __init__ calls): an Equinox module is immutable once built; "
                                      f"left as it is", original)
                return updated
            call = f"t2j.apply_in_init(self, {fn_name}, pre_order=True)"
        else:
            call = f"{owner} = t2j.apply({owner}, {fn_name}, pre_order=True)"
        self.report("T2J209", f"the loop over {owner}.modules() rebinds {target}: it became {fn_name}, applied to "
                              "every submodule (Equinox modules are immutable)", original)
        return cst.FlattenSentinel([fn, cst.parse_statement(call + "\n")])

    def leave_SimpleStatementLine(self, original, updated):
        if len(updated.body) != 1 or type(updated.body[0]) is not cst.Expr:
            return updated
        call = updated.body[0].value
        target = _apply_target(call, None)
        if target is None or _fn_name(call.args[0].value) not in self.init_functions:
            return updated
        fn = code_of(call.args[0].value)
        self.need("t2j")
        if target == "self":
            if not (self.in_init and self.in_init[-1]):
                return updated
            self.report("T2J209", "self.apply(fn) in __init__: fn rebuilds each submodule built so far "
                                  "(Equinox modules are immutable)", original)
            return updated.with_changes(body=[cst.Expr(cst.parse_expression(f"t2j.apply_in_init(self, {fn})"))])
        self.report("T2J209", f"{target}.apply({fn}): the model is rebuilt from what {fn} returns for each "
                              "submodule (Equinox modules are immutable)", original)
        return updated.with_changes(body=[cst.parse_statement(f"{target} = t2j.apply({target}, {fn})\n").body[0]])


def _fn_name(node) -> str | None:
    """`weights_init` or `self._init_weights` -> the function's name."""
    path = dotted(node)
    if path is None:
        return None
    parts = path.split(".")
    return parts[-1] if len(parts) == 1 or (len(parts) == 2 and parts[0] == "self") else None


def _apply_target(call, models: set[str] | None) -> str | None:
    """`model.apply(fn)` with one plain argument: "model" (when it is a model, or any name if models is None)."""
    if type(call) is not cst.Call or type(call.func) is not cst.Attribute or call.func.attr.value != "apply":
        return None
    if len(call.args) != 1 or call.args[0].keyword or call.args[0].star or _fn_name(call.args[0].value) is None:
        return None
    target = dotted(call.func.value)
    if target is None or "." in target:
        return None
    if models is None or target == "self" or target in models:
        return target
    # the training facts are not always collected: a name that says it holds a model (not a DataFrame's apply)
    return target if any(word in target.lower() for word in MODULE_LIKE_NAMES) else None


class _ApplyCalls(Visitor):
    def __init__(self, models: set[str]) -> None:
        self.models = models
        self.functions: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:
        if _apply_target(node, self.models) is not None:
            self.functions.add(_fn_name(node.args[0].value))


def _returns_value(fn: cst.FunctionDef) -> bool:
    found = []

    class V(Visitor):
        def visit_FunctionDef(self, node) -> bool:
            return node is fn

        def visit_Return(self, node: cst.Return) -> None:
            if node.value is not None:
                found.append(node)

    walk(fn, V())
    return bool(found)


def _modules_loop(loop: cst.For) -> tuple[str | None, str | None]:
    it = loop.iter
    if type(loop.target) is not cst.Name or loop.orelse is not None or type(it) is not cst.Call \
            or it.args or type(it.func) is not cst.Attribute or it.func.attr.value != "modules":
        return None, None
    owner = dotted(it.func.value)
    return (loop.target.value, owner) if owner is not None and "." not in owner else (None, None)


def _rebinds(body, name: str) -> bool:
    found = []

    class V(Visitor):
        def visit_FunctionDef(self, node) -> bool:
            return False

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            if type(node.target) is cst.Name and node.target.value == name:
                found.append(node)

    walk(body, V())
    return bool(found)


def _has_break(body) -> bool:
    found = []

    class V(Visitor):
        def visit_For(self, node) -> bool:
            return False

        def visit_While(self, node) -> bool:
            return False

        def visit_FunctionDef(self, node) -> bool:
            return False

        def visit_Break(self, node) -> None:
            found.append(node)

    walk(body, V())
    return bool(found)


class _BareReturns(cst.CSTTransformer):
    def __init__(self, name: str, also_continue: bool = False) -> None:
        self.name = name
        self.also_continue = also_continue  # a loop body become a function: `continue` returns the module

    def visit_For(self, node) -> bool:
        return not self.also_continue

    def visit_While(self, node) -> bool:
        return not self.also_continue

    def leave_Continue(self, original, updated):
        if not self.also_continue:
            return updated
        return cst.Return(cst.Name(self.name), whitespace_after_return=cst.SimpleWhitespace(" "))

    def visit_FunctionDef(self, node) -> bool:
        return False

    def visit_Lambda(self, node) -> bool:
        return False

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        if updated.value is not None:
            return updated
        return updated.with_changes(value=cst.Name(self.name), whitespace_after_return=cst.SimpleWhitespace(" "))
