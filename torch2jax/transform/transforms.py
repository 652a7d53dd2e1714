"""torch.func, imperative autograd, torch.compile and mixed precision: what the tables cannot say.

TransformsPass (before the in-place and training passes, on torch-level code):

- torch.compile / torch.jit.script / trace / ignore / unused / export decorators are removed (the translated
  step is one jit already), and `fast = torch.compile(model)` makes `fast` another name of `model` (the alias is
  resolved: later uses read `model`, so the training step updates the one model). Calls elsewhere go to the
  table (mappings/func.toml), which returns what they wrap.
- `g, v = torch.func.grad_and_value(f)(x)` -> `v, g = jax.value_and_grad(f)(x)` (JAX's order, targets swapped).
- `vmap(f, in_dims=(0, 0, None))(params, buffers, x)` over a `stack_module_state` ensemble ->
  `eqx.filter_vmap(f, in_axes=(eqx.if_array(0), eqx.if_array(0), None))(...)`: the ensemble is one Equinox module
  with stacked arrays (t2j.func.stack_module_state), and filter_vmap maps its arrays only.
- vmap(randomness=...) is reported: JAX's randomness is explicit keys (map over split keys for 'different').
- Imperative autograd: `torch.autograd.grad(y, x)` and `y.backward()` (outside a training step) followed by
  reads of `x.grad`: the statements of the block that compute y from x are lifted into a function of x, which is
  differentiated with jax.grad (jax.vjp when grad_outputs / gradient= is given):

      x = x.clone().requires_grad_()          x = x.clone()
      y = (x ** 3).sum()              ->      def y_fn(x):
      g, = torch.autograd.grad(y, x)              y = (x ** 3).sum()
                                                  return y
                                              g, = jax.grad(y_fn, argnums=(0,))(x)

  `x.grad` after `y.backward()` becomes `x_grad`. A computation that the block does not show (y computed in an
  enclosing block, or through an attribute) is reported (T2J606) and left as it is.
- GradScaler: `scaler.scale(loss).backward()` -> `loss.backward()`, `scaler.step(opt)` -> `opt.step()`,
  `scaler.update()` / `scaler.unscale_(opt)` and the constructor removed; a float16 autocast block then gets
  static loss scaling (see AmpPass).

AmpPass (after the training pass, so that the autocast blocks it rewrites are already inside the jitted step and
model calls already take their keys): `with torch.autocast(...)` disappears and every module call in its body
goes through `t2j.amp.autocast(model, dtype)`, an explicit compute-dtype policy (runtime/amp.py).
"""
from __future__ import annotations

import ast

import libcst as cst

from torch2jax.transform.base import CarryPositions, Pass
from torch2jax.transform.codegen import code_of
from torch2jax.transform.names import dotted
from torch2jax.transform.templates import paren
from torch2jax.transform.walk import Visitor, transform, walk

COMPILE_WRAPPERS = {"torch.compile", "torch.jit.script", "torch.jit.trace", "torch.jit.trace_module",
                    "torch.jit.optimize_for_inference", "torch.jit.freeze", "torch.compiler.compile"}
COMPILE_DECORATORS = COMPILE_WRAPPERS | {"torch.jit.ignore", "torch.jit.unused", "torch.jit.export",
                                         "torch.jit.script_method", "torch.jit.script_if_tracing",
                                         "torch.compiler.disable", "torch._dynamo.disable",
                                         "torch.jit._script.script", "torch.compiler.allow_in_graph"}
VMAP = {"torch.func.vmap", "torch.vmap", "torch._functorch.apis.vmap"}
GRAD_AND_VALUE = {"torch.func.grad_and_value"}
STACK_MODULE_STATE = {"torch.func.stack_module_state"}
FUNCTIONAL_CALL = {"torch.func.functional_call", "torch.nn.utils.stateless.functional_call"}
# model.named_parameters() feeding functional_call: an Equinox module has no such method
NAMED_ARRAYS = {"named_parameters": "t2j.named_parameters", "named_buffers": "t2j.named_buffers"}
AUTOGRAD_GRAD = {"torch.autograd.grad"}
GRAD_SCALERS = {"torch.cuda.amp.GradScaler", "torch.amp.GradScaler", "torch.cpu.amp.GradScaler",
                "torch.amp.grad_scaler.GradScaler"}
AUTOCASTS = {"torch.autocast", "torch.amp.autocast", "torch.cuda.amp.autocast", "torch.cpu.amp.autocast",
             "torch.amp.autocast_mode.autocast"}
LOW_DTYPES = {"torch.bfloat16": "jnp.bfloat16", "torch.float16": "jnp.float16", "torch.half": "jnp.float16"}


