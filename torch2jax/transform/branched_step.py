"""A training step under a branch, after the loss it steps on: one function that trains and evaluates.

    logits = model(x)                              if training:
    loss = criterion(logits, y)                        logits = model(x)
    if training:                          ->           loss = criterion(logits, y)
        optimizer.zero_grad()                          optimizer.zero_grad()
        loss.backward()                                loss.backward()
        optimizer.step()                               optimizer.step()
    total += loss.item()                           else:
                                                       logits = model(x)
                                                       loss = criterion(logits, y)
                                                   total += loss.item()

The statements before the branch in its block go into both of its arms, in the same order: each run executes the
same statements as before, and the training arm now holds the loss computation and its step in one block, which
the training pass turns into the jitted step (the other arm stays a plain forward). Torch-level code in, torch-level
code out: this runs before the training pass.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass
from torch2jax.transform.names import dotted
from torch2jax.transform.training import _names
from torch2jax.transform.training_facts import _is_method_call_stmt
from torch2jax.transform.walk import names_read


def _calls_method(stmts, method: str) -> cst.Call | None:
    return next((c for c in (_is_method_call_stmt(s, method) for s in stmts) if c is not None), None)


class BranchedStepPass(Pass):
    TRIGGERS = ("backward",)
    EXPRESSIONS = False

    def wants(self, node) -> bool:
        words = self.ctx.words(node)
        return "backward" in words and "step" in words

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock):
        body = list(updated.body)
        for i, stmt in enumerate(body):
            lifted = self._lift(body[:i], stmt)
            if lifted is not None:
                self.report("T2J519", "the training step is under a branch after the loss it steps on: the loss "
                                      "computation before the branch is now in both of its arms", stmt)
                return updated.with_changes(body=[lifted, *body[i + 1:]])
        return updated

    def _lift(self, before: list, stmt) -> cst.If | None:
        if not before or type(stmt) is not cst.If or type(stmt.body) is not cst.IndentedBlock:
            return None
        arm = list(stmt.body.body)
        backward = _calls_method(arm, "backward")
        if backward is None or _calls_method(arm, "step") is None:
            return None
        loss = dotted(backward.func.value)
        if loss is None or loss in _names(arm).stores or loss not in _names(before).stores:
            return None  # the loss is computed in the arm itself (the training pass's own case), or not seen
        if any(type(s) in (cst.Return, cst.FunctionDef, cst.ClassDef) for s in before) \
                or not names_read(stmt.test).isdisjoint(_names(before).stores):
            return None  # the branch's test reads what the moved statements compute: they must run first
        orelse = stmt.orelse
        if orelse is None:
            orelse = cst.Else(cst.IndentedBlock([s.deep_clone() for s in before]))
        elif type(orelse) is cst.Else and type(orelse.body) is cst.IndentedBlock:
            copies = [s.deep_clone() for s in before]  # one node in one place (the passes map nodes to positions)
            orelse = orelse.with_changes(body=orelse.body.with_changes(body=[*copies, *orelse.body.body]))
        else:
            return None  # an elif chain: left as it is
        lead = before[0].leading_lines
        first = before[0].with_changes(leading_lines=[])
        return stmt.with_changes(leading_lines=[*lead, *stmt.leading_lines],
                                 body=stmt.body.with_changes(body=[first, *before[1:], *arm]), orelse=orelse)
