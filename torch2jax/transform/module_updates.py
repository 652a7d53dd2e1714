"""Updates of parameters inside immutable Equinox modules.

torch code sets parameters in place: `nn.init.zeros_(m.bias)`, `model.fc.weight.copy_(w)` (which the in-place pass
has already turned into `model.fc.weight = w`), `for p in model.parameters(): p.copy_(...)`. Equinox modules are
frozen after `__init__`, so:

    nn.init.normal_(w, 0, 0.02)         ->  w = nn.init.normal_(w, 0, 0.02)   (the init table renders the new value)
    model.fc.weight = w                 ->  model = eqx.tree_at(lambda m: m.fc.weight, model, w)
    self.fc.weight = w   (in __init__)  ->  self.fc = eqx.tree_at(lambda m: m.weight, self.fc, w)
    for p in model.parameters():        ->  new_params = []
        p = f(p)                            for p in t2j.parameters(model):
                                                p = f(p)
                                                new_params.append(p)
                                            model = t2j.replace_parameters(model, new_params)
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass, add_marker
from torch2jax.transform.codegen import code_of
from torch2jax.transform.inplace import field_loop, init_helpers, parameter_listing
from torch2jax.transform.module_facts import weight_tie
from torch2jax.transform.names import dotted, return_values
from torch2jax.transform.walk import SETATTR, Visitor, walk


def _chain(node: cst.BaseExpression) -> tuple[str, str] | None:
    """`model.layers[0].weight` -> ("model", ".layers[0].weight"): a root name and an access path."""
    parts = []
    while type(node) in (cst.Attribute, cst.Subscript):
        if type(node) is cst.Attribute:
            parts.append("." + node.attr.value)
        else:
            parts.append(code_of(node).removeprefix(code_of(node.value)))
        node = node.value
    if type(node) is not cst.Name or not parts:
        return None
    return node.value, "".join(reversed(parts))


class ModuleUpdatesPass(Pass):
    TRIGGERS = ("init.", "init_", "parameters(", ".weight", ".bias", ".data")
    EXPRESSIONS = False  # its hooks: classes, functions, simple statements, for loops

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.methods: list[str] = []
        self.function_nodes: list[cst.FunctionDef] = []
        self.class_depth = 0
        self.class_names: list[str] = []
        self.initialising: list[set[str]] = []
        self.updaters: dict[str, tuple[str, int]] = {}  # function -> the model parameter it updates, its index
        # what the rewrites start from: an init call (nn.init.x_, or an imported init function), an assignment to
        # an attribute or item, a loop over parameters()
        self.words = {"init", "parameters", "named_parameters", SETATTR}
        self.words |= {k for k, q in ctx.scopes.aliases.items() if q.startswith("torch.nn.init")}

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    def visit_Module(self, node: cst.Module) -> None:
        # functions that update the parameters of a model they are given and return nothing (`update_ema(ema,
        # model, decay)`): they return it, and the calls that dropped their (None) result rebind it
        self.updaters = {fn.name.value: (param, [p.name.value for p in fn.params.params].index(param))
                         for fn in node.body if type(fn) is cst.FunctionDef and "parameters" in self.ctx.words(fn)
                         for param in [_updated_parameter(fn)] if param is not None}
        self.words |= set(self.updaters)

    def visit_ClassDef(self, node) -> None:
        self.class_depth += 1
        self.class_names.append(node.name.value)
        # __init__ and the methods only it calls
        self.initialising.append({"__init__"} | init_helpers(node, self.ctx.word_cache))

    def leave_ClassDef(self, original, updated):
        self.class_depth -= 1
        self.class_names.pop()
        self.initialising.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.scopes.push(node)
        self.methods.append(node.name.value if self.class_depth else "")
        self.function_nodes.append(node)

    def leave_FunctionDef(self, original, updated):
        self.ctx.scopes.pop()
        self.methods.pop()
        self.function_nodes.pop()
        param = self.updaters.get(original.name.value, ("", 0))[0] if not self.function_nodes \
            and not self.class_depth else None
        if param:
            self.report("T2J308", f"{original.name.value} updates the parameters of its argument {param} in place: it "
                                  f"returns {param} now, and its callers rebind it", original)
            body = list(updated.body.body) + [cst.parse_statement(f"return {param}\n")]
            return updated.with_changes(body=updated.body.with_changes(body=body))
        return updated

    def _caller_loses(self, root: str, node):
        """A function rebuilds the model it was given (`def init_(model): for p in model.parameters(): ...`)
        without returning it: torch changed the caller's model in place, the caller's Equinox model stays as it
        was. (A training function is threaded by the training pass: it returns the models it trains.)"""
        fn = self.function_nodes[-1] if self.function_nodes else None
        trainers = getattr(self.ctx.training_facts, "trainers", None) or {}
        trainer = trainers.get(fn.name.value) if fn is not None else None
        if fn is None or root == "self" or root not in {p.name.value for p in fn.params.params} \
                or any(root in _names_of(v) for v in return_values(fn)) \
                or (trainer is not None and root in trainer.model_params_trained) \
                or (self.updaters.get(fn.name.value, ("",))[0] == root and len(self.function_nodes) == 1):
            return None
        return self.report("T2J306", f"{root} is an argument whose parameters torch updates in place: the caller's "
                                     f"model no longer changes; return {root} and rebind it at the call site", node)

    def leave_SimpleStatementLine(self, original, updated):
        if len(updated.body) != 1:
            return updated
        small = updated.body[0]
        if type(small) is cst.Expr and type(small.value) is cst.Call \
                and dotted(small.value.func) in self.updaters:
            return self._rebind_updated(updated, small.value)
        if type(small) is cst.Expr and type(small.value) is cst.Call:
            qual = self.ctx.scopes.qualname(small.value.func)
            if qual and qual.startswith("torch.nn.init.") and qual.endswith("_") and small.value.args:
                # an in-place init as a statement: assign its result to the tensor it filled (`p.data` is `p`)
                call, target = small.value, small.value.args[0].value
                while type(target) is cst.Attribute and target.attr.value == "data":
                    target = target.value
                if target is not call.args[0].value:
                    self.report("T2J106", ".data dropped: the init fills the array itself", call.args[0].value)
                    call = call.with_changes(args=[call.args[0].with_changes(value=target), *call.args[1:]])
                assign = cst.Assign([cst.AssignTarget(target)], call)
                return updated.with_changes(body=[self._attribute_update(assign) or assign])
        if type(small) is cst.Assign:
            new = self._attribute_update(small)
            if new is not None:
                return updated.with_changes(body=[new])
        return updated

    def _rebind_updated(self, stmt: cst.SimpleStatementLine, call: cst.Call) -> cst.SimpleStatementLine:
        """`update_ema(ema, model, d)` -> `ema = update_ema(ema, model, d)`: the function returns the model now."""
        name = dotted(call.func)
        arg = _argument(call, *self.updaters[name])
        if type(arg) is not cst.Name:
            self.report("T2J306", f"{name} returns the model it updates now: rebind it at this call by hand", call)
            return stmt
        lost = self._caller_loses(arg.value, call)
        new = stmt.with_changes(body=[cst.Assign([cst.AssignTarget(cst.Name(arg.value))], call)])
        return add_marker(new, [lost]) if lost is not None else new

    def _attribute_update(self, assign: cst.Assign) -> cst.Assign | None:
        if len(assign.targets) != 1:
            return None
        chain = _chain(assign.targets[0].target)
        if chain is None:
            return None
        root, path = chain
        method = self.methods[-1] if self.methods else ""
        if root == "self" and self.class_depth:
            if method not in self.initialising[-1] or path.count(".") + path.count("[") < 2 \
                    or not path.startswith("."):  # `self[k] = v`: a container's own item, not a field
                return None  # a field set in __init__; elsewhere the in-place pass reports it
            tie = weight_tie(assign.targets[0].target, assign.value)
            if tie is not None:
                self.need("t2j")
                self.report("T2J204", f"self.{tie[0]} tied to self.{tie[1]}: one parameter, used in both places "
                                      "(t2j.tie_in_init; the module's methods start with t2j.tied(self))",
                            assign.targets[0].target)
                return cst.parse_statement(f"t2j.tie_in_init(self, {tie[0]!r}, {tie[1]!r})\n").body[0]
            first = path[1:].split(".")[0].split("[")[0]
            root, path = f"self.{first}", path[len(first) + 1:]
            if self._is_dict_field(first) and path.startswith("."):
                key = path[1:].split(".")[0].split("[")[0]  # a ModuleDict is a plain dict in the translation
                path = f"[{key!r}]{path[len(key) + 1:]}"
        elif root == "self" or type(assign.targets[0].target) is not cst.Attribute:
            return None
        if "data" == path.rsplit(".", 1)[-1]:
            path = path[: -len(".data")]  # m.weight.data = v: the tensor itself
            if not path:
                return None
        self.need("eqx")
        self.report("T2J201", f"{root}{path} set through eqx.tree_at: Equinox modules are immutable",
                    assign.targets[0].target)
        update = cst.parse_statement(f"{root} = eqx.tree_at(lambda m: m{path}, {root}, VALUE)\n").body[0]
        *args, value = update.value.args  # the value itself, not a copy: its calls keep their source positions
        return update.with_changes(value=update.value.with_changes(args=[*args, value.with_changes(
            value=assign.value)]))

    def _field_kind(self, name: str) -> str | None:
        facts = self.ctx.module_facts
        cls = facts.classes.get(self.class_names[-1]) if facts is not None and self.class_names else None
        field = cls.fields.get(name) if cls is not None else None
        return None if field is None else field.kind

    def _is_dict_field(self, name: str) -> bool:
        return self._field_kind(name) == "dict"

    def _rebuilt_field_loop(self, original: cst.For, updated: cst.For):
        """`for emb in self.embs: nn.init.normal_(emb.weight)` in __init__ (or a method only it calls), over a list
        or a dict's values: each element comes back rebuilt (`emb = eqx.tree_at(...)`), and rebinding the loop
        variable would lose it. The loop collects the new elements and the field takes them back."""
        found = field_loop(updated)
        in_init = self.class_depth and self.methods and self.methods[-1] in self.initialising[-1]
        if found is None or not in_init or updated.orelse is not None:
            return None
        var, name, kind = found
        if not _rebinds(updated.body, var) or self._field_kind(name) != kind:
            return None
        field, collected = f"self.{name}", f"new_{name}"
        self.report("T2J202", f"the elements of {field} updated in a loop: collected and put back into {field}",
                    original)
        body = list(updated.body.body) + [cst.parse_statement(f"{collected}.append({var})\n")]
        loop = updated.with_changes(body=updated.body.with_changes(body=body), leading_lines=[])
        # a ModuleDict is a dict in the translation: its keys, in order, with the new values
        put_back = collected if kind == "list" else f"dict(zip({field}, {collected}))"
        return cst.FlattenSentinel([
            cst.parse_statement(f"{collected} = []\n").with_changes(leading_lines=updated.leading_lines), loop,
            cst.parse_statement(f"{field} = {put_back}\n")])

    def _report_lost_rebuilds(self, original: cst.For, updated: cst.For) -> None:
        """A loop variable this pass rebuilt (`layer = eqx.tree_at(...)` for `nn.init.zeros_(layer.bias)`) in a loop
        whose collection is not put back: the collection keeps the old modules. Reported, never silent."""
        it = original.iter
        if type(it) is cst.Call and type(it.func) is cst.Attribute and it.func.attr.value in MODULE_LISTINGS:
            return  # for m in self.modules(): the module-apply pass makes it a function applied to every submodule
        targets = [original.target] if type(original.target) is not cst.Tuple else [
            e.value for e in original.target.elements]
        for t in targets:
            if type(t) is cst.Name and _rebinds(updated.body, t.value) and not _rebinds(original.body, t.value):
                self.report("T2J302", f"{t.value} is a loop variable: its rebuilt module is not put back into "
                                      f"{code_of(original.iter)}, which keeps the old one; update the collection "
                                      "by hand", original)

    def leave_For(self, original: cst.For, updated: cst.For):
        """`for p in model.parameters(): p = ...` -> collect the new values and put them back. The same for the
        one listing of a zip whose element the loop rebinds (an EMA or target-network update:
        `for p_ema, p in zip(ema.parameters(), model.parameters()): p_ema.mul_(d).add_(p, alpha=1 - d)`)."""
        rebuilt = self._rebuilt_field_loop(original, updated)
        if rebuilt is not None:
            return rebuilt
        it, target = updated.iter, updated.target
        # `for i, p in enumerate(model.parameters())`: the loop over the listing, with its count kept
        counted = type(it) is cst.Call and dotted(it.func) == "enumerate" and it.args and not it.args[0].star \
            and it.args[0].keyword is None and _listing(it.args[0].value) \
            and type(target) is cst.Tuple and len(target.elements) == 2
        if counted:
            it, target = it.args[0].value, target.elements[1].value
        zipped = _zipped_listings(it, target)
        if zipped is not None:
            rebound = [(var, owner) for var, owner in zipped if _rebinds(updated.body, var)]
            if len(rebound) != 1:
                return updated
            var, owner = cst.Name(rebound[0][0]), rebound[0][1]
            new_iter = cst.parse_expression("zip(" + ", ".join(f"t2j.parameters({o})" for _, o in zipped) + ")")
        elif _listing(it):
            owner = code_of(it.func.value)
            var = target.elements[-1].value if type(target) is cst.Tuple and it.func.attr.value == \
                "named_parameters" else target
            helper = "t2j.named_parameters" if it.func.attr.value == "named_parameters" else "t2j.parameters"
            new_iter = cst.parse_expression(f"{helper}({owner})")
        else:
            self._report_lost_rebuilds(original, updated)
            return updated
        if type(var) is not cst.Name or not _rebinds(updated.body, var.value):
            return updated
        if counted:
            new_iter = updated.iter.with_changes(args=[updated.iter.args[0].with_changes(value=new_iter),
                                                       *updated.iter.args[1:]])
        self.need("t2j")
        body = list(updated.body.body) + [cst.parse_statement(f"new_params.append({var.value})\n")]
        loop = updated.with_changes(iter=new_iter, body=updated.body.with_changes(body=body))
        self.report("T2J202", f"parameters of {owner} updated in a loop: collected and put back with "
                              f"t2j.replace_parameters", original)
        root = owner.split(".")[0].split("[")[0]
        lost = self._caller_loses(root, original)
        in_init = root == "self" and self.class_depth and self.methods and self.methods[-1] in self.initialising[-1]
        put_back = f"{owner} = t2j.replace_parameters({owner}, new_params)\n" if owner == root else (
            f"{root} = eqx.tree_at(lambda m: m{owner[len(root):]}, {root}, "
            f"t2j.replace_parameters({owner}, new_params))\n")
        if owner == "self" and in_init:  # rebinding self would not change the module being built
            put_back = "t2j.replace_parameters_in_init(self, new_params)\n"
        elif in_init:  # self.encoder.parameters(): set the field, as __init__ may
            first = owner[5:].split(".")[0].split("[")[0]
            rest = owner[5 + len(first):]
            put_back = (f"self.{first} = t2j.replace_parameters(self.{first}, new_params)\n" if not rest else
                        f"self.{first} = eqx.tree_at(lambda m: m{rest}, self.{first}, "
                        f"t2j.replace_parameters({owner}, new_params))\n")
            self.need("eqx")
        elif owner != root:
            self.need("eqx")
        put_back = cst.parse_statement(put_back)
        if lost is not None:  # the loop becomes three statements: the marker goes where the model is rebound
            put_back = add_marker(put_back, [lost])
        return cst.FlattenSentinel([cst.parse_statement("new_params = []\n").with_changes(
            leading_lines=updated.leading_lines), loop.with_changes(leading_lines=[]), put_back])


def _updated_parameter(fn: cst.FunctionDef) -> str | None:
    """The parameter whose parameters fn puts back after a loop over them (`for p_ema, p in zip(ema.parameters(),
    ...)` rebinding p_ema), when fn returns nothing: its name. None otherwise."""
    if any(v is not None for v in return_values(fn)):
        return None
    params = [p.name.value for p in fn.params.params]
    found = []

    class V(Visitor):
        def visit_FunctionDef(self, node) -> bool:
            return node is fn

        def visit_For(self, node: cst.For) -> None:
            it = node.iter
            zipped = _zipped_listings(it, node.target)
            if zipped is None and parameter_listing(it) and type(node.target) is cst.Name:
                zipped = [(node.target.value, code_of(it.func.value))]
            found.extend(owner for var, owner in zipped or () if owner in params and _rebinds(node.body, var))

    walk(fn, V())
    return found[0] if len(set(found)) == 1 and fn.params.params[0].name.value != "self" else None


def _argument(call: cst.Call, param: str, index: int):
    """The expression a call passes for `param`, the callee's parameter at `index` (by keyword or position)."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == param:
            return a.value
    positional = [a for a in call.args if a.keyword is None]
    if any(a.star for a in positional[:index + 1]) or index >= len(positional):
        return None
    return positional[index].value