# The names TransformsPass looks for: the last part of every torch name above, and the methods it rewrites. A
# statement without one of them (nor an import alias of those names) is left unvisited.
_QUALNAMES = COMPILE_DECORATORS | VMAP | GRAD_AND_VALUE | STACK_MODULE_STATE | FUNCTIONAL_CALL | AUTOGRAD_GRAD \
    | GRAD_SCALERS | {"torch.func.jacfwd"}
TRANSFORM_WORDS = {q.rsplit(".", 1)[1] for q in _QUALNAMES} | {"backward"} | set(NAMED_ARRAYS)


def _stmt(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code + "\n")


def _literal(node):
    if node is None:
        return _NOT_LITERAL
    try:
        return ast.literal_eval(code_of(node))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_LITERAL


_NOT_LITERAL = object()


def _arg(call: cst.Call, position: int | None, keyword: str):
    """The argument of `call` given by keyword, or at `position` among the positional ones."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == keyword:
            return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if position is not None and position < len(positional):
        return positional[position].value
    return None


# ----------------------------------------------------------------- names read and written by statements

class _Effects(Visitor):
    """Names a statement reads and the names it (re)binds or mutates (not descending into nested functions)."""

    def __init__(self) -> None:
        self.loads: list[str] = []
        self.stores: set[str] = set()
        self.has_exit = False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.stores.add(node.name.value)
        # the function's free names are read when it is called; count them as reads
        inner = _Effects()
        walk(node.body, inner)
        self.loads += [n for n in inner.loads if n not in inner.stores]
        return False

    def visit_ClassDef(self, node) -> bool:
        self.stores.add(node.name.value)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        params = {p.name.value for p in node.params.params}
        inner = _Effects()
        walk(node.body, inner)
        self.loads += [n for n in inner.loads if n not in params]
        return False

    def visit_Return(self, node) -> None:
        self.has_exit = True

    def visit_Yield(self, node) -> None:
        self.has_exit = True

    def visit_Break(self, node) -> None:
        self.has_exit = True

    def visit_Name(self, node: cst.Name) -> None:
        self.loads.append(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)
        return False

    def _target(self, target) -> None:
        if type(target) is cst.Name:
            self.stores.add(target.value)
        elif type(target) in (cst.Tuple, cst.List):
            for el in target.elements:
                self._target(el.value)
        elif type(target) is cst.StarredElement:
            self._target(target.value)
        else:  # x[i] = v, x.attr = v: a mutation of x (and a read of it)
            root = target
            while type(root) in (cst.Subscript, cst.Attribute):
                root = root.value
            if type(root) is cst.Name:
                self.stores.add(root.value)
            walk(target, self)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
        self._target(node.target)
        return False

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node.target)
        if type(node.target) is cst.Name:
            self.loads.append(node.target.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> bool:
        self._target(node.target)
        if node.value is not None:
            walk(node.value, self)
        return False

    def visit_For(self, node: cst.For) -> None:
        self._target(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._target(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._target(node.name)

    def visit_Call(self, node: cst.Call) -> None:
        # y.add_(1): an in-place method mutates its receiver
        func = node.func
        if type(func) is cst.Attribute and func.attr.value.endswith("_") and not func.attr.value.startswith("_") \
                and func.attr.value != "requires_grad_" and type(func.value) is cst.Name:
            self.stores.add(func.value.value)


def _effects(node: cst.CSTNode) -> _Effects:
    e = _Effects()
    walk(node, e)
    return e


def _load_counts(node: cst.CSTNode) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in _effects(node).loads:
        counts[n] = counts.get(n, 0) + 1
    return counts


def _backward_slice(prev: list, needed: set[str], inputs: set[str]):
    """The statements of `prev` (in order) that compute `needed` (transitively), stopping at the inputs.
    None when a statement on the way cannot go into a function (a return, break or yield inside it)."""
    needed = set(needed) - inputs
    chosen = []
    for stmt in reversed(prev):
        if type(stmt) in (cst.FunctionDef, cst.ClassDef):
            continue  # a function defined before (an earlier lifted one): the new function closes over it
        e = _effects(stmt)
        if not e.stores & needed:
            continue
        if e.has_exit or e.stores & inputs:
            return None
        chosen.append(stmt)
        needed = (needed - e.stores) | (set(e.loads) - inputs)
        if type(stmt) is cst.SimpleStatementLine and any(type(s) is cst.AugAssign for s in stmt.body):
            needed |= e.stores - inputs
    chosen.reverse()
    return chosen


def _tensor_grad_reads(stmts: list) -> list[str]:
    """Names whose .grad these statements read, less the loop variables over a module's parameters (a manual
    optimizer step, `for p in model.parameters(): p.data.add_(p.grad, ...)`, is the training loop's business)."""
    reads, param_loops = [], set()

    class V(Visitor):
        def visit_For(self, node: cst.For) -> None:
            it = node.iter
            if type(it) is cst.Call and type(it.func) is cst.Attribute \
                    and it.func.attr.value in ("parameters", "named_parameters"):
                param_loops.update(_target_names(node.target))

        def visit_Attribute(self, node: cst.Attribute) -> None:
            if node.attr.value == "grad" and type(node.value) is cst.Name:
                reads.append(node.value.value)

    for s in stmts:
        walk(s, V())
    return [n for n in reads if n not in param_loops]


