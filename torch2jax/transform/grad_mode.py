"""`with torch.no_grad():` and `@torch.no_grad()`: JAX differentiates only what a transformation asks for, so the
context disappears and its body stays (dedented)."""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass

GRAD_CONTEXTS = {"torch.no_grad", "torch.enable_grad", "torch.inference_mode", "torch.set_grad_enabled",
                 "torch.autograd.no_grad", "torch.autograd.enable_grad", "torch.autograd.set_grad_enabled",
                 "torch.autograd.grad_mode.no_grad"}


class GradModePass(Pass):
    TRIGGERS = ("no_grad", "enable_grad", "inference_mode", "set_grad_enabled")
    EXPRESSIONS = False  # its hooks: functions (decorators) and with statements

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        # a statement that names none of these holds no grad-mode context (`from torch import no_grad as ng`: ng)
        self.words = set(self.TRIGGERS) | {k for k, q in ctx.scopes.aliases.items() if q in GRAD_CONTEXTS}

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    def visit_FunctionDef(self, node) -> None:
        self.ctx.scopes.push(node)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        self.ctx.scopes.pop()
        decorators = [d for d in updated.decorators if not self._is_grad_context(d.decorator)]
        if len(decorators) != len(updated.decorators):
            self.report("T2J106", "grad-mode decorator removed: JAX does not record gradients outside jax.grad")
            if not decorators and updated.decorators:
                # keep the comments that sat above the first decorator
                updated = updated.with_changes(
                    leading_lines=[*updated.leading_lines, *updated.decorators[0].leading_lines])
            return updated.with_changes(decorators=decorators)
        return updated

    def _is_grad_context(self, expr: cst.BaseExpression) -> bool:
        func = expr.func if type(expr) is cst.Call else expr
        return self.ctx.scopes.qualname(func) in GRAD_CONTEXTS

    def leave_With(self, original: cst.With, updated: cst.With):
        items = [i for i in updated.items if not (i.asname is None and self._is_grad_context(i.item))]
        if len(items) == len(updated.items):
            return updated
        self.report("T2J106", "grad-mode context removed: JAX does not record gradients outside jax.grad")
        if items:
            items[-1] = items[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(items=items)
        body = list(updated.body.body) if type(updated.body) is cst.IndentedBlock else [
            cst.SimpleStatementLine(list(updated.body.body))]
        if body:
            lead = list(updated.leading_lines) + list(body[0].leading_lines)
            body[0] = body[0].with_changes(leading_lines=lead)
        return cst.FlattenSentinel(body)
