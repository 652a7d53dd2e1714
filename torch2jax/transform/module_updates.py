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
from torch2jax.transform.inplace import init_helpers
from torch2jax.transform.module_facts import weight_tie
from torch2jax.transform.names import dotted, return_values
from torch2jax.transform.walk import SETATTR, Visitor, walk


def _code(node: cst.CSTNode) -> str:
    return cst.Module([]).code_for_node(node)


def _chain(node: cst.BaseExpression) -> tuple[str, str] | None:
    """`model.layers[0].weight` -> ("model", ".layers[0].weight"): a root name and an access path."""
    parts = []
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        if isinstance(node, cst.Attribute):
            parts.append("." + node.attr.value)
        else:
            parts.append(_code(node).removeprefix(_code(node.value)))
        node = node.value
    if not isinstance(node, cst.Name) or not parts:
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
        # what the rewrites start from: an init call (nn.init.x_, or an imported init function), an assignment to
        # an attribute or item, a loop over parameters()
        self.words = {"init", "parameters", "named_parameters", SETATTR}
        self.words |= {k for k, q in ctx.scopes.aliases.items() if q.startswith("torch.nn.init")}

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    def visit_ClassDef(self, node) -> None:
        self.class_depth += 1
        self.class_names.append(node.name.value)
        self.initialising.append({"__init__"} | init_helpers(node))  # __init__ and the methods only it calls

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
        return updated

    def _caller_loses(self, root: str, node):
        """A function rebuilds the model it was given (`def init_(model): for p in model.parameters(): ...`)
        without returning it: torch changed the caller's model in place, the caller's Equinox model stays as it
        was. (A training function is threaded by the training pass: it returns the model.)"""
        fn = self.function_nodes[-1] if self.function_nodes else None
        trainers = getattr(self.ctx.training_facts, "trainers", None) or {}
        if fn is None or root == "self" or root not in {p.name.value for p in fn.params.params} \
                or any(root in _names_of(v) for v in return_values(fn)) or fn.name.value in trainers:
            return None
        return self.report("T2J306", f"{root} is an argument whose parameters torch updates in place: the caller's "
                                     f"model no longer changes; return {root} and rebind it at the call site", node)

    def leave_SimpleStatementLine(self, original, updated):
        if len(updated.body) != 1:
            return updated
        small = updated.body[0]
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            qual = self.ctx.scopes.qualname(small.value.func)
            if qual and qual.startswith("torch.nn.init.") and qual.endswith("_") and small.value.args:
                # an in-place init as a statement: assign its result to the tensor it filled
                target = small.value.args[0].value
                assign = cst.Assign([cst.AssignTarget(target)], small.value)
                return updated.with_changes(body=[self._attribute_update(assign) or assign])
        if isinstance(small, cst.Assign):
            new = self._attribute_update(small)
            if new is not None:
                return updated.with_changes(body=[new])
        return updated

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
        elif root == "self" or not isinstance(assign.targets[0].target, cst.Attribute):
            return None
        if "data" == path.rsplit(".", 1)[-1]:
            path = path[: -len(".data")]  # m.weight.data = v: the tensor itself
            if not path:
                return None
        self.need("eqx")
        self.report("T2J201", f"{root}{path} set through eqx.tree_at: Equinox modules are immutable",
                    assign.targets[0].target)
        return cst.parse_statement(
            f"{root} = eqx.tree_at(lambda m: m{path}, {root}, {_code(assign.value)})\n").body[0]

    def _is_dict_field(self, name: str) -> bool:
        facts = self.ctx.module_facts
        cls = facts.classes.get(self.class_names[-1]) if facts is not None and self.class_names else None
        field = cls.fields.get(name) if cls is not None else None
        return field is not None and field.kind == "dict"

    def leave_For(self, original: cst.For, updated: cst.For):
        """`for p in model.parameters(): p = ...` -> collect the new values and put them back."""
        it = updated.iter
        if not (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute)
                and it.func.attr.value in ("parameters", "named_parameters") and not it.args):
            return updated
        owner = _code(it.func.value)
        target = updated.target
        var = target.elements[-1].value if isinstance(target, cst.Tuple) and it.func.attr.value == \
            "named_parameters" else target
        if not isinstance(var, cst.Name) or not _rebinds(updated.body, var.value):
            return updated
        helper = "t2j.named_parameters" if it.func.attr.value == "named_parameters" else "t2j.parameters"
        self.need("t2j")
        body = list(updated.body.body) + [cst.parse_statement(f"new_params.append({var.value})\n")]
        loop = updated.with_changes(iter=cst.parse_expression(f"{helper}({owner})"),
                                    body=updated.body.with_changes(body=body))
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


def _rebinds(block, name: str) -> bool:
    found = []

    class V(Visitor):
        SEES_LAYOUT = False

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            if isinstance(node.target, cst.Name) and node.target.value == name:
                found.append(node)

    walk(block, V())
    return bool(found)


def _names_of(value) -> set[str]:
    """`model` / `model, step`: the names a return gives back (alone or in a tuple)."""
    items = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
    return {v.value for v in items if isinstance(v, cst.Name)}