def _target_names(target) -> set[str]:
    if type(target) is cst.Name:
        return {target.value}
    if type(target) in (cst.Tuple, cst.List):
        return set().union(*(_target_names(e.value) for e in target.elements))
    return set()


class _Rename(CarryPositions):
    """Rename a name (or a dotted path such as `x.grad`) in the nodes it visits; they keep their source positions."""

    def __init__(self, old: str, new: str, positions: dict | None = None) -> None:
        super().__init__(positions if positions is not None else {})
        self.old, self.new = old, new
        self.shadowed = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        params = {p.name.value for p in node.params.params}
        return "." in self.old or self.old not in params

    def leave_Attribute(self, original, updated):
        if "." in self.old and dotted(original) == self.old:
            return cst.Name(self.new)
        return updated

    def leave_Name(self, original, updated):
        if "." not in self.old and original.value == self.old:
            return updated.with_changes(value=self.new)
        return updated


def _argnums(n: int) -> str:
    return "(0,)" if n == 1 else "(" + ", ".join(str(k) for k in range(n)) + ")"


def _unique(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}{i}", i + 1
    return name


class TransformsPass(Pass):
    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        aliases = ctx.scopes.aliases
        self.words = TRANSFORM_WORDS | {k for k, q in aliases.items() if q in _QUALNAMES}
        self.grad_words = {"grad"} | {k for k, q in aliases.items() if q in AUTOGRAD_GRAD}
        self.stacked: set[str] = set()  # names bound to a stack_module_state ensemble
        self.scalers: set[str] = set()
        self.module_node: cst.Module | None = None
        self.functions: list[cst.FunctionDef] = []
        self.changed_names = False
        self.alias_calls: set[cst.Call] = set()
        self.functional = False  # the file calls functional_call: parameter dicts by torch name are built here
        self.loop_iters: set[cst.CSTNode] = set()  # `for p in model.parameters()`: the module-updates pass's

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    # ----- scopes
    def visit_Module(self, node: cst.Module) -> None:
        self.module_node = node
        module_words = self.ctx.words(node)
        aliases = self.ctx.scopes.aliases
        if "GradScaler" in module_words or any(q in GRAD_SCALERS and k in module_words for k, q in aliases.items()):
            self.scalers = self._find_scalers(node)
            self.words |= self.scalers  # scaler.step(opt), scaler.update(): statements that name a scaler
        self.functional = "functional_call" in module_words

    def visit_For(self, node: cst.For) -> None:
        self.loop_iters.add(node.iter)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.scopes.push(node)
        self.functions.append(node)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        self.ctx.scopes.pop()
        self.functions.pop()
        decorators = [d for d, o in zip(updated.decorators, original.decorators)
                      if not self._is_compile_decorator(o.decorator)]
        if len(decorators) != len(updated.decorators):
            self.report("T2J601", "torch.compile / TorchScript decorator removed: the translated training step is "
                                  "compiled with eqx.filter_jit already (wrap other hot functions in jax.jit)", original)
            if not decorators and updated.decorators:
                updated = updated.with_changes(leading_lines=list(updated.leading_lines) +
                                               list(updated.decorators[0].leading_lines))
            updated = updated.with_changes(decorators=decorators)
        return updated

    def qual(self, node) -> str | None:
        return self.ctx.scopes.qualname(node)

    def _is_compile_decorator(self, expr) -> bool:
        func = expr.func if type(expr) is cst.Call else expr
        return self.qual(func) in COMPILE_DECORATORS

    def _find_scalers(self, module: cst.Module) -> set[str]:
        found = set()
        pass_ = self

        class V(Visitor):
            def visit_Assign(self, node: cst.Assign) -> None:
                if len(node.targets) == 1 and type(node.targets[0].target) is cst.Name \
                        and type(node.value) is cst.Call and pass_.qual(node.value.func) in GRAD_SCALERS:
                    found.add(node.targets[0].target.value)
                    scale = _arg(node.value, 1 if pass_.qual(node.value.func) == "torch.amp.GradScaler" else 0,
                                 "init_scale")
                    pass_.ctx.__dict__["amp_loss_scale"] = code_of(scale) if scale is not None else "2.0 ** 15"

        walk(module, V())
        return found

    # ----- blocks: aliases, autograd lifting
    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body = self._rewrite_block(list(updated.body), original)
        module = updated.with_changes(body=body)
        if self.changed_names:
            # the training facts were collected on the code before aliases were resolved
            from torch2jax.transform.training_facts import collect_training_facts

            self.ctx.training_facts = collect_training_facts(module, self.ctx.scopes, self.ctx.module_facts)
        return module

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock):
        scope = self.functions[-1] if self.functions else self.module_node
        body = self._rewrite_block(list(updated.body), scope)
        if not body:
            body = [_stmt("pass")]
        return updated.with_changes(body=body)

    def _rewrite_block(self, body: list, scope) -> list:
        body = self._resolve_compile_aliases(body)
        return self._lift_autograd(body, scope)

    def _resolve_compile_aliases(self, body: list) -> list:
        out = []
        i = 0
        while i < len(body):
            stmt = body[i]
            alias = self._wrapper_alias(stmt, COMPILE_WRAPPERS)
            if alias is None:
                out.append(stmt)
                i += 1
                continue
            target, wrapped = alias
            self.report("T2J601", f"{code_of(stmt.body[0].value.func)} removed: the translated step is compiled with "
                                  f"eqx.filter_jit already" + (f"; `{target}` is `{wrapped}` from here on"
                                                               if target != wrapped else ""), stmt)
            rest = body[i + 1:]
            if target != wrapped:
                rest = [transform(s, _Rename(target, wrapped, self.ctx.positions)) for s in rest]
                self.changed_names = True
            if stmt.leading_lines and rest:
                rest[0] = rest[0].with_changes(leading_lines=list(stmt.leading_lines) + list(rest[0].leading_lines))
            body = out + rest
            i = len(out)
        return out

    def _wrapper_alias(self, stmt, wrappers: set[str]) -> tuple[str, str] | None:
        """`alias = wrapper(name, ...)` -> (alias, name)."""
        if not (type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1
                and type(stmt.body[0]) is cst.Assign and len(stmt.body[0].targets) == 1):
            return None
        assign = stmt.body[0]
        target, value = assign.targets[0].target, assign.value
        if not (type(target) is cst.Name and type(value) is cst.Call and self.qual(value.func) in wrappers):
            return None
        wrapped = _arg(value, 0, "model") or _arg(value, 0, "obj") or _arg(value, 0, "func") or \
            _arg(value, 0, "module")
        if type(wrapped) is not cst.Name:
            return None
        return target.value, wrapped.value

    # ----- imperative autograd
    def _lift_autograd(self, body: list, scope) -> list:
        i = 0
        while i < len(body):
            stmt = body[i]
            calls = self._autograd_calls(stmt)
            if calls:
                new = self._lift_grad_calls(body, i, calls, scope)
            else:
                new = self._lift_backward(body, i, scope)
            if new is not None:
                body, i = new
                continue
            i += 1
        return body

    def _autograd_calls(self, stmt) -> list[cst.Call]:
        if self.grad_words.isdisjoint(self.ctx.words(stmt)):
            return []
        found = []
        pass_ = self

        class V(Visitor):
            def visit_FunctionDef(self, node) -> bool:
                return False

            def visit_Lambda(self, node) -> bool:
                return False

            def visit_Call(self, node: cst.Call) -> None:
                if pass_.qual(node.func) in AUTOGRAD_GRAD:
                    found.append(node)

        if type(stmt) is cst.SimpleStatementLine:
            walk(stmt, V())
        return found

    def _taken_names(self, scope) -> set[str]:
        if scope is None:
            return set()
        e = _effects(scope.body if type(scope) is cst.FunctionDef else scope)
        return e.stores | set(e.loads)

    def _make_function(self, name: str, params: list[str], stmts: list, ret: cst.BaseExpression) -> cst.FunctionDef:
        header = cst.parse_statement(f"def {name}({', '.join(params)}):\n    pass\n")
        inner = [s.with_changes(leading_lines=[]) for s in stmts] + [_stmt(f"return {code_of(ret)}")]
        return header.with_changes(body=header.body.with_changes(body=inner))

    def _movable(self, chosen: list, ret: cst.BaseExpression, scope, grad_stmt) -> bool:
        """Whether the lifted statements can leave the block: nothing else in the scope reads what they bind."""
        if scope is None:
            return False
        total = _load_counts(scope.body if type(scope) is cst.FunctionDef else scope)
        inside = {}
        for node in chosen + [ret]:
            for n, c in _load_counts(node).items():
                inside[n] = inside.get(n, 0) + c
        stores = set()
        for s in chosen:
            stores |= _effects(s).stores
        return all(total.get(n, 0) <= inside.get(n, 0) for n in stores)

    def _lift(self, body, i, output: cst.BaseExpression, inputs: list[str], scope, what: str):
        """(function def, kept statements, moved?) for the computation of `output` from `inputs`, or None."""
        prev = body[:i]
        needed = set(_effects(output).loads)
        chosen = _backward_slice(prev, needed, set(inputs))
        if chosen is None:
            self.report("T2J606", f"{what}: the statements computing {code_of(output)} from {', '.join(inputs)} "
                                  "cannot be lifted into a function (a return/break inside them, or an input "
                                  "reassigned on the way); differentiate a function with jax.grad by hand", body[i])
            return None
        if any("autograd" in self.ctx.words(s) for s in chosen):
            # a torch.autograd.grad left as it was (T2J606) would be lifted with them, and found again inside
            self.report("T2J606", f"{what}: the statements computing {code_of(output)} hold a torch.autograd.grad "
                                  "that is not translated; differentiate a function with jax.grad by hand", body[i])
            return None
        reads = set(_effects(output).loads)
        for s in chosen:
            reads |= set(_effects(s).loads)
        if not reads & set(inputs):
            self.report("T2J606", f"{what}: cannot see how {code_of(output)} is computed from {', '.join(inputs)} in "
                                  "this block; differentiate a function with jax.grad by hand", body[i])
            return None
        base = output.value if type(output) is cst.Name else "out"
        name = _unique(f"{base}_fn", self._taken_names(scope))
        fn = self._make_function(name, inputs, chosen, output)
        moved = self._movable(chosen, output, scope, body[i])
        return fn, chosen, moved

    def _place(self, body, i, fn, chosen, moved, replacement_stmt):
        ids = {id(s) for s in chosen} if moved else set()
        before = [s for s in body[:i] if id(s) not in ids]
        lead = body[i].leading_lines
        fn = fn.with_changes(leading_lines=lead)
        replacement_stmt = replacement_stmt.with_changes(leading_lines=[])
        new_body = before + [fn, replacement_stmt] + body[i + 1:]
        return new_body, len(before) + 2

    def _lift_grad_calls(self, body, i, calls, scope):
        call = calls[0]
        outputs = _arg(call, 0, "outputs")
        inputs_node = _arg(call, 1, "inputs")
        grad_outputs = _arg(call, 2, "grad_outputs")
        if type(inputs_node) is cst.Name:
            inputs = [inputs_node.value]
        elif type(inputs_node) in (cst.List, cst.Tuple) and all(type(e.value) is cst.Name
                                                                    for e in inputs_node.elements):
            inputs = [e.value.value for e in inputs_node.elements]
        else:
            self.report("T2J606", "torch.autograd.grad: inputs must be names (x or [x, w]) to lift the computation "
                                  "into a function; differentiate a function with jax.grad by hand", call)
            return None
        if type(outputs) in (cst.List, cst.Tuple):
            if len(outputs.elements) != 1:
                self.report("T2J606", "torch.autograd.grad with several outputs: sum them into one, or use jax.vjp "
                                      "by hand", call)
                return None
            outputs = outputs.elements[0].value
        if type(grad_outputs) in (cst.List, cst.Tuple) and len(grad_outputs.elements) == 1:
            grad_outputs = grad_outputs.elements[0].value
        if outputs is None:
            return None
        if _literal(_arg(call, None, "allow_unused")) is True:
            self.report("T2J605", "allow_unused=True: JAX gives zeros (not None) for an input the output does not "
                                  "depend on", call)
        lifted = self._lift(body, i, outputs, inputs, scope, "torch.autograd.grad")
        if lifted is None:
            return None
        fn, chosen, moved = lifted
        name = fn.name.value
        args = ", ".join(inputs)
        if grad_outputs is None:
            argnums = _argnums(len(inputs))
            expr = f"jax.grad({name}, argnums={argnums})({args})"
        else:
            expr = f"jax.vjp({name}, {args})[1]({code_of(grad_outputs)})"
        self.need("jax")
        replacement = cst.parse_expression(expr)
        stmt = transform(body[i], _ReplaceNode(call, replacement))
        self.report("T2J605", f"torch.autograd.grad -> {'jax.grad' if grad_outputs is None else 'jax.vjp'} of "
                              f"{name}, the computation of {code_of(outputs)} from {args} lifted into a function",
                    body[i])
        return self._place(body, i, fn, chosen, moved, stmt)

    def _leaves(self, prev: list) -> list[str]:
        """Names marked as requiring gradients in these statements, in order of marking."""
        leaves: list[str] = []

        class V(Visitor):
            def visit_Assign(self, node: cst.Assign) -> None:
                if len(node.targets) == 1 and type(node.targets[0].target) is cst.Name:
                    code = code_of(node.value)
                    if "requires_grad_(" in code and "requires_grad_(False)" not in code \
                            or "requires_grad=True" in code:
                        leaves.append(node.targets[0].target.value)

            def visit_Call(self, node: cst.Call) -> None:
                f = node.func
                if type(f) is cst.Attribute and f.attr.value == "requires_grad_" and type(f.value) is cst.Name \
                        and _literal(_arg(node, 0, "requires_grad")) in (True, _NOT_LITERAL):
                    leaves.append(f.value.value)

        for s in prev:
            walk(s, V())
        return list(dict.fromkeys(leaves))

    def _lift_backward(self, body, i, scope):
        stmt = body[i]
        if not (type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 and type(stmt.body[0]) is cst.Expr
                and type(stmt.body[0].value) is cst.Call):
            return None
        call = stmt.body[0].value
        if not (type(call.func) is cst.Attribute and call.func.attr.value == "backward"):
            return None
        after = body[i + 1:]
        if any(".step(" in code_of(s) for s in after) or ".step(" in code_of(scope if scope is not None else stmt) \
                and self._in_training(scope):
            return None  # a training step: the training pass extracts it
        leaves = self._leaves(body[:i])
        output = call.func.value
        read_grads = [n for n in leaves if any(f"{n}.grad" in code_of(s) for s in after)]
        if not leaves or not read_grads:
            if _tensor_grad_reads(after):
                self.report("T2J606", "backward() outside a training step: cannot tell which tensors' .grad are read "
                                      "(mark them with requires_grad_() in this block); use jax.grad by hand", stmt)
            return None
        lifted = self._lift(body, i, output, leaves, scope, "backward()")
        if lifted is None:
            return None
        fn, chosen, moved = lifted
        reached = set(_effects(output).loads)
        for s in chosen:
            reached |= set(_effects(s).loads)
        inputs = [n for n in leaves if n in reached]
        if inputs != leaves:
            fn = self._make_function(fn.name.value, inputs, chosen, output)
        name = fn.name.value
        gradient = _arg(call, 0, "gradient")
        targets = ", ".join(f"{n}_grad" for n in inputs) + ("," if len(inputs) == 1 else "")
        args = ", ".join(inputs)
        if gradient is None:
            line = f"{targets} = jax.grad({name}, argnums={_argnums(len(inputs))})({args})"
        else:
            line = f"{targets} = jax.vjp({name}, {args})[1]({code_of(gradient)})"
        self.need("jax")
        for n in inputs:
            after = [transform(s, _Rename(f"{n}.grad", f"{n}_grad", self.ctx.positions)) for s in after]
        if sum(".backward(" in code_of(s) for s in after):
            self.report("T2J605", "torch accumulates .grad over several backward() calls; here each backward() "
                                  "gives fresh gradients (add them up explicitly)", stmt)
        self.report("T2J605", f"backward() -> jax.grad of {name}, the computation of {code_of(output)} from {args} "
                              f"lifted into a function; {', '.join(f'{n}.grad' for n in inputs)} -> "
                              f"{', '.join(f'{n}_grad' for n in inputs)}", stmt)
        new_body, j = self._place(body, i, fn, chosen, moved, _stmt(line))
        return new_body[:j] + after, j

    def _in_training(self, scope) -> bool:
        facts = self.ctx.training_facts
        return bool(facts and facts.optimizers)

    # ----- statements: GradScaler, grad_and_value unpacking, ensembles
    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        if len(updated.body) != 1:
            return updated
        small = updated.body[0]
        if type(small) is cst.Expr and type(small.value) is cst.Call:
            return self._scaler_call(updated, small.value)
        if type(small) is cst.Assign:
            value = small.value
            if type(value) is cst.Call and self.qual(value.func) in GRAD_SCALERS:
                self.report("T2J603", "GradScaler removed: bfloat16 needs no loss scaling; a float16 autocast block "
                                      "gets a static loss scale (t2j.amp.autocast(..., loss_scale=...))", original)
                return cst.RemoveFromParent()
            if type(value) is cst.Call and type(value.func) is cst.Call \
                    and self.qual(value.func.func) in GRAD_AND_VALUE and len(small.targets) == 1 \
                    and type(small.targets[0].target) in (cst.Tuple, cst.List) \
                    and len(small.targets[0].target.elements) == 2:
                target = small.targets[0].target
                a, b = target.elements
                swapped = target.with_changes(elements=[b.with_changes(comma=a.comma), a.with_changes(comma=b.comma)])
                inner = value.func.with_changes(func=cst.parse_expression("jax.value_and_grad"))
                self.need("jax")
                self.report("T2J604", "grad_and_value -> jax.value_and_grad: JAX returns (value, grad), the targets "
                                      "are swapped", original)
                return updated.with_changes(body=[small.with_changes(
                    targets=[small.targets[0].with_changes(target=swapped)], value=value.with_changes(func=inner))])
            if type(value) is cst.Call and self.qual(value.func) in STACK_MODULE_STATE:
                for t in small.targets:
                    self.stacked |= _effects(cst.Module([cst.SimpleStatementLine([cst.Assign([t], value)])])).stores
                self.report("T2J604", "stack_module_state -> t2j.func.stack_module_state: the ensemble is one Equinox "
                                      "module with stacked arrays (eqx.filter_vmap maps it); index it by attribute, "
                                      "not by torch name", original)
        return updated

    def _scaler_call(self, stmt, call: cst.Call):
        func = call.func
        if type(func) is not cst.Attribute:
            return stmt
        # scaler.scale(loss).backward()
        if func.attr.value == "backward" and type(func.value) is cst.Call \
                and type(func.value.func) is cst.Attribute and func.value.func.attr.value == "scale" \
                and dotted(func.value.func.value) in self.scalers and func.value.args:
            loss = func.value.args[0].value
            return stmt.with_changes(body=[cst.Expr(call.with_changes(func=func.with_changes(value=loss)))])
        owner = dotted(func.value)
        if owner not in self.scalers:
            return stmt
        if func.attr.value == "step" and call.args:
            opt = call.args[0].value
            return stmt.with_changes(body=[cst.Expr(cst.Call(cst.Attribute(opt, cst.Name("step"))))])
        if func.attr.value in ("update", "unscale_"):
            return cst.RemoveFromParent()
        return stmt

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        if len(node.targets) == 1 and type(node.targets[0].target) is cst.Name and type(value) is cst.Call \
                and self.qual(value.func) in COMPILE_WRAPPERS and value.args \
                and type(value.args[0].value) is cst.Name:
            self.alias_calls.add(value)  # `fast = torch.compile(model)`: resolved as an alias by the block rewrite

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        func = original.func
        if self.functional and type(func) is cst.Attribute and func.attr.value in NAMED_ARRAYS \
                and not original.args and original not in self.loop_iters:
            self.need("t2j")
            self.report("T2J604", f"{func.attr.value}() -> {NAMED_ARRAYS[func.attr.value]}: (torch name, array) "
                                  "pairs of the Equinox model, the names functional_call takes", original)
            return cst.Call(cst.parse_expression(NAMED_ARRAYS[func.attr.value]), [cst.Arg(updated.func.value)])
        qual = self.qual(original.func)
        wrapped = next((a.value for a in updated.args if a.keyword is None and not a.star), None) or \
            _arg(updated, None, "model") or _arg(updated, None, "obj") or _arg(updated, None, "func")
        if qual in COMPILE_WRAPPERS and original not in self.alias_calls and wrapped is not None:
            self.report("T2J601", f"{qual} removed: the translated step is compiled with eqx.filter_jit already "
                                  "(wrap other hot functions in jax.jit)", original)
            return paren(wrapped)
        if qual in VMAP or qual == "torch.func.jacfwd":
            randomness = _arg(original, 3 if qual in VMAP else None, "randomness")
            value = _literal(randomness) if randomness is not None else "error"
            if value != "error":
                self.report("T2J602", f"vmap(randomness={value!r}): JAX draws from explicit keys; for 'different' "
                                      "map over jax.random.split(key, n) (in_axes 0), for 'same' pass one key "
                                      "(in_axes None)", original)
        if type(original.func) is cst.Call and self.qual(original.func.func) in VMAP and self.stacked and any(
                type(a.value) is cst.Name and a.value.value in self.stacked for a in original.args):
            return self._ensemble_vmap(original, updated)
        return updated

    def _ensemble_vmap(self, original: cst.Call, updated: cst.Call):
        vmap_call = updated.func
        positions = [k for k, a in enumerate(original.args)
                     if type(a.value) is cst.Name and a.value.value in self.stacked]
        fn = _arg(vmap_call, 0, "func")
        in_dims = _arg(vmap_call, 1, "in_dims")
        out_dims = _arg(vmap_call, 2, "out_dims")
        args = [code_of(fn)]
        if in_dims is not None:
            if type(in_dims) is cst.Tuple:
                elements = []
                for k, e in enumerate(in_dims.elements):
                    code = code_of(e.value)
                    if k in positions and _literal(e.value) == 0:
                        code = "eqx.if_array(0)"
                    elements.append(code)
                args.append(f"in_axes=({', '.join(elements)}{',' if len(elements) == 1 else ''})")
            elif _literal(in_dims) != 0:
                args.append(f"in_axes={code_of(in_dims)}")
        if out_dims is not None:
            args.append(f"out_axes={code_of(out_dims)}")
        self.need("eqx")
        self.report("T2J604", "vmap over a stacked ensemble -> eqx.filter_vmap: the stacked module's arrays are "
                              "mapped, its other fields broadcast", original)
        return updated.with_changes(func=cst.parse_expression(f"eqx.filter_vmap({', '.join(args)})"))


