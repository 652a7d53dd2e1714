"""Freezing parameters: `p.requires_grad = False` / `p.requires_grad_(False)` over a model's parameters, or
`model.requires_grad_(False)`. JAX differentiates only what the training step asks for (the trained model), so
freezing a model no optimizer trains (a distillation teacher, a frozen feature extractor used under no_grad) changes
nothing and is dropped (T2J213). Freezing part of a model an optimizer then steps (fine-tuning) needs the optimizer
to skip those parameters (optax.masked, eqx.partition): an error (T2J214), left as it is."""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass
from torch2jax.transform.names import dotted
from torch2jax.transform.ops import _module_names
from torch2jax.transform.walk import Visitor, walk


def _path(node: cst.BaseExpression) -> str | None:
    """`model.fc.weight` as written; with a submodule taken by index (`model[0]`, `model[2].weight`) its root
    `model`."""
    path = dotted(node)
    if path is not None:
        return path
    while type(node) in (cst.Subscript, cst.Attribute):
        node = node.value
    return node.value if type(node) is cst.Name else None


def _flag(node: cst.BaseExpression) -> bool | None:
    if type(node) is cst.Name and node.value in ("True", "False"):
        return node.value == "True"
    return None


class FreezingPass(Pass):
    TRIGGERS = ("requires_grad",)
    EXPRESSIONS = False  # its hooks: statements and loops

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.models: set[str] | None = None

    def wants(self, node) -> bool:
        return type(node) is cst.Module or "requires_grad" in self.ctx.words(node) \
            or "requires_grad_" in self.ctx.words(node)

    def visit_Module(self, node: cst.Module) -> None:
        facts = self.ctx.training_facts
        self.models = set(getattr(facts, "models", {}) or {}) | _module_names(node, self)
        optimizers = {o.name: o.model for o in getattr(facts, "optimizers", {}).values() if o.model} if facts else {}
        self.steps: dict[str, list[int]] = {}  # model -> lines of its optimizers' step() calls
        positions, steps = self.ctx.positions, self.steps

        class Steps(Visitor):
            def visit_Call(self, call: cst.Call) -> None:
                func = call.func
                if type(func) is cst.Attribute and func.attr.value == "step" and dotted(func.value) in optimizers \
                        and call in positions:
                    steps.setdefault(optimizers[dotted(func.value)], []).append(positions[call].start.line)

        walk(node, Steps())

    @property
    def scopes(self):
        return self.ctx.scopes

    def _freezes(self, stmt: cst.BaseSmallStatement, var: str | None = None) -> tuple[str, bool] | None:
        """(what, flag) for `X.requires_grad = flag` / `X.requires_grad_(flag)` (X the loop variable `var`, or a
        path into a model), else None."""
        if type(stmt) is cst.Assign and len(stmt.targets) == 1:
            target = stmt.targets[0].target
            if type(target) is cst.Attribute and target.attr.value == "requires_grad":
                what, flag = _path(target.value), _flag(stmt.value)
                return (what, flag) if what and flag is not None else None
        if type(stmt) is cst.Expr and type(stmt.value) is cst.Call:
            call = stmt.value
            if type(call.func) is cst.Attribute and call.func.attr.value == "requires_grad_" and len(call.args) <= 1:
                flag = _flag(call.args[0].value) if call.args else True
                what = _path(call.func.value)
                return (what, flag) if what and flag is not None else None
        return None

    def _root(self, what: str) -> str | None:
        root = what.split(".")[0]
        return root if root in self.models else None

    def _decide(self, root: str, frozen: bool, node) -> bool:
        """Whether to drop the freezing statement(s) about root's parameters: yes unless an optimizer of root steps
        after them (a teacher trained first, then frozen for distillation, is no longer stepped)."""
        pos = self.ctx.positions.get(node)
        line = pos.start.line if pos is not None else 0
        if frozen and any(step > line for step in self.steps.get(root, ())):
            self.report("T2J214", f"{root}'s parameters frozen while an optimizer trains {root}: the translated "
                                  "optimizer would update them; mask them out of the update (optax.masked, or "
                                  "eqx.partition on a filter)", node)
            return False
        self.report("T2J213", f"requires_grad on {root}'s parameters dropped: JAX differentiates only the model the "
                              "training step trains" + ("" if frozen else " (True is the default)"), node)
        return True

    def leave_SimpleStatementLine(self, original, updated):
        if len(updated.body) != 1:
            return updated
        found = self._freezes(updated.body[0])
        root = self._root(found[0]) if found else None
        if root is None or not self._decide(root, not found[1], original):
            return updated
        return cst.RemoveFromParent()

    def leave_For(self, original: cst.For, updated: cst.For):
        """`for p in model.parameters(): p.requires_grad = False` (or any loop over a model's parameters whose
        body only sets requires_grad of the loop variable)."""
        it = updated.iter
        if not (type(updated.target) is cst.Name and type(it) is cst.Call and type(it.func) is cst.Attribute
                and it.func.attr.value in ("parameters", "named_parameters") and isinstance(updated.body,
                                                                                           cst.IndentedBlock)):
            return updated
        owner = _path(it.func.value)
        root = self._root(owner) if owner else None
        var = updated.target.value
        body = updated.body.body
        flags = [self._freezes(s.body[0]) if type(s) is cst.SimpleStatementLine and len(s.body) == 1 else None
                 for s in body]
        if root is None or updated.orelse is not None or not flags or any(f is None or f[0] != var for f in flags):
            return updated
        if not self._decide(root, not any(f[1] for f in flags), original):
            return updated
        return cst.RemoveFromParent()