MODULE_LISTINGS = frozenset({"modules", "named_modules", "children", "named_children"})


def _listing(node) -> bool:
    """`model.parameters()` or `model.named_parameters()`."""
    return type(node) is cst.Call and type(node.func) is cst.Attribute and not node.args \
        and node.func.attr.value in ("parameters", "named_parameters")


def _zipped_listings(it: cst.BaseExpression, target: cst.BaseExpression) -> list[tuple[str, str]] | None:
    """`for a, b in zip(m1.parameters(), m2.parameters())`: [(a, "m1"), (b, "m2")]."""
    if not (type(it) is cst.Call and dotted(it.func) == "zip" and len(it.args) > 1
            and type(target) is cst.Tuple and len(target.elements) == len(it.args)):
        return None
    out = []
    for element, arg in zip(target.elements, it.args):
        v = arg.value
        if not (type(element.value) is cst.Name and arg.keyword is None and not arg.star
                and parameter_listing(v)):
            return None
        out.append((element.value.value, code_of(v.func.value)))
    return out


def _rebinds(block, name: str) -> bool:
    found = []

    class V(Visitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            if type(node.target) is cst.Name and node.target.value == name:
                found.append(node)

    walk(block, V())
    return bool(found)


def _names_of(value) -> set[str]:
    """`model` / `model, step`: the names a return gives back (alone or in a tuple)."""
    items = [e.value for e in value.elements] if type(value) is cst.Tuple else [value]
    return {v.value for v in items if type(v) is cst.Name}