class _ReplaceNode(cst.CSTTransformer):
    def __init__(self, target: cst.CSTNode, replacement: cst.CSTNode) -> None:
        self.target, self.replacement = target, replacement

    def on_leave(self, original, updated):
        if original is self.target:
            return self.replacement
        return super().on_leave(original, updated)


class AmpPass(Pass):
    """`with torch.autocast(...)` -> the body, its module calls wrapped in t2j.amp.autocast (runtime/amp.py)."""

    TRIGGERS = ("autocast",)
    EXPRESSIONS = False  # its hooks: functions (scopes) and with statements

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.depth = 0
        self.words = {"autocast"} | {k for k, q in ctx.scopes.aliases.items() if q in AUTOCASTS}

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    def visit_FunctionDef(self, node) -> None:
        self.ctx.scopes.push(node)

    def leave_FunctionDef(self, original, updated):
        self.ctx.scopes.pop()
        return updated

    def _policy(self, item: cst.WithItem):
        call = item.item
        if type(call) is not cst.Call:
            return None
        qual = self.ctx.scopes.qualname(call.func)
        if qual not in AUTOCASTS:
            return None
        if qual in ("torch.cuda.amp.autocast", "torch.cpu.amp.autocast"):
            enabled, dtype = _arg(call, 0, "enabled"), _arg(call, 1, "dtype")
            default = "jnp.float16" if qual.startswith("torch.cuda") else "jnp.bfloat16"
        else:
            device = _literal(_arg(call, 0, "device_type"))
            dtype, enabled = _arg(call, 1, "dtype"), _arg(call, 2, "enabled")
            default = "jnp.bfloat16" if device == "cpu" else "jnp.float16"
        if dtype is None:
            dtype_code = default
        else:
            dtype_code = LOW_DTYPES.get(self.ctx.scopes.qualname(dtype) or "", code_of(dtype))
        return dtype_code, enabled

    def leave_With(self, original: cst.With, updated: cst.With):
        policies = [(k, self._policy(item)) for k, item in enumerate(original.items)]
        policies = [(k, p) for k, p in policies if p is not None]
        if not policies:
            return updated
        k, (dtype, enabled) = policies[0]
        if original.items[k].asname is not None:
            self.report("T2J602", "autocast bound with `as`: left as it is; wrap module calls in t2j.amp.autocast "
                                  "by hand", original)
            return updated
        self.need("t2j", "jnp")
        scale = self.ctx.__dict__.get("amp_loss_scale") if dtype == "jnp.float16" else None
        extra = ""
        if enabled is not None and _literal(enabled) is not True:
            extra += f", enabled={code_of(enabled)}"
        if scale is not None:
            extra += f", loss_scale={scale}"
        wrapper = _WrapModuleCalls(self, dtype, extra)
        body = transform(updated.body, wrapper)
        items = [it for j, it in enumerate(updated.items) if j != k]
        self.report("T2J602", f"autocast -> explicit compute dtype: module calls in the block run in {dtype} through "
                              f"t2j.amp.autocast (parameters stay float32, outputs come back float32); other ops "
                              f"run in float32" + (f"; float16 gradients scaled by {scale} (static, from GradScaler)"
                                                   if scale else ""), original)
        if items:
            items[-1] = items[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(items=items, body=body)
        stmts = list(body.body) if type(body) is cst.IndentedBlock else [cst.SimpleStatementLine(list(body.body))]
        if stmts:
            stmts[0] = stmts[0].with_changes(leading_lines=list(updated.leading_lines) + list(stmts[0].leading_lines))
        return cst.FlattenSentinel(stmts)


class _WrapModuleCalls(cst.CSTTransformer):
    def __init__(self, pass_: AmpPass, dtype: str, extra: str) -> None:
        self.pass_, self.dtype, self.extra = pass_, dtype, extra
        facts = pass_.ctx.training_facts
        models = set(getattr(facts, "models", {}) or {})
        for t in (getattr(facts, "trainers", {}) or {}).values():
            models.add(t.model_param)
        self.models = models | {"model", "net", "module"}

    def visit_FunctionDef(self, node) -> bool:
        return False

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        path = dotted(original.func)
        if path is None:
            return updated
        if path in self.models or (path.startswith("self.") and path.count(".") == 1):
            wrapped = cst.parse_expression(f"t2j.amp.autocast({path}, {self.dtype}{self.extra})")
            return updated.with_changes(func=wrapped)
        return updated
