"""Python's `random` and NumPy's `np.random` inside traced code: reported, left as they are.

A model's forward (and what it calls) runs under jax.jit in the translated training step, as does the step itself.
A host-side draw there runs once, when the function is traced, and the compiled step reuses that one value at every
later call: torch's `random.random() < teacher_forcing_ratio` decided afresh at each step becomes one decision for
the whole run. There is no faithful rewrite without knowing what the value steers (a Python `if` on a traced draw
does not trace), so the call stays and is marked.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass
from torch2jax.transform.names import dotted, self_calls
from torch2jax.transform.positions import CopiedCalls

HOST_RANDOM = ("random.", "numpy.random.")
JIT_DECORATORS = {"jax.jit", "equinox.filter_jit", "jax.pmap", "torch.compile"}
FORWARDS = ("forward", "__call__")


class HostRandomPass(Pass):
    TRIGGERS = ("random",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.random_names = {k for k, q in ctx.scopes.aliases.items()
                             if q in ("random", "numpy", "numpy.random") or q.startswith(HOST_RANDOM)}
        self.expression_words = set(self.random_names)
        self.traced_methods: list[set[str]] = []  # per enclosing class: its methods that run when it is called
        self.traced: list[bool] = [False]  # per enclosing function (and the module): whether its code is traced
        self.module: cst.Module | None = None
        self.copied_calls: CopiedCalls | None = None  # where the step's copies of calls came from, built when needed

    def wants(self, node) -> bool:
        return not self.random_names.isdisjoint(self.ctx.words(node))

    def visit_Module(self, node: cst.Module) -> None:
        self.module = node

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        facts = self.ctx.module_facts
        is_module = facts is not None and node.name.value in facts.classes
        self.traced_methods.append(_reached_from_forward(node) if is_module else set())

    def leave_ClassDef(self, original, updated):
        self.traced_methods.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.scopes.push(node)
        self.traced.append(self.traced[-1] or any(self._is_jit(d.decorator) for d in node.decorators) or (
            bool(self.traced_methods) and node.name.value in self.traced_methods[-1]))

    def leave_FunctionDef(self, original, updated):
        self.ctx.scopes.pop()
        self.traced.pop()
        return updated

    def _is_jit(self, expr: cst.BaseExpression) -> bool:
        func = expr.func if type(expr) is cst.Call else expr
        qual = self.ctx.scopes.qualname(func) or dotted(func) or ""
        return qual in JIT_DECORATORS or qual.rsplit(".", 1)[-1] in ("filter_jit", "jit")

    def visit_Call(self, node: cst.Call) -> None:
        if not self.traced[-1]:
            return
        qual = self.ctx.scopes.qualname(node.func)
        if qual and qual.startswith(HOST_RANDOM):
            if node not in self.ctx.positions:  # a copy the training pass made when it built the step
                if self.copied_calls is None:
                    self.copied_calls = CopiedCalls(self.ctx.positions, self.module)
                pos = self.copied_calls.position(node)
                if pos is not None:
                    self.ctx.positions[node] = pos
            self.report("T2J411", f"{qual}() is Python's, not JAX's: under jax.jit it runs once, when the code is "
                                  "traced, and every later call reuses that value; draw with jax.random and a key, "
                                  "or outside the jitted code", node)


def _reached_from_forward(cls: cst.ClassDef) -> set[str]:
    """forward / __call__ and the methods they call through self, transitively."""
    methods = {m.name.value: m for m in cls.body.body if type(m) is cst.FunctionDef}
    todo = [name for name in FORWARDS if name in methods]
    found = set(todo)
    while todo:
        fn = methods[todo.pop()]
        for called in self_calls(fn):
            if called in methods and called not in found:
                found.add(called)
                todo.append(called)
    return found
