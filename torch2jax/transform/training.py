"""Training loops: the torch step (zero_grad, forward, backward, clip, optimizer.step) becomes one jitted function
of explicit state, and everything around it threads that state.

    optimizer.zero_grad()                          @eqx.filter_jit
    output = model(data)                           def train_step(model, opt_state, optimizer, data, target, *, key):
    loss = F.nll_loss(output, target)                  def loss_fn(model):
    loss.backward()                       ->               output = model(data, key=key)
    optimizer.step()                                       loss = F.nll_loss(output, target)
                                                           return loss
                                                       loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
                                                       updates, opt_state = optimizer.update(grads, opt_state, ...)
                                                       return eqx.apply_updates(model, updates), opt_state, loss

    and at the loop: model, opt_state, loss = train_step(model, opt_state, optimizer, data, target, key=...)

Runs on torch-level code after the in-place pass and before the module and ops passes, which translate what the
step's body computes. Functions that trained a model they received return the new state; callers rebind it.

Beyond one model and one optimizer:
- optimizers stepped together (an encoder's and a decoder's, after one loss): the step differentiates the tuple of
  their models, clips each model's gradients as its clipping call says, and applies each optimizer to its model;
- several backward() calls before a step: torch adds their gradients up, so the step differentiates the sum of
  their losses (each loss is still returned);
- a step whose loss reads a value computed from its model before the previous step (a GAN's `fake = netG(noise)`,
  used by the discriminator's step first) computes that value again inside its loss function;
- a hand-written update instead of an optimizer (`for p in model.parameters(): p.data.add_(p.grad, alpha=-lr)`)
  runs in the step on the parameters with their gradients beside them;
- edits of `optimizer.param_groups` are written into the optimizer state (`optimizer.sync`) right after.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import CarryPositions, Pass
from torch2jax.transform.codegen import code_of
from torch2jax.transform.inplace import is_mask_expr
from torch2jax.transform.names import bound_in_function, dotted, return_values
from torch2jax.transform.ops import KEY_PLACEHOLDER
from torch2jax.transform.training_facts import (OptimizerFacts, TrainingFacts, _bind_names, _calls,
                                                _is_method_call_stmt, lists_parameters, manual_update_owner,
                                                parameters_owners, strip_module_chain)
from torch2jax.transform.walk import Transformer, Visitor, find_all, iter_statements, names_read, transform, walk

CLIP_FUNCTIONS = {"torch.nn.utils.clip_grad_norm_": "t2j.clip_grad_norm",
                  "torch.nn.utils.clip_grad_value_": "t2j.clip_grad_value",
                  "torch.nn.utils.clip_grad.clip_grad_norm_": "t2j.clip_grad_norm"}


# the parameters after `parameters` of each clipping function, to name the values a step receives
CLIP_PARAMS = {"t2j.clip_grad_norm": ("max_norm", "norm_type"), "t2j.clip_grad_value": ("clip_value",)}


def _stmt(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code + "\n")


class _Names(Visitor):
    """Names read and written by some statements (not descending into nested functions)."""
    def __init__(self) -> None:
        self.loads: list[str] = []  # in order of first read
        self.counts: dict[str, int] = {}
        self.stores: dict[str, None] = {}  # ordered: the step's outputs must not depend on hash order
        self._root = None  # the comprehension this visitor was made for (_comprehension)

    def visit_FunctionDef(self, node) -> bool:
        return False

    def visit_Lambda(self, node) -> bool:
        return False

    def _comprehension(self, node) -> bool:
        """A comprehension's own variables are local to it: what it reads from outside is the rest."""
        if node is self._root:
            return True
        inner = _Names()
        inner._root = node
        walk(node, inner)
        own = inner.stores.keys()
        for n in inner.loads:
            if n not in own:
                if n not in self.loads:
                    self.loads.append(n)
                self.counts[n] = self.counts.get(n, 0) + inner.counts[n]
        return False

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._store(node.target)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value not in self.loads:
            self.loads.append(node.value)
        self.counts[node.value] = self.counts.get(node.value, 0) + 1

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)
        return False

    def visit_AssignTarget(self, node: cst.AssignTarget) -> bool:
        self._store(node.target)
        return not _plain_target(node.target)  # `x[i] = v` reads x; `x = v` and `a, b = v` read nothing

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._store(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._store(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._store(node.target)

    def _store(self, target) -> None:
        if type(target) is cst.Name:
            self.stores[target.value] = None
        elif type(target) in (cst.Tuple, cst.List):
            for el in target.elements:
                self._store(el.value)


def _loss_of(losses: list, taken: set[str]) -> tuple[cst.BaseExpression, str]:
    """The expression a step differentiates and its name: the one loss backward() was called on, or the sum of
    several (torch adds their gradients)."""
    if len(losses) == 1:
        # `(loss / k).backward()`: the differentiated value gets a name of its own; the region's `loss` is torch's
        # unscaled loss, which the code after the step reads
        return losses[0], losses[0].value if type(losses[0]) is cst.Name else _fresh("backward_loss", taken)
    return (cst.parse_expression(" + ".join(code_of(_parenthesized_expr(l)) for l in losses)),
            _fresh("total_loss", taken))


def _declare(fn: cst.FunctionDef, declare: dict[str, str]) -> cst.FunctionDef:
    """`nonlocal model` / `global model` first in `fn` (after its docstring) for the names in `declare`."""
    if not declare or type(fn.body) is not cst.IndentedBlock:
        return fn
    lines = [_stmt(f"{kind} {', '.join(sorted(n for n, k in declare.items() if k == kind))}")
             for kind in ("nonlocal", "global") if kind in declare.values()]
    body = list(fn.body.body)
    at = 1 if body and _is_docstring_stmt(body[0]) else 0
    return fn.with_changes(body=fn.body.with_changes(body=body[:at] + lines + body[at:]))


def _is_docstring_stmt(stmt) -> bool:
    return type(stmt) is cst.SimpleStatementLine and type(stmt.body[0]) is cst.Expr \
        and type(stmt.body[0].value) in (cst.SimpleString, cst.ConcatenatedString)


def _returns_name(fn: cst.FunctionDef, name: str) -> bool:
    """Whether `fn` (not a function nested in it) has `return name`."""
    return any(type(v) is cst.Name and v.value == name for v in return_values(fn))


def _plain_target(target) -> bool:
    if type(target) is cst.Name:
        return True
    if type(target) in (cst.Tuple, cst.List):
        return all(_plain_target(e.value) for e in target.elements)
    return False


def _names(stmts) -> _Names:
    v = _Names()
    for s in stmts:
        walk(s, v)
    return v


class TrainingPass(Pass):
    TRIGGERS = ("optim", ".backward(", ".step(", "zero_grad", ".train(", ".eval(", "BatchNorm", "state_dict(")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.facts: TrainingFacts = ctx.training_facts
        self.modules = ctx.module_facts
        self.functions: list[cst.FunctionDef] = []  # enclosing function defs (original nodes)
        self.declare: list[dict[str, str]] = []  # per function: a name of an enclosing scope it now rebinds ->
        # "nonlocal" | "global" (`model.eval()` in a closure: `model = eqx.nn.inference_mode(model, True)`)
        self.class_depth = 0
        self._follow_ups: set[int] = set()  # ids of statements this pass inserted after another one
        self._elifs: set[int] = set()  # ids of the `elif` branches (If nodes in another If's orelse)
        # the nodes whose ids the sets below hold, kept alive: a node freed mid-pass would hand its id to a new one
        self._recorded: list = []
        self.step_functions: list[cst.BaseStatement] = []  # to insert before the current top-level statement
        self.step_counts: dict[str, int] = {}  # extracted functions of each kind so far
        self._synced: list = []  # param_groups accesses already followed by a sync (kept alive: ids stay unique)
        self._synced_ids: set[int] = set()
        self._recomputed: list = []  # statements a step computes again: the state they make is not kept
        self._step_calls: set[int] = set()  # ids of the step calls this pass wrote: where a later step's loss starts
        # gradient accumulation: id of a grad_step call statement -> the accumulators it adds to, which start as
        # None before the nearest loop around it (see _init_accumulators)
        self._accumulating: dict[int, list[str]] = {}
        self.direct_assigned: set[cst.CSTNode] = set()  # calls that are the whole right side of an assignment
        # what the rewrites start from: the step's method calls, the names the facts know (optimizers, schedulers,
        # models, trainers, functions that receive a model, and those parameters)
        facts = self.facts
        # with several stateful models (a GAN's generator and discriminator with BatchNorm), each keeps its own
        # state, `netG_state`; with one, it is `state`
        stateful_models = [n for n, c in facts.models.items() if self._class_stateful(c)]
        self.state_of = {n: f"{n}_state" for n in stateful_models} if len(stateful_models) > 1 else {}
        self.words = {"zero_grad", "train", "eval", "step"} | set(facts.optimizers) | set(facts.schedulers)
        self.words |= set(facts.models) | set(facts.trainers) | set(facts.model_params)
        self.words |= {p for params in facts.model_params.values() for p in params}
        self.words |= {m for t in facts.trainers.values() for m, _ in t.pairs} | {"grad", "state_dict", "load_state_dict"}
        # below statements: leave_Call's calls of those functions and models (visit_Assign's assignments of them)
        self.expression_words = self.words

    def wants(self, node) -> bool:
        return not self.words.isdisjoint(self.ctx.words(node))

    # ----- scopes
    def visit_ClassDef(self, node) -> None:
        self.class_depth += 1

    def leave_ClassDef(self, original, updated):
        self.class_depth -= 1
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.scopes.push(node)
        self.functions.append(node)
        self.declare.append({})

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef):
        self.ctx.scopes.pop()
        self.functions.pop()
        updated = _declare(updated, self.declare.pop())
        if self._accumulating and type(updated.body) is cst.IndentedBlock:
            updated = updated.with_changes(body=updated.body.with_changes(
                body=self._init_left_accumulators(list(updated.body.body))))
        if self.class_depth:
            return updated
        state_param = self._stateful_param(original.name.value)
        if state_param is not None:
            updated = _insert_param(updated, state_param, "state")
        trainer = self.facts.trainers.get(original.name.value)
        if trainer is not None:
            updated = self._thread_trainer(updated, trainer, state_param is not None)
        return updated

    def _stateful_param(self, fn_name: str) -> str | None:
        """The parameter of a function that receives a stateful model, which then also takes `state`."""
        params = self.facts.model_params.get(fn_name, {})
        return next((p for p, c in params.items() if self._class_stateful(c)), None)

    def visit_Module(self, node: cst.Module) -> None:
        self.file_words = self.ctx.words(node)
        self.file_node = node
        self._file_code: str | None = None

    @property
    def file_code(self) -> str:
        """The input file's code (generated once, when a file-level gradient accumulation asks for it)."""
        if self._file_code is None:
            self._file_code = self.file_node.code
        return self._file_code

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        body = self._rewrite_block(list(updated.body), top_level=True)
        return updated.with_changes(body=body)

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock):
        if self.class_depth and not self.functions:
            return updated
        return updated.with_changes(body=self._rewrite_block(list(updated.body), top_level=False))

    # ----- statement rewrites
    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine):
        if len(updated.body) != 1:
            return updated
        small = updated.body[0]
        hoisted = self._hoist_trainer_calls(small)
        if hoisted is not None:
            pre, small = hoisted
            return cst.FlattenSentinel([*pre, updated.with_changes(body=[small])])
        if type(small) is cst.Assign:
            return self._assignment(original, updated, small)
        if type(small) is cst.Expr and type(small.value) is cst.Call:
            return self._call_statement(updated, small.value)
        if type(small) is cst.Expr and type(small.value) is cst.IfExp:
            return self._mode_switch(updated, small.value)
        return updated

    def _mode_switch(self, stmt: cst.SimpleStatementLine, choice: cst.IfExp):
        """`model.train() if training else model.eval()` -> `model = eqx.nn.inference_mode(model, not (training))`
        (either order, one model)."""
        arms = []
        for arm in (choice.body, choice.orelse):
            if not (type(arm) is cst.Call and not arm.args and type(arm.func) is cst.Attribute
                    and arm.func.attr.value in ("train", "eval")):
                return stmt
            arms.append((arm.func.attr.value, dotted(arm.func.value)))
        (first, owner), (second, other) = arms
        if owner is None or owner != other or "." in owner or first == second or not self._is_model(owner):
            return stmt
        test = code_of(choice.test)
        inference = test if first == "eval" else f"not ({test})"
        self.need("eqx")
        self._rebinding(owner)
        return stmt.with_changes(body=[_stmt(f"{owner} = eqx.nn.inference_mode({owner}, {inference})").body[0]])

    def visit_If(self, node: cst.If) -> None:
        if type(node.orelse) is cst.If:
            self._elifs.add(id(node.orelse))  # its test runs only when the one above fails: nothing goes before it

    def leave_If(self, original: cst.If, updated: cst.If):
        if id(original) in self._elifs:
            for call in find_all(updated.test, cst.Call):
                if dotted(call.func) in self.facts.trainers and not self.class_depth:
                    self.report("T2J505", f"{dotted(call.func)} is called in an elif test: the model and optimizer "
                                          "state it returns are not rebound; call it in a statement of its own",
                                original.test)
            return updated
        hoisted = self._hoist_trainer_calls(updated.test)
        if hoisted is None:
            return updated
        pre, test = hoisted
        return cst.FlattenSentinel([*pre, updated.with_changes(test=test)])

    def leave_For(self, original: cst.For, updated: cst.For):
        hoisted = self._hoist_trainer_calls(updated.iter)  # evaluated once, before the loop
        if hoisted is None:
            return updated
        pre, iterable = hoisted
        return cst.FlattenSentinel([*pre, updated.with_changes(iter=iterable)])

    def _hoist_trainer_calls(self, small: cst.CSTNode):
        """A trainer called inside an expression (`print(f"{train(model, data, opt):.4f}")`,
        `history.append(train(...))`, `return evaluate(...) + train(...)`): each call goes into a statement of its
        own before this one, which rebinds the model and optimizer state, and the expression reads its result.
        None when there is no such call (a trainer call that is the whole statement or assigned value is
        rewritten in place)."""
        if self.class_depth or not self.facts.trainers:
            return None
        whole = small.value if type(small) in (cst.Expr, cst.Assign, cst.Return) else None
        nested = [c for c in find_all(small, cst.Call) if c is not whole and dotted(c.func) in self.facts.trainers]
        if not nested:
            return None
        taken = set(self._local_names(self.functions[-1] if self.functions else None, [], not self.functions))
        taken |= names_read(small)
        hoister = _TrainerCallHoister(self, set(nested), taken)
        new = transform(small, hoister)
        return (hoister.pre, new) if hoister.pre else None

    def _assignment(self, original, stmt: cst.SimpleStatementLine, assign: cst.Assign):
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        name = target.value if type(target) is cst.Name else None
        opt = self.facts.optimizer(name) if name else None
        if opt is not None and type(assign.value) is cst.Call and not (self.class_depth and not self.functions):
            # (a class attribute is no training code; a class body's block is never rewritten, see
            # leave_IndentedBlock, so an inserted init would be inserted again at every run)
            if self.functions and _returns_name(self.functions[-1], name):
                # a factory (nanoGPT's configure_optimizers): its caller binds the optimizer and initialises it
                return stmt
            if opt.model is None:
                self.report("T2J502", f"cannot tell which model {name} optimizes; opt_state initialised from `model`")
            init = _stmt(f"{opt.state_name} = {name}.init(eqx.filter({opt.model or 'model'}, eqx.is_array))")
            self.need("eqx")
            qual = self.ctx.scopes.qualname(assign.value.func)
            if (qual is None or not qual.startswith("torch.optim.")) and assign.value.args \
                    and lists_parameters(assign.value.args[0].value):
                # an optimizer class handed in: t2j's optimizers take the parameter arrays as their one group
                params = assign.value.args[0].value
                self.need("t2j")
                listed = cst.parse_expression(f"t2j.parameters({code_of(params.func.value)})")
                args = [assign.value.args[0].with_changes(value=listed), *assign.value.args[1:]]
                stmt = stmt.with_changes(body=[assign.with_changes(value=assign.value.with_changes(args=args))])
                self.report("T2J512", f"{code_of(assign.value.func)}(...) builds the optimizer {name}: "
                                      f"{code_of(params)} -> {code_of(listed)}, and it must be a t2j.optim optimizer "
                                      "(torch.optim classes handed to it are translated)")
            return cst.FlattenSentinel([stmt, self._follow_up(init)])
        if name is not None and name in self.facts.schedulers:
            # torch's scheduler constructors set the first step's lr (LinearLR, OneCycleLR...): write it into the state
            opt = self.facts.optimizer(self.facts.schedulers[name] or "") or OptimizerFacts(
                self.facts.schedulers[name] or "optimizer", None)
            sync = _stmt(f"{opt.state_name} = {name}.sync({opt.state_name})")
            return cst.FlattenSentinel([stmt, self._follow_up(sync)])
        if name is not None and name in self.facts.models and self._model_stateful(name):
            value = strip_module_chain(assign.value)
            container = type(value) is cst.Call and name in self.facts.stateful_builds and not self.class_depth \
                and (self.ctx.scopes.qualname(value.func) or "").startswith("torch.nn.")
            if container or type(value) is cst.Call and dotted(value.func) in (
                    set(self.modules.classes) | set(self.facts.factories)):
                # `model, state = eqx.nn.make_with_state(Net)(args, key=...)`; a torch container holding BatchNorm
                # takes no key (its layers take their own)
                self.need("eqx")
                args = list(value.args)
                if not container:
                    if args and args[-1].comma is cst.MaybeSentinel.DEFAULT:
                        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                    args.append(cst.Arg(cst.Name(KEY_PLACEHOLDER), keyword=cst.Name("key"),
                                        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
                maker = cst.Call(cst.parse_expression("eqx.nn.make_with_state"), [cst.Arg(value.func)])
                pair = cst.Tuple([cst.Element(cst.Name(name)), cst.Element(cst.Name(self._state_var(name)))],
                                 lpar=[], rpar=[])
                return stmt.with_changes(body=[cst.Assign([cst.AssignTarget(pair)], value.with_changes(
                    func=maker, args=args))])
        if type(assign.value) is cst.Call and target is not None and (name is not None or _plain_target(target)):
            trainer_call = self._trainer_call(assign.value, [_parenthesized(target)])
            if trainer_call is not None:
                return stmt.with_changes(body=[trainer_call])
        if target is not None and (name is not None or _plain_target(target)) \
                and self._is_stateful_model_call(assign.value):
            # `out = net(x)` / `ea, eb = net(a, b)` -> `(ea, eb), state = net(a, b, state)`
            state = self._state_var(self._stateful_owner(assign.value.func))
            pair = cst.Tuple([cst.Element(_parenthesized(target)), cst.Element(cst.Name(state))], lpar=[], rpar=[])
            return stmt.with_changes(body=[assign.with_changes(
                targets=[cst.AssignTarget(pair)], value=_with_state_arg(assign.value, state))])
        return stmt

    def _rebinding(self, name: str, owner: str | None = None) -> None:
        """The rewrite assigns `name` in the current function: a name it does not bind itself belongs to an
        enclosing scope (torch mutated the object there), so the function declares it nonlocal or global. A state
        the translation made (opt_state, state) lives where its `owner` (the optimizer, the model) is bound."""
        where = owner or name
        if not self.functions or where in bound_in_function(self.functions[-1]) \
                or name in bound_in_function(self.functions[-1]):
            return
        enclosing = any(where in bound_in_function(f) for f in self.functions[:-1])
        self.declare[-1][name] = "nonlocal" if enclosing else "global"

    def _rebinding_outputs(self, models: list[str], model_states: list[str], optimizers: list[str],
                           states: list[str]) -> None:
        """A step call assigns the models and states it returns: declared where the function does not bind them."""
        for m in models:
            self._rebinding(m)
        for st in model_states:
            self._rebinding(st, next((m for m in models + self._user_models() if self._state_var(m) == st), None))
        for opt, st in zip(optimizers, states):
            self._rebinding(st, opt)

    def _call_statement(self, stmt: cst.SimpleStatementLine, call: cst.Call):
        func = call.func
        if type(func) is cst.Attribute:
            method, owner = func.attr.value, dotted(func.value)
            if method == "zero_grad" and all(a.keyword and a.keyword.value == "set_to_none" for a in call.args):
                self.report("T2J503", "zero_grad removed: JAX computes fresh gradients at every step")
                return cst.RemoveFromParent()
            if method in ("train", "eval") and owner is not None and "." not in owner and self._is_model(owner):
                inference = "True" if method == "eval" else "False"
                if method == "train" and call.args:
                    inference = f"not ({code_of(call.args[0].value)})"
                self.need("eqx")
                self._rebinding(owner)
                return stmt.with_changes(body=[_stmt(f"{owner} = eqx.nn.inference_mode({owner}, {inference})").body[0]])
            if method == "step" and owner in self.facts.schedulers:
                opt = self.facts.optimizer(self.facts.schedulers[owner] or "") or OptimizerFacts(
                    self.facts.schedulers[owner] or "optimizer", None)
                args = "".join(", " + code_of(a) for a in call.args)
                return stmt.with_changes(body=[_stmt(
                    f"{opt.state_name} = {owner}.step({opt.state_name}{args})").body[0]])
            if method == "load_state_dict" and owner is not None and "." not in owner and self._is_model(owner) \
                    and call.args and not self.class_depth:
                return stmt.with_changes(body=[self._load_state_dict(owner, call).body[0]])
        trainer_call = self._trainer_call(call, [])
        if trainer_call is not None:
            return stmt.with_changes(body=[trainer_call])
        return stmt

    def _load_state_dict(self, owner: str, call: cst.Call) -> cst.SimpleStatementLine:
        """`model.load_state_dict(sd)` -> `model = t2j.load_state_dict(model, sd)` (Equinox modules are immutable);
        a stateful model's BatchNorm statistics go into its state."""
        self.need("t2j")
        args = ", ".join(code_of(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for a in call.args)
        if owner in self._stateful_model_names():
            state = self._state_var(owner)
            line = f"{owner}, {state} = t2j.load_state_dict({owner}, {args}, state={state})"
        else:
            line = f"{owner} = t2j.load_state_dict({owner}, {args})"
        self.report("T2J513", f"{owner}.load_state_dict(sd) -> {owner} = t2j.load_state_dict({owner}, sd): a new "
                              "model with the loaded arrays (torch's keys and shapes are checked as strict=True does)")
        return _stmt(line)

    def _state_var(self, model: str | None) -> str:
        """The variable holding a stateful model's state: `state`, or `netG_state` when the file has several; a
        function's model parameter uses the `state` parameter the function gained."""
        if model is None:
            return "state"
        if self.functions and model in (p.name.value for p in self.functions[-1].params.params):
            return "state"
        return self.state_of.get(model, "state")

    def _class_stateful(self, cls: str | None) -> bool:
        return bool(cls in self.modules.classes and self.modules.classes[cls].stateful)

    def _model_stateful(self, name: str) -> bool:
        return name in self.facts.stateful_builds or self._class_stateful(self.facts.models.get(name))

    def _stateful_model_names(self) -> set[str]:
        names = {n for n in self.facts.models if self._model_stateful(n)}
        if self.functions:
            params = self.facts.model_params.get(self.functions[-1].name.value, {})
            names |= {p for p, c in params.items() if self._class_stateful(c)}
        return names

    def _stateful_owner(self, func) -> str | None:
        """`net` for a call of the stateful model net, or of one of its methods that thread the state
        (`net.forward_once(x)`, module_facts' stateful_methods)."""
        path = dotted(func)
        names = self._stateful_model_names()
        if path in names:
            return path
        owner, _, method = (path or "").partition(".")
        if owner in names and method and "." not in method and method in self._stateful_methods_of(owner):
            return owner
        return None

    def _stateful_methods_of(self, model: str) -> set[str]:
        """The model's methods that thread the state, and its submodules that do (`model.encoder(x)` of a
        stateful encoder, `model.bn1(x)`): each takes the model's state and returns (out, state)."""
        cls = self.facts.models.get(model)
        if cls is None and self.functions:
            cls = self.facts.model_params.get(self.functions[-1].name.value, {}).get(model)
        facts = self.modules.classes.get(cls or "")
        if facts is None:
            return set()
        fields = {name for c in self._class_and_bases(facts) for name, f in c.fields.items()
                  if f.kind == "module" and f.stateful and not f.dynamic}
        return facts.stateful_methods | fields

    def _class_and_bases(self, facts):
        """A module class's facts and its user base classes' (the fields a subclass inherits)."""
        seen = []
        while facts is not None and facts not in seen:
            seen.append(facts)
            facts = next((self.modules.classes[b] for b in facts.bases if b in self.modules.classes), None)
        return seen

    def _is_stateful_model_call(self, node) -> bool:
        if type(node) is not cst.Call or self.class_depth:
            return False
        owner = self._stateful_owner(node.func)
        return owner is not None and not _has_state_arg(node, self._state_var(owner))

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        name = dotted(updated.func)
        if name in self.facts.functions and name not in self.facts.trainers and not self.class_depth:
            state_param = self._stateful_param(name)
            params = [p.name.value for p in self.facts.functions[name].params.params]
            state = self._state_var(_bind_names(updated, params).get(state_param or ""))
            if state_param is not None and not _has_state_arg(updated, state):
                return _insert_arg(updated, params, state_param, "state", state)
        # a stateful model called inside an expression: its first output (eval mode leaves the state as it was)
        if self._is_stateful_model_call(updated) and not self._direct_assign(original):
            state = self._state_var(self._stateful_owner(updated.func))
            return cst.Subscript(_with_state_arg(updated, state),
                                 [cst.SubscriptElement(cst.Index(cst.Integer("0")))])
        func = updated.func
        owner = dotted(func.value) if type(func) is cst.Attribute and func.attr.value == "state_dict" else None
        if owner is not None and "." not in owner and not updated.args and self._is_model(owner) \
                and not self.class_depth:
            # model.state_dict() -> {torch key: numpy array}, BatchNorm statistics read from the model's state
            self.need("t2j")
            stateful = owner in self._stateful_model_names()
            state = f", {self._state_var(owner)}" if stateful else ""
            self.report("T2J513", f"{owner}.state_dict() -> t2j.to_state_dict({owner}{state}): torch's keys, numpy "
                                  "arrays (a copy: later training does not change it)", original)
            return cst.parse_expression(f"t2j.to_state_dict({owner}{state})")
        return updated

    def visit_Assign(self, node: cst.Assign) -> None:
        if type(node.value) is cst.Call:
            self.direct_assigned.add(node.value)

    def _direct_assign(self, call: cst.Call) -> bool:
        return call in self.direct_assigned

    def _is_model(self, name: str) -> bool:
        if name in self.facts.models:
            return True
        return any(t.model_param == name for t in self.facts.trainers.values()) or name in (
            "model", "net", "module")

    # ----- trainers: functions that train a model they receive
    def _state_name_for_param(self, param: str) -> str:
        return OptimizerFacts(param, None).state_name

    def _thread_trainer(self, fn: cst.FunctionDef, trainer, stateful: bool) -> cst.FunctionDef:
        if self._threaded_before(fn, trainer):
            return fn
        state_params = []
        for opt in trainer.optimizer_params:
            state_params.append(self._state_name_for_param(opt))
            fn = _insert_param(fn, opt, state_params[-1])
        threaded = ", ".join(trainer.model_params_trained + (["state"] if stateful else []) + state_params)
        fn = fn.with_changes(body=transform(fn.body, _ReturnThreader(threaded)))
        body = list(fn.body.body)
        if not body or type(body[-1]) is not cst.SimpleStatementLine or type(body[-1].body[0]) is not cst.Return:
            body.append(_stmt(f"return {threaded}"))
        what = "model and optimizer state" if state_params else "model"
        self.report("T2J504", f"{fn.name.value} trained its model in place; it now returns the new {what}, and "
                              f"its callers rebind them", fn)
        return fn.with_changes(body=fn.body.with_changes(body=body))

    def _trainer_call(self, call: cst.Call, targets: list) -> cst.Assign | None:
        name = dotted(call.func)
        trainer = self.facts.trainers.get(name or "")
        if self.class_depth or name not in self.facts.functions:
            return None
        callee = self.facts.functions[name]
        cparams = [p.name.value for p in callee.params.params]
        bound = _bind_names(call, cparams)
        if trainer is None:
            return None  # a function that only reads a stateful model: leave_Call passes it the state
        if self._threaded_before(callee, trainer):
            return None  # its callers rebind what it returns already
        model_args = [bound.get(m) for m in trainer.model_params_trained]
        opt_args = [bound.get(o) for o in trainer.optimizer_params]
        optional = {p.name.value for p in callee.params.params if p.default is not None}  # `optimizer=None`
        if None in model_args or any(a is None and o not in optional
                                     for o, a in zip(trainer.optimizer_params, opt_args)):
            self.report("T2J505", f"the call of {name} does not pass the model and optimizer by name; "
                                  f"rebind the returned state by hand", call)
            return None
        state_param = self._stateful_param(name)
        caller_state = self._state_var(bound.get(state_param or ""))
        if state_param is not None:
            call = _insert_arg(call, cparams, state_param, "state", caller_state)
            cparams = _with_inserted(cparams, state_param, "state")
        caller_states = []
        for opt_param, opt_arg in zip(trainer.optimizer_params, opt_args):
            if opt_arg is None:  # an optional optimizer not given (an evaluation run): its state comes back None
                caller_states.append("_")
                continue
            caller_states.append(self._caller_state_name(opt_arg))
            call = _insert_arg(call, cparams, opt_param, self._state_name_for_param(opt_param), caller_states[-1])
            cparams = _with_inserted(cparams, opt_param, self._state_name_for_param(opt_param))
        outs = model_args + ([caller_state] if state_param else []) + caller_states
        if not targets and any(v is not None for v in return_values(callee)):
            targets = [cst.Name("_")]  # `train(...)` dropped what it returned: it now comes after the threaded values
        new_targets = [cst.Element(cst.Name(n)) for n in outs] + [cst.Element(t) for t in targets]
        target = cst.Tuple(new_targets, lpar=[], rpar=[])
        return cst.Assign([cst.AssignTarget(target)], call)

    def _threaded_before(self, fn: cst.FunctionDef, trainer) -> bool:
        """A trainer translated before (its optimizers' state parameters are there): threading it again would
        add them twice."""
        names = {p.name.value for p in fn.params.params}
        states = [self._state_name_for_param(o) for o in trainer.optimizer_params]
        if states:
            return all(s in names for s in states)
        # a hand-written update (no optimizer state): translated before when every return leads with the models
        models = list(trainer.model_params_trained)
        returns = return_values(fn)
        return bool(models) and bool(returns) and all(
            [dotted(e) for e in ([x.value for x in v.elements] if type(v) is cst.Tuple else [v] if v else [])][
                :len(models)] == models for v in returns)

    def _caller_state_name(self, opt_arg: str) -> str:
        opt = self.facts.optimizer(opt_arg)
        return opt.state_name if opt is not None else self._state_name_for_param(opt_arg)

    # ----- the step itself
    def _follow_up(self, stmt):
        self._follow_ups.add(self._record(stmt))
        return stmt

    def _record(self, node) -> int:
        self._recorded.append(node)
        return id(node)

    def _drop_repeated_follow_ups(self, body: list) -> list:
        """An inserted `opt_state = optimizer.init(...)` that the next statement already is (the input was
        translated before, maybe with a model the first run could tell and this one cannot) is not inserted again:
        translating twice changes nothing."""
        def key(stmt):
            """(target, called function) of `target = f(...)`: what the inserted statement and its copy share."""
            if type(stmt) is not cst.SimpleStatementLine or len(stmt.body) != 1:
                return None
            small = stmt.body[0]
            if type(small) is not cst.Assign or len(small.targets) != 1 or type(small.value) is not cst.Call:
                return None
            return code_of(small.targets[0].target), code_of(small.value.func)

        def same(a, b) -> bool:
            return key(a) is not None and key(a) == key(b)
        return [s for i, s in enumerate(body)
                if not (id(s) in self._follow_ups and i + 1 < len(body) and same(s, body[i + 1]))]

    def _rewrite_block(self, body: list, top_level: bool) -> list:
        out = self._drop_repeated_follow_ups(list(body)) if self._follow_ups else list(body)
        i = 0
        while i < len(out):
            if self._update_at(out[i]) is not None:
                replaced = self._extract_step(out, i, top_level)
                if replaced is not None:
                    out, i = replaced
                    continue
            if "param_groups" in self.ctx.words(out[i]):
                syncs = [self._follow_up(_stmt(f"{state} = {opt}.sync({state})"))
                         for opt, state in self._param_group_edits(out[i])]
                if syncs and not _is_sync_of(out[i + 1:i + 1 + len(syncs)], syncs):
                    out[i + 1:i + 1] = syncs
                    i += len(syncs)
            i += 1
        if any(_is_method_call_stmt(st, "backward") for st in out) \
                and not any(self._update_at(st) is not None for st in out):
            out = self._accumulate_gradients(out, top_level) or out
        if self._accumulating:
            out = self._init_accumulators(out, top_level)
        self._report_left_halves(out)
        if top_level and self.step_functions:
            out = self._insert_step_functions(out)
        return out

    def _report_left_halves(self, body: list) -> None:
        """A backward() with no optimizer step after it in its block, or a step with no backward() before it (the
        usual cause: gradient accumulation, `if (i + 1) % accum == 0: optimizer.step()`): no step was extracted,
        and the torch calls left would fail at run time; say so."""
        backs = [s for s in body if _is_method_call_stmt(s, "backward")]
        # whatever takes a step (T2J50x said why it was left), and the steps of known optimizers
        updates = [(s, found) for s in body if (found := self._update_at(s)) is not None]
        steps = [(s, who) for s, (kind, who) in updates if kind == "step" and self._is_optimizer(who)]
        if backs and not updates:
            self.report("T2J515", f"{code_of(_is_method_call_stmt(backs[0], 'backward').func.value)}.backward() has "
                                  "no optimizer step after it in its block (gradient accumulation?): not translated",
                        backs[0])
        elif steps and not backs:
            self.report("T2J515", f"{steps[0][1]}.step() has no backward() before it in its block "
                                  "(gradient accumulation?): not translated", steps[0][0])

    def _is_optimizer(self, name: str | None) -> bool:
        if name is None:
            return False
        if self.facts.optimizer(name) is not None:
            return True
        trainer = self.facts.trainers.get(self.functions[-1].name.value) if self.functions else None
        return trainer is not None and name in trainer.optimizer_params

    def _param_group_edits(self, stmt) -> list[tuple[str, str]]:
        """The optimizers whose param_groups a statement edits (`for g in optimizer.param_groups: g["lr"] *= 0.5`,
        also through a loop over a tuple of optimizers), with their state names: the state holds the numbers the
        step reads, so an edit is written into it (optimizer.sync) right after."""
        known = set(self.facts.optimizers)
        if self.functions:
            trainer = self.facts.trainers.get(self.functions[-1].name.value)
            known |= set(trainer.optimizer_params) if trainer is not None else set()
        loops: dict[str, list[str]] = {}  # loop variable -> the optimizers it runs over
        edited: list[str] = []

        class V(Visitor):
            def visit_For(self, node: cst.For) -> None:
                if type(node.target) is cst.Name and type(node.iter) in (cst.Tuple, cst.List):
                    names = [dotted(e.value) for e in node.iter.elements]
                    if names and all(n in known for n in names):
                        loops[node.target.value] = names

            def visit_Attribute(self, node: cst.Attribute) -> None:
                if node.attr.value == "param_groups" and id(node) not in synced:
                    owner = dotted(node.value)
                    opts = loops.get(owner or "", [owner] if owner in known else [])
                    if opts:
                        accesses.append(node)
                    for opt in opts:
                        if opt not in edited:
                            edited.append(opt)

        synced = self._synced_ids
        accesses: list = []
        walk(stmt, V())
        if not edited or not self._writes_param_group(stmt):
            return []
        self._synced.extend(accesses)  # an enclosing statement does not sync them again
        self._synced_ids.update(id(a) for a in accesses)
        return [(opt, self._optimizer_state_name(opt)) for opt in edited]

    @staticmethod
    def _writes_param_group(stmt) -> bool:
        """Whether a statement assigns into a param group (`g["lr"] = ...`, `opt.param_groups[0]["lr"] *= 0.5`):
        reading the learning rate for a print needs no sync."""
        found = []

        class V(Visitor):
            def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
                if type(node.target) is cst.Subscript:
                    found.append(node)

            def visit_AugAssign(self, node: cst.AugAssign) -> None:
                if type(node.target) is cst.Subscript:
                    found.append(node)

        walk(stmt, V())
        return bool(found)

    def _update_at(self, stmt) -> tuple[str, str | None] | None:
        """("step", optimizer) for `optimizer.step()`, ("manual", model) for a loop that updates a model's
        parameters from their .grad by hand; None for anything else."""
        call = _is_method_call_stmt(stmt, "step")
        if call is not None:
            owner = dotted(call.func.value)
            if not call.args and owner is not None and owner not in self.facts.schedulers \
                    and owner.split(".")[0] not in ("True", "False", "None"):  # `False.step()`: no optimizer
                return "step", owner
            return None
        found = manual_update_owner(stmt)
        return ("manual", found[0]) if found is not None else None

    def _insert_step_functions(self, body: list) -> list:
        # step functions go before the first top-level statement that uses them
        result = []
        pending = list(self.step_functions)
        self.step_functions = []
        for stmt in body:
            # once per statement (not per pending function: a file of many training loops stays linear)
            uses = self.ctx.words(stmt) if pending else set()
            ready = [f for f in pending if f.name.value in uses]
            for f in ready:
                result.append(f.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()]))
                pending.remove(f)
            result.append(stmt)
        return result + pending

    def _extract_step(self, body: list, i_first: int, top_level: bool):
        self._recomputed = []
        updates = self._updates_from(body, i_first)
        if updates is None:
            return None
        models = [u.model for u in updates]
        i_start, i_end = updates[0].first, updates[-1].last
        # the backward() calls whose gradients these updates apply: those since the previous update (torch adds
        # up the gradients of several backward() calls, so the step differentiates the sum of their losses)
        boundary = next((k + 1 for k in range(i_start - 1, -1, -1)
                         if self._holds_step_call(body[k]) or self._update_at(body[k]) is not None), 0)
        backs = [k for k in range(boundary, i_start) if _is_method_call_stmt(body[k], "backward")]
        if not backs:
            return self._apply_accumulated(body, updates, boundary, top_level)
        i_back = backs[-1]
        losses = [_is_method_call_stmt(body[k], "backward").func.value for k in backs]
        # the region computing the loss: from the first statement that reads a trained model up to backward
        r0 = next((j for j in range(boundary, backs[0]) if set(models) & set(_names([body[j]]).loads)), None)
        fn_node = self.functions[-1] if self.functions else None
        local_names = self._local_names(fn_node, body, top_level)
        recomputed: list = []
        if r0 is None:
            # the loss reads values computed from the model before the previous step (a GAN's `fake = netG(noise)`
            # before the discriminator's step): those computations run again inside this step, so that the
            # gradient reaches the model through them
            r0 = boundary
            region = [s for k, s in enumerate(body[r0:backs[0]], r0)]
            recomputed = self._recomputations(body, r0, region, set(models))
            if not recomputed or r0 >= backs[0]:
                self.report("T2J506", f"cannot find where the loss is computed from {' and '.join(models)} since "
                                      f"the previous step; the step is left as it is", body[i_first])
                return None
            self.report("T2J510", f"{', '.join(sorted(_names(recomputed).stores.keys() - {'_'}))} computed again from "
                                  f"{' and '.join(models)} inside the step, so that the gradient reaches "
                                  f"{'them' if len(models) > 1 else 'it'} (torch kept that graph from before the "
                                  f"previous step)", body[i_first])
        loss_expr, loss_name = _loss_of(losses, set(local_names) | set(_names(body).loads))
        region = recomputed + [s for k, s in enumerate(body[r0:i_back], r0) if k not in backs]
        inits = _filled_containers(body[boundary:r0], region)
        region = inits + region
        region, hoisted_before = self._hoist_for_later_steps(region, set(models))
        between = body[i_back + 1:i_start]
        clips = [s for s in between if self._clip_call(s) is not None] + [
            s for u in updates for s in u.clips]
        others = [s for s in between if self._clip_call(s) is None]
        if any(_reads_gradients_or(s, self._trained_models() | set(models)) for s in others):
            self.report("T2J507", "statements between backward() and step() that are not gradient clipping run "
                                  "after the jitted step, and cannot read gradients there")
        optimizers = [u.optimizer for u in updates if u.optimizer is not None]
        for m in models:
            stale = self._stale_reads(region, m)
            if stale:
                self.report("T2J517", f"the loss reads {m} only through {', '.join(stale)}, values computed before "
                                      f"the step: inside the jitted step they are constants, so the gradient of {m} "
                                      f"is zero; compute the loss from a call of {m} inside the step (store its "
                                      "inputs, not its outputs)", body[i_back])
        for test in _tensor_branches(region, self.ctx.scopes):
            self.report("T2J518", f"`{code_of(test)}` is a tensor inside the jitted training step: a Python branch on "
                                  "it fails when the step is traced; use jnp.where or jax.lax.cond, or decide it "
                                  "outside the step", test)
        scope = list(fn_node.body.body) if fn_node is not None else self._module_statements(list(self.file_node.body))
        masks = _boolean_names(scope) | _boolean_names(region)
        for sub in _mask_indexing(region, masks):
            self.report("T2J520", f"`{code_of(sub)}` indexes with a boolean mask inside the jitted training step: its "
                                  "shape depends on the mask's values, which jit cannot trace (NonConcreteBoolean"
                                  "IndexError); reduce with the mask instead (jnp.where(mask, per_element, 0).sum() "
                                  "/ mask.sum()), or index with integer positions computed outside the step", sub)
        io = self._loss_region(body, region, loss_expr, loss_name, models, optimizers, i_end, fn_node, local_names)
        region, moved, hoisted, inputs, aux, local_names = io
        manual = [u for u in updates if u.optimizer is None]
        for u in manual:  # what a hand-written update reads (the learning rate) comes in as an argument
            loop_names = _names(u.stmts)
            inputs += [n for n in loop_names.loads if n in local_names and n not in inputs and n not in models
                       and n not in loop_names.stores]
        clip_lines = self._clip_lines(clips, models, local_names, set(inputs) | set(models) | set(optimizers))
        if clip_lines is None:
            return None
        clip_lines, clip_inputs = clip_lines
        step_name = self._function_name("train_step")
        states = [self._optimizer_state_name(o) for o in optimizers]
        model_states = self._model_states(models, region)
        inputs = [n for n in inputs if n not in model_states]
        aux = [n for n in aux if n not in model_states]
        step_fn = self._build_step(step_name, updates, states, inputs + [n for n, _ in clip_inputs], region,
                                   loss_expr, loss_name, aux, clip_lines, model_states)
        self.step_functions.append(step_fn)
        outs = models + model_states + states + [loss_name] + aux
        args = models + model_states + states + optimizers + inputs + [v for _, v in clip_inputs]
        call = _stmt(f"{', '.join(outs)} = {step_name}({', '.join(args)}, key={KEY_PLACEHOLDER})")
        self._rebinding_outputs(models, model_states, optimizers, states)
        call = call.with_changes(leading_lines=region[0].leading_lines)
        self._step_calls.add(self._record(call))
        if hoisted:
            hoisted[0] = hoisted[0].with_changes(leading_lines=region[0].leading_lines)
            call = call.with_changes(leading_lines=[])
            self._step_calls.add(self._record(call))
        self.need("eqx", "jax")
        self.report("T2J501", f"training step extracted into the jitted function {step_name}", body[i_first])
        if moved:
            self.report("T2J508", "statements of the loss computation that the loss does not depend on run after "
                                  "the jitted step, on the values it returns", moved[0])
        new_body = [s for s in body[:r0] if not any(s is i for i in inits)] + hoisted_before + hoisted + [call] \
            + moved + others + body[i_end + 1:]
        return new_body, r0 + len(hoisted_before) + len(hoisted) + 1 + len(moved) + len(others)

    def _stale_reads(self, region: list, model: str) -> list[str]:
        """`model.saved` when that is all the loss region reads of the model, and those fields hold plain values
        (REINFORCE's saved_log_probs, outputs stored by earlier forward calls); [] when the region calls the
        model, hands it on, or reads a submodule or parameter (or a field whose kind is unknown)."""
        cls = self.modules.classes.get(self.facts.models.get(model, ""))
        if cls is None:
            return []
        reads: list[str] = []
        uses_model = False

        class V(Visitor):
            def visit_Attribute(self, node: cst.Attribute) -> bool:
                nonlocal uses_model
                path = dotted(node)
                if path is None or not path.startswith(model + "."):
                    return True
                field = cls.fields.get(path.split(".")[1])
                if field is None or field.kind not in ("plain", "static", "none"):
                    uses_model = True
                elif f"{model}.{field.name}" not in reads:
                    reads.append(f"{model}.{field.name}")
                return False

            def visit_Name(self, node: cst.Name) -> None:
                nonlocal uses_model
                if node.value == model:
                    uses_model = True  # called, passed on, or read whole

        for stmt in region:
            walk(stmt, V())
        return [] if uses_model else reads

    def _holds_step_call(self, stmt) -> bool:
        """A step call this pass wrote is this statement, or inside it (a discriminator's steps in an inner loop,
        before the generator's loss): a later step's loss starts after it."""
        if id(stmt) in self._step_calls:
            return True
        return type(stmt) is not cst.SimpleStatementLine and any(
            id(s) in self._step_calls for s in iter_statements(stmt, enter=lambda s: type(s) is not cst.FunctionDef))

    def _function_name(self, prefix: str) -> str:
        """train_step, train_step2, ...: one numbering per kind of extracted function."""
        self.step_counts[prefix] = self.step_counts.get(prefix, 0) + 1
        count = self.step_counts[prefix]
        return prefix if count == 1 else f"{prefix}{count}"

    # ----- gradient accumulation: backward() in one block, optimizer.step() in another

    def _accumulator(self, model: str) -> str:
        """The name holding `model`'s summed gradients (torch's .grad between zero_grad and step)."""
        return "grads_acc" if model == "model" else f"{model}_grads_acc"

    def _in_scope(self, word: str) -> bool:
        """Whether the enclosing function (or the file) mentions `word` (a backward() or a step() elsewhere)."""
        scope = self.functions[-1] if self.functions else None
        return word in (self.ctx.words(scope) if scope is not None else self.file_words)

    def _accumulate_gradients(self, body: list, top_level: bool) -> list | None:
        """The backward() half: `loss = f(model(x)); loss.backward()` with the optimizer step in another block
        (`if (i + 1) % accum == 0: optimizer.step()`, or after nanoGPT's loop over micro-steps). The loss and its
        gradients come from a jitted function, and the gradients are added to the model's accumulator, which the
        step half (_apply_accumulated) applies and clears."""
        backs = [k for k, st in enumerate(body) if _is_method_call_stmt(st, "backward")]
        boundary = next((k + 1 for k in range(backs[0] - 1, -1, -1) if self._holds_step_call(body[k])), 0)
        backs = [k for k in backs if k >= boundary]
        if not backs or not self._in_scope("step"):
            return None
        i_back = backs[-1]
        reads = _names(body[boundary:i_back]).loads
        models = sorted(self._stepped_here() & set(reads), key=reads.index)
        if not models:
            return None
        r0 = next(j for j in range(boundary, i_back) if set(models) & set(_names([body[j]]).loads))
        losses = [_is_method_call_stmt(body[k], "backward").func.value for k in backs]
        fn_node = self.functions[-1] if self.functions else None
        local_names = self._local_names(fn_node, body, top_level)
        loss_expr, loss_name = _loss_of(losses, set(local_names) | set(_names(body).loads))
        region = [st for k, st in enumerate(body[r0:i_back], r0) if k not in backs]
        region, moved, hoisted, inputs, aux, local_names = self._loss_region(
            body, region, loss_expr, loss_name, models, [], i_back, fn_node, local_names)
        model_states = self._model_states(models, region)
        inputs = [n for n in inputs if n not in model_states]
        aux = [n for n in aux if n not in model_states]
        taken = set(local_names) | set(_names(body).loads)
        grads = [_fresh("grads" if len(models) == 1 else f"{m}_grads", taken) for m in models]
        name = self._function_name("grad_step")
        updates = [_Update(None, m, 0, 0, [], []) for m in models]
        self.step_functions.append(self._build_step(name, updates, [], inputs, region, loss_expr, loss_name, aux,
                                                    [], model_states, grads_out=grads))
        outs = model_states + [loss_name] + aux + grads
        call = _stmt(f"{', '.join(outs)} = {name}({', '.join(models + model_states + inputs)}, key={KEY_PLACEHOLDER})")
        self._rebinding_outputs([], model_states, [], [])
        call = call.with_changes(leading_lines=(hoisted or region)[0].leading_lines)
        accs = [self._accumulator(m) for m in models]
        adds = [_stmt(f"{a} = t2j.accumulate_grads({a}, {g})") for a, g in zip(accs, grads)]
        self._step_calls.add(self._record(call))
        self._accumulating[id(call)] = accs
        if hoisted:
            hoisted[0] = hoisted[0].with_changes(leading_lines=call.leading_lines)
            call = call.with_changes(leading_lines=[])
            self._step_calls.add(self._record(call))
            self._accumulating[id(call)] = accs
        self.need("eqx", "jax", "t2j")
        self.report("T2J516", f"gradient accumulation: {name} computes the loss and the gradients of "
                              f"{' and '.join(models)}, added to {', '.join(accs)}; the optimizer step applies and "
                              "clears them", body[backs[0]])
        return body[:r0] + hoisted + [call] + adds + moved + body[i_back + 1:]

    def _stepped_here(self) -> set[str]:
        """The models whose optimizers the enclosing function (or the file) names: those a step there can update."""
        scope = self.functions[-1] if self.functions else None
        text = code_of(scope) if scope is not None else self.file_code
        models = {o.model for o in self.facts.optimizers.values() if o.model and f"{o.name}.step(" in text}
        if scope is not None and scope.name.value in self.facts.trainers:
            models |= set(self.facts.trainers[scope.name.value].model_params_trained)
        return models

    def _apply_accumulated(self, body: list, updates: list, boundary: int, top_level: bool):
        """The step half of gradient accumulation: optimizer steps (and the clipping right before them) with no
        backward() in their block apply the accumulated gradients in a jitted function, then clear them
        (torch's zero_grad after the step)."""
        if any(u.optimizer is None for u in updates) or not self._in_scope("backward") \
                or any(_is_method_call_stmt(st, "backward") for st in body):
            return None  # a backward() in this block belongs to a step here (one left for a human, T2J509...)
        models = [u.model for u in updates]
        i_start, i_end = updates[0].first, updates[-1].last
        k = i_start
        while k > boundary and self._clip_call(body[k - 1]) is not None:
            k -= 1
        clips = body[k:i_start] + [st for u in updates for st in u.clips]
        fn_node = self.functions[-1] if self.functions else None
        local_names = self._local_names(fn_node, body, top_level)
        optimizers = [u.optimizer for u in updates]
        states = [self._optimizer_state_name(o) for o in optimizers]
        accs = [self._accumulator(m) for m in models]
        clip_lines = self._clip_lines(clips, models, local_names, set(models) | set(optimizers) | set(states)
                                      | set(accs))
        if clip_lines is None:
            return None
        clip_lines, clip_inputs = clip_lines
        name = self._function_name("apply_step")
        taken = set(models) | set(optimizers) | set(states) | set(accs) | {n for n, _ in clip_inputs}
        lines = []
        for owners, line in clip_lines:
            target = accs[models.index(owners[0])] if len(owners) == 1 else \
                f"({', '.join(accs[models.index(m)] for m in owners)})"
            lines.append(line.replace(GRADS, target))
        updates_name = _fresh("updates", taken)
        for u, state, acc in zip(updates, states, accs):
            lines.append(f"{updates_name}, {state} = {u.optimizer}.update({acc}, {state}, "
                         f"eqx.filter({u.model}, eqx.is_array))")
            lines.append(f"{u.model} = eqx.apply_updates({u.model}, {updates_name})")
        lines.append(f"return {', '.join(models + states)}")
        params = models + states + optimizers + accs + [n for n, _ in clip_inputs]
        fn = cst.parse_statement(f"@eqx.filter_jit\ndef {name}({', '.join(params)}):\n    pass\n")
        self.step_functions.append(fn.with_changes(body=fn.body.with_changes(body=[_stmt(l) for l in lines])))
        args = models + states + optimizers + accs + [v for _, v in clip_inputs]
        call = _stmt(f"{', '.join(models + states)} = {name}({', '.join(args)})")
        self._rebinding_outputs(models, [], optimizers, states)
        call = call.with_changes(leading_lines=body[k].leading_lines)
        self._step_calls.add(self._record(call))
        clears = [_stmt(f"{a} = None") for a in accs]
        self.need("eqx", "jax")
        self.report("T2J516", f"gradient accumulation: {name} applies the gradients summed in {', '.join(accs)} "
                              "since the last step, then they start again from None (torch's zero_grad)", body[k])
        return body[:k] + [call] + clears + body[i_end + 1:], k + 1 + len(clears)

    def _init_accumulators(self, body: list, top_level: bool) -> list:
        """`grads_acc = None` before the nearest loop around an accumulating call (at the top of the function or
        file when no loop holds it), so that each run of that loop starts from no gradients."""
        out = []
        for st in body:
            if type(st) in (cst.For, cst.While):
                inside = [i for i in self._accumulating if any(id(x) == i for x in iter_statements(st))]
                accs = list(dict.fromkeys(a for i in inside for a in self._accumulating.pop(i)))
                out += [_stmt(f"{a} = None").with_changes(leading_lines=st.leading_lines) for a in accs]
                if accs:
                    st = st.with_changes(leading_lines=[])
            out.append(st)
        if top_level:
            out = self._init_left_accumulators(out)
        return out

    def _init_left_accumulators(self, body: list) -> list:
        """The accumulators of calls in `body` (a function's or the file's) that no loop holds: set first."""
        here = [i for i in self._accumulating if any(id(st) == i or any(id(x) == i for x in iter_statements(st))
                                                     for st in body)]
        accs = list(dict.fromkeys(a for i in here for a in self._accumulating.pop(i)))
        if not accs:
            return body
        at = 1 if body and _is_docstring_stmt(body[0]) else 0
        return body[:at] + [_stmt(f"{a} = None") for a in accs] + body[at:]

    def _loss_region(self, body, region, loss_expr, loss_name, models, optimizers, i_end, fn_node, local_names):
        """What the loss computation `region` becomes inside a jitted function: (region, the statements it does
        not need (run after the call), the batch slices hoisted before the call, its inputs, the values it returns
        beside the loss, the local names with the hoisted ones)."""
        region, moved = _split_off_unneeded(region, loss_expr, set(models), set(local_names) | set(_names(body).loads))
        # batch slicing by Python numbers (X[i:i + 16]) happens before the step: inside it the numbers would be
        # static arguments and recompile the step for every value
        hoister = _BatchHoister(set(models), local_names - _names(region).stores.keys(), set(local_names))
        region = [transform(stmt, hoister) for stmt in region]
        local_names = local_names | _names(hoister.hoisted).stores.keys()
        reads = _names(region).loads
        stores = _names(region).stores
        after = self._names_after(body, i_end, fn_node, _names(region).counts) | set(_names(moved).loads)
        aux = [n for n in stores if n in after and n != loss_name and n not in models]
        aux.sort(key=lambda n: reads.index(n) if n in reads else len(reads))
        # with the names the loss expression reads beyond the region's (`(loss / accum_steps).backward()`)
        read = reads + [n for n in _names([cst.SimpleStatementLine([cst.Expr(loss_expr)])]).loads if n not in reads]
        inputs = [n for n in read if n in local_names and n not in models and n not in optimizers and
                  not _defined_before_use(region, n)]
        return region, moved, hoister.hoisted, inputs, aux, local_names

    def _model_states(self, models: list[str], region: list) -> list[str]:
        """The states a jitted function threads: of the stateful models it trains, and of those its loss calls."""
        region_reads = set(_names(region).loads)
        return list(dict.fromkeys(
            self._state_var(m) for m in models + [m for m in self._user_models() if m in region_reads]
            if self._is_stateful(m)))

    def _user_models(self) -> list[str]:
        """The file's models of its own classes (their calls take a key; the stateful ones thread a state)."""
        return [m for m, c in self.facts.models.items() if c in self.modules.classes or c in self.facts.factories]

    def _trained_models(self) -> set[str]:
        models = {o.model for o in self.facts.optimizers.values() if o.model}
        if self.functions:
            trainer = self.facts.trainers.get(self.functions[-1].name.value)
            models |= set(trainer.model_params_trained) if trainer is not None else set()
        return models

    def _hoist_for_later_steps(self, region: list, models: set[str]) -> tuple[list, list]:
        """Statements of the loss region that call another trained model and do not depend on this step's models
        (`fake = netG(noise)` in the discriminator's step), with what they need: they run before the step, so
        that the later step of that model finds them there and can compute them again from the model."""
        others = self._trained_models() - models
        if not others:
            return region, []
        names = [_names([s]) for s in region]
        kept_loads: set[str] = set()
        kept_stores: set[str] = set()
        free = []
        for s, n in zip(region, names):
            loads, stores = set(n.loads), set(n.stores)
            ok = type(s) is cst.SimpleStatementLine and not loads & models and not loads & kept_stores \
                and not stores & (kept_loads | kept_stores)
            free.append(ok)
            if not ok:
                kept_loads |= loads
                kept_stores |= stores
        wanted = [ok and bool(set(n.loads) & others) for ok, n in zip(free, names)]
        if not any(wanted):
            return region, []
        needed: set[str] = set()
        for i in range(len(region) - 1, -1, -1):  # and the free statements they read from
            if wanted[i] or (free[i] and set(names[i].stores) & needed):
                wanted[i] = True
                needed |= set(names[i].loads)
        for i, w in enumerate(wanted):  # moving it first must not change what an earlier statement reads
            if not w:
                continue
            for j in range(i):
                if not wanted[j] and (set(names[i].stores) & (set(names[j].loads) | set(names[j].stores))
                                      or set(names[i].loads) & set(names[j].stores)):
                    return region, []
        return [s for s, w in zip(region, wanted) if not w], [s for s, w in zip(region, wanted) if w]

    def _recomputations(self, body: list, r0: int, region: list, models: set[str]) -> list:
        """Copies of the statements before body[r0] that computed, from the models, values the region reads before
        assigning them; a stateful model's new state from the copy is dropped (torch ran that forward once)."""
        copies: dict[int, cst.BaseStatement] = {}
        for name in _names(region).loads:
            if not _first_use(region, name) == "load":
                continue
            k = next((k for k in range(r0 - 1, -1, -1) if name in _names([body[k]]).stores), None)
            if k is None or k in copies or id(body[k]) in self._step_calls \
                    or type(body[k]) is not cst.SimpleStatementLine or len(body[k].body) != 1 \
                    or type(body[k].body[0]) is not cst.Assign:
                continue
            n = _names([body[k]])
            if not set(n.loads) & models:
                continue
            state_vars = {self._state_var(m) for m in models} | {"state"}
            changed = set(_names(body[k + 1:r0]).stores) - state_vars
            if (set(n.loads) | set(n.stores) - state_vars) & changed:
                continue  # what it read (or wrote) changed since: computing it again would give something else
            copies[k] = body[k]
            self._recomputed.append(body[k])  # its model's new state is dropped in the step: see _build_step
        return [copies[k] for k in sorted(copies)]

    def _updates_from(self, body: list, i_first: int) -> list["_Update"] | None:
        """The updates applied together from body[i_first]: optimizer steps right after one another (with the
        gradient clipping between them), or one hand-written update loop with the statements around it."""
        updates: list[_Update] = []
        pending_clips: list = []
        j = i_first
        while j < len(body):
            found = self._update_at(body[j])
            if found is not None:
                kind, who = found
                if kind == "manual" and updates:
                    break
                model = self._optimized_model(who) if kind == "step" else who
                if model is None:
                    self.report("T2J502", f"cannot tell which model {who} optimizes; the step is left as it is",
                                body[j])
                    return None if not updates else updates
                if model in (u.model for u in updates):
                    self.report("T2J509", f"two optimizers of {model} take a step together: the step is left as it "
                                          f"is", body[j])
                    return None
                first = last = j
                stmts = [body[j]]
                if kind == "manual":
                    first, last, stmts = self._manual_update_span(body, j, model)
                updates.append(_Update(who if kind == "step" else None, model, first, last, stmts, pending_clips))
                pending_clips = []
                j = last + 1
                if kind == "manual":
                    break
                continue
            clip = self._clip_call(body[j])
            if clip is not None and updates:
                owners = parameters_owners(clip.args[0].value) if clip.args else set()
                if owners & {u.model for u in updates}:
                    break  # clipping gradients a step already used: not part of that step
                pending_clips.append(body[j])
                j += 1
                continue
            break
        return updates or None

    def _manual_update_span(self, body: list, j: int, model: str) -> tuple[int, int, list]:
        """The hand-written update loop at body[j], with the `new_params = []` before it and the
        `model = t2j.replace_parameters(model, new_params)` after it that the module-updates pass writes."""
        first, last = j, j
        if j + 1 < len(body) and isinstance(body[j + 1], cst.SimpleStatementLine):
            small = body[j + 1].body[0]
            if type(small) is cst.Assign and type(small.value) is cst.Call \
                    and dotted(small.value.func) == "t2j.replace_parameters" \
                    and dotted(small.targets[0].target) == model and len(small.value.args) == 2:
                collected = dotted(small.value.args[1].value)
                if j > 0 and code_of(body[j - 1]).strip() == f"{collected} = []":
                    first, last = j - 1, j + 1
        return first, last, body[first:last + 1]

    def _optimizer_state_name(self, optimizer: str) -> str:
        opt_facts = self.facts.optimizer(optimizer)
        return opt_facts.state_name if opt_facts is not None else self._state_name_for_param(optimizer)

    def _optimized_model(self, optimizer: str) -> str | None:
        trainer = self.facts.trainers.get(self.functions[-1].name.value) if self.functions else None
        if trainer is not None:
            for model, opt in trainer.pairs:
                if opt == optimizer:
                    return model  # inside a trainer, its parameters (the caller may call its model otherwise)
        opt = self.facts.optimizer(optimizer)
        if opt is not None and opt.model:
            return opt.model
        for t in self.facts.trainers.values():
            for model, opt_param in t.pairs:
                if opt_param == optimizer:
                    return model
        if len(self.facts.optimizers) > 1:
            return None  # several optimizers: guessing the model would train the wrong one
        return next(iter(self.facts.models), "model")

    def _is_stateful(self, model: str) -> bool:
        cls = self.facts.models.get(model)
        if cls is None:  # a parameter: stateful when the file's models are
            return any(self._model_stateful(m) for m in self.facts.models)
        return self._model_stateful(model)

    def _clip_call(self, stmt) -> cst.Call | None:
        """The clipping call of `clip_grad_norm_(...)`, or of `if cond: clip_grad_norm_(...)` (no else)."""
        if type(stmt) is cst.If and stmt.orelse is None and type(stmt.body) is cst.IndentedBlock \
                and len(stmt.body.body) == 1:
            return self._clip_call(stmt.body.body[0])
        if type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1:
            small = stmt.body[0]
            value = small.value if type(small) in (cst.Expr, cst.Assign) else None
            if type(value) is cst.Call and self.ctx.scopes.qualname(value.func) in CLIP_FUNCTIONS:
                return value
        return None

    def _local_names(self, fn: cst.FunctionDef | None, body: list, top_level: bool) -> set[str]:
        if fn is not None:  # with the enclosing functions': a closure's step reads them (`def train(epoch):` in main)
            return set().union(*(bound_in_function(f) for f in self.functions)) if self.functions \
                else set(bound_in_function(fn))
        names = set()
        for stmt in self._module_statements(body):
            names |= _names([stmt]).stores.keys()
        return names

    def _module_statements(self, body):
        return [s for s in body if type(s) not in (cst.FunctionDef, cst.ClassDef)]

    def _names_after(self, body: list, i_step: int, fn: cst.FunctionDef | None, in_region: dict) -> set[str]:
        """Names read outside the region: after the step in this block, or elsewhere in the function."""
        names = set(_names(body[i_step + 1:]).loads)
        if fn is not None:
            counts = _names(list(fn.body.body)).counts
            names |= {n for n, c in counts.items() if c > in_region.get(n, 0)}
        return names

    def _clip_lines(self, clips: list, models: list[str], local_names: set[str], taken: set[str]
                    ) -> tuple[list[tuple[tuple[str, ...], str]], list] | None:
        """The step's clipping lines, each with the models whose gradients it clips (written with GRADS for
        them), and the (parameter, value) pairs they need from the caller: an argument or condition that reads the
        caller's local variables (`args.grad_clip`, `max_norm > 0`) is evaluated there and passed in (a Python
        number: static for the jit), so that an argparse Namespace is never a jit argument."""
        lines, params = [], []

        def value(expr, name: str) -> str:
            code = code_of(expr)
            if not set(_names([cst.SimpleStatementLine([cst.Expr(expr)])]).loads) & local_names:
                return code  # a literal or a global: read inside the step as it is
            if type(expr) is cst.Name and expr.value not in taken:
                params.append((expr.value, code))
                taken.add(expr.value)
                return code
            if type(expr) is cst.Name:
                return code
            param, k = name, 2
            while param in taken or param in local_names:
                param, k = f"{name}{k}", k + 1
            taken.add(param)
            params.append((param, code))
            return param

        for clip in clips:
            call = self._clip_call(clip)
            owners = tuple(m for m in models if m in parameters_owners(call.args[0].value)) if call.args else ()
            if len(models) == 1:
                owners = tuple(models)  # one trained model: its gradients are the ones there are
            elif not owners:
                self.report("T2J509", f"cannot tell whose gradients {code_of(call.func)} clips among "
                                      f"{', '.join(models)}; the step is left as it is", clip)
                return None
            target = CLIP_FUNCTIONS[self.ctx.scopes.qualname(call.func)]
            positional = CLIP_PARAMS[target]
            args = []
            for i, a in enumerate(call.args[1:]):
                name = a.keyword.value if a.keyword else positional[min(i, len(positional) - 1)]
                code = value(a.value, name)
                args.append(f"{a.keyword.value}={code}" if a.keyword else code)
            self.need("t2j")
            line = f"{GRADS} = {target}({GRADS}, {', '.join(args)})"
            if type(clip) is cst.If:  # a Python condition, decided when the step traces
                line = f"if {value(clip.test, 'clip_grads')}:\n    {line}"
            lines.append((owners, line))
        return lines, params

    def _build_step(self, name, updates, states, inputs, region, loss_expr, loss_name, aux, clip_lines,
                    model_states, grads_out: list[str] | None = None):
        """The jitted step: the loss function, its value and gradients, clipping and the updates; with `grads_out`
        (gradient accumulation) it returns the gradients under those names instead of applying them."""
        models = [u.model for u in updates]
        optimizers = [u.optimizer for u in updates if u.optimizer is not None]
        # every model called in the loss takes the step's key; a stateful one threads its state
        called = [m for m in models] + [m for m in self._user_models() if m not in models]
        threaded = {m: self._state_var(m) for m in called if self._is_stateful(m) and self._state_var(m) in model_states}
        threaded.update({f"{m}.{method}": st for m, st in list(threaded.items())
                         for method in self._stateful_methods_of(m)})
        model_calls = _ModelCalls(self.ctx.positions, called, threaded)
        model_calls.total = sum(code_of(stmt).count(f"{m}(") for stmt in region for m in called)
        new_region = []
        recomputed = {code_of(s).strip() for s in self._recomputed}
        for stmt in region:
            again = code_of(stmt).strip() in recomputed
            model_calls.root = stmt
            stmt = transform(stmt, model_calls)
            if again:  # torch ran that forward once: the state it updated is already the caller's, and this
                # forward reads a copy (Equinox refuses a state used twice)
                stmt = transform(stmt, _Rename({v: "_" for v in model_calls.states.values()}, stores_only=True))
                stmt = transform(stmt, _Rename({v: f"jax.tree_util.tree_map(lambda s: s, {v})"
                                                for v in model_calls.states.values()}, loads_only=True))
            new_region += model_calls.hoisted + [stmt]
            model_calls.hoisted = []
        region = new_region
        # the step's own names must not capture the user's (a criterion called `loss_fn`, a variable `grads`)
        taken = set(inputs) | set(_names(region).loads) | set(_names(region).stores) | set(models) | set(
            optimizers) | set(states) | {loss_name}
        for u in updates:
            taken |= set(_names(u.stmts).loads) | set(_names(u.stmts).stores)
        fn_name, grads, updates_name = (_fresh(n, taken) for n in ("loss_fn", "grads", "updates"))
        model_grads = {models[0]: grads} if len(models) == 1 else {m: _fresh(f"{m}_grads", taken) for m in models}
        # an input the loss computation reassigns (`images = images.float()`) would be a local of loss_fn read
        # before assignment: it comes in as an argument (filter_value_and_grad differentiates the first only)
        rebound = [n for n in inputs if n in _names(region).stores]
        differentiated = models[0] if len(models) == 1 else _fresh("models", taken)
        loss_params = ", ".join([differentiated] + model_states + rebound)
        ret = code_of(loss_expr)
        aux_vals = model_states + aux
        if aux_vals:
            ret = f"{ret}, ({', '.join(aux_vals)}{',' if len(aux_vals) == 1 else ''})"
        unpack = [_stmt(f"{', '.join(models)} = {differentiated}")] if len(models) > 1 else []
        loss_fn = cst.FunctionDef(
            name=cst.Name(fn_name),
            params=cst.parse_statement(f"def f({loss_params}): pass").params,
            body=cst.IndentedBlock(unpack + [s.with_changes(leading_lines=[]) for s in region]
                                   + [_stmt(f"return {ret}")]),
        )
        lines = []
        has_aux = ", has_aux=True" if aux_vals else ""
        call_args = loss_params if len(models) == 1 else ", ".join(
            [f"({', '.join(models)})"] + model_states + rebound)
        lhs = f"({loss_name}, ({', '.join(aux_vals)}{',' if len(aux_vals) == 1 else ''}))" if aux_vals else loss_name
        lines.append(f"{lhs}, {grads} = eqx.filter_value_and_grad({fn_name}{has_aux})({call_args})")
        if len(models) > 1:
            lines.append(f"{', '.join(model_grads[m] for m in models)} = {grads}")
        for owners, line in clip_lines:
            target = model_grads[owners[0]] if len(owners) == 1 else f"({', '.join(model_grads[m] for m in owners)})"
            lines.append(line.replace(GRADS, target))
        body = [loss_fn] + [_stmt(line) for line in lines]
        if grads_out is not None:
            outs = model_states + [loss_name] + aux + [model_grads[m] for m in models]
            body.append(_stmt(f"return {', '.join(outs)}"))
            header = f"@eqx.filter_jit\ndef {name}({', '.join(models + model_states + inputs)}, *, key):\n    pass\n"
            fn = cst.parse_statement(header)
            return fn.with_changes(body=fn.body.with_changes(body=body))
        states_left = list(states)
        for u in updates:
            g = model_grads[u.model]
            if u.optimizer is not None:
                state = states_left.pop(0)
                body.append(_stmt(f"{updates_name}, {state} = {u.optimizer}.update({g}, {state}, "
                                  f"eqx.filter({u.model}, eqx.is_array))"))
                body.append(_stmt(f"{u.model} = eqx.apply_updates({u.model}, {updates_name})"))
            else:
                body += _manual_update(u, g, taken)
                self.need("t2j")
        outs = models + model_states + states + [loss_name] + aux
        body.append(_stmt(f"return {', '.join(outs)}"))
        params = models + model_states + states + optimizers + inputs
        header = f"@eqx.filter_jit\ndef {name}({', '.join(params)}, *, key):\n    pass\n"
        fn = cst.parse_statement(header)
        return fn.with_changes(body=fn.body.with_changes(body=body))


GRADS = "__t2j_grads__"


def _is_sync_of(following: list, syncs: list) -> bool:
    """The syncs are there already (the input was translated before): translating twice changes nothing."""
    return len(following) == len(syncs) and all(
        type(a) is cst.SimpleStatementLine and code_of(a).strip() == code_of(b).strip()
        for a, b in zip(following, syncs))


class _Update:
    """One update of a step: an optimizer's step() (optimizer set) or a hand-written loop over a model's
    parameters (optimizer None, `stmts` the loop and the statements around it)."""

    def __init__(self, optimizer, model, first, last, stmts, clips) -> None:
        self.optimizer, self.model, self.first, self.last, self.stmts, self.clips = (
            optimizer, model, first, last, stmts, clips)


def _manual_update(update: _Update, grads: str, taken: set[str]) -> list:
    """The hand-written update inside the step: the loop runs on the parameters with their gradients beside them
    (`p.grad` reads the gradient), collecting the new values that replace the model's parameters."""
    stmts = list(update.stmts)
    loop = next(s for s in stmts if type(s) is cst.For)
    target = loop.target
    param = target.elements[1].value.value if type(target) is cst.Tuple else target.value
    grad_name = _fresh(f"{param}_grad", taken)
    body = transform(loop.body, _GradReads(param, grad_name))
    if len(stmts) == 1:  # a loop of `p -= lr * p.grad` that nothing rewrote yet: collect and replace here
        collected = _fresh("new_params", taken)
        body = body.with_changes(body=list(body.body) + [_stmt(f"{collected}.append({param})")])
        it = code_of(loop.iter)
        if type(loop.iter) is cst.Call and type(loop.iter.func) is cst.Attribute:
            named = loop.iter.func.attr.value == "named_parameters"
            it = f"t2j.{'named_parameters' if named else 'parameters'}({update.model})"
        loop = loop.with_changes(iter=cst.parse_expression(it))
        stmts = [_stmt(f"{collected} = []"), loop,
                 _stmt(f"{update.model} = t2j.replace_parameters({update.model}, {collected})")]
    pair = cst.parse_expression(f"(({code_of(target)}), {grad_name})" if type(target) is cst.Tuple
                                else f"({code_of(target)}, {grad_name})")
    pair = pair.with_changes(lpar=[], rpar=[])
    zipped = cst.parse_expression(f"zip({code_of(loop.iter)}, t2j.parameters({grads}))")
    new_loop = loop.with_changes(target=pair, iter=zipped, body=body)
    return [new_loop if type(s) is cst.For else s.with_changes(leading_lines=[]) for s in stmts]


class _GradReads(Transformer):
    """In a hand-written update: `p.grad` (and `p.grad.data`) -> the gradient beside p; `p -= e` / `p.data -= e`
    -> `p = p - e`; a statement that zeroes or rebinds p's gradient is dropped (each step has fresh gradients)."""

    def __init__(self, param: str, grad_name: str) -> None:
        self.param, self.grad_name = param, grad_name

    def _is_grad(self, node) -> bool:
        return type(node) is cst.Attribute and node.attr.value == "grad" and type(node.value) is cst.Name \
            and node.value.value == self.param

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        if self._is_grad(original):
            return cst.Name(self.grad_name)
        if original.attr.value == "data" and (self._is_grad(original.value) or (
                type(original.value) is cst.Name and original.value.value == self.param)):
            return updated.value  # p.data / p.grad.data: the value itself
        return updated

    def leave_AugAssign(self, original: cst.AugAssign, updated: cst.AugAssign):
        if dotted(updated.target) == self.param:
            op = code_of(updated.operator).strip().rstrip("=")
            return cst.parse_statement(f"{self.param} = {self.param} {op} ({code_of(updated.value)})\n").body[0]
        return updated

    def leave_SimpleStatementLine(self, original, updated):
        code = code_of(original)
        if f"{self.param}.grad.zero_()" in code or f"{self.param}.grad = None" in code \
                or f"m.grad, {self.param}" in code:
            return cst.RemoveFromParent()
        return updated


def _reads_gradients_or(stmt, models: set[str]) -> bool:
    """Whether a statement between backward() and step() reads a trained model or some `.grad`: after the step,
    where it now runs, the model is the updated one and there are no .grad attributes."""
    n = _names([stmt])
    return bool(models & set(n.loads)) or "grad" in code_of(stmt)


def _parenthesized_expr(node):
    if type(node) in (cst.Name, cst.Attribute, cst.Call, cst.Subscript) or node.lpar:
        return node
    return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _has_state_arg(call: cst.Call, state: str = "state") -> bool:
    return any(type(a.value) is cst.Name and a.value.value == state for a in call.args)


def _with_state_arg(call: cst.Call, state: str = "state") -> cst.Call:
    """`model(x)` -> `model(x, state)`."""
    args = list(call.args)
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    at = next((i for i, a in enumerate(args) if a.keyword is not None or a.star), len(args))
    if at > 0:
        args[at - 1] = args[at - 1].with_changes(comma=comma)
    args.insert(at, cst.Arg(cst.Name(state), comma=comma if at < len(args) else cst.MaybeSentinel.DEFAULT))
    return call.with_changes(args=args)


def _with_inserted(params: list[str], after: str, new: str) -> list[str]:
    i = params.index(after) + 1
    return params[:i] + [new] + params[i:]


def _insert_param(fn: cst.FunctionDef, after: str, new: str) -> cst.FunctionDef:
    """Add parameter `new` right after parameter `after`."""
    params = list(fn.params.params)
    at = next(i for i, p in enumerate(params) if p.name.value == after) + 1
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    params[at - 1] = params[at - 1].with_changes(comma=comma)
    has_more = at < len(params) or fn.params.star_arg is not cst.MaybeSentinel.DEFAULT or fn.params.kwonly_params
    # after a parameter with a default (`optimizer=None`), the new one needs one too
    default = cst.Name("None") if params[at - 1].default is not None else None
    equal = cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")) if default else cst.MaybeSentinel.DEFAULT
    params.insert(at, cst.Param(cst.Name(new), default=default, equal=equal,
                                comma=comma if has_more else cst.MaybeSentinel.DEFAULT))
    return fn.with_changes(params=fn.params.with_changes(params=params))


def _insert_arg(call: cst.Call, params: list[str], after: str, new_param: str, value: str) -> cst.Call:
    """Pass `value` for the parameter inserted after `after`: positionally when `after` was passed by position."""
    args = list(call.args)
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    index = params.index(after)
    positional = [i for i, a in enumerate(args) if a.keyword is None and not a.star]
    if index < len(positional):
        at = positional[index] + 1
        args[at - 1] = args[at - 1].with_changes(comma=comma)
        args.insert(at, cst.Arg(cst.Name(value), comma=comma if at < len(args) else cst.MaybeSentinel.DEFAULT))
    else:
        if args:
            args[-1] = args[-1].with_changes(comma=comma)
        args.append(cst.Arg(cst.Name(value), keyword=cst.Name(new_param),
                            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
    return call.with_changes(args=args)


class _BatchHoister(Transformer):
    """`X[start:start + 16]` in the loss region, built from names defined outside it: computed before the step,
    which then takes the batch itself."""

    def __init__(self, models: set[str], outside: set[str], taken: set[str]) -> None:
        self.models = models
        self.outside = outside
        self.taken = taken
        self.hoisted: list[cst.BaseStatement] = []
        self.depth = 0
        self.bound: list[frozenset[str]] = []  # the variables of the comprehensions and lambdas around the node

    def _bind(self, node) -> None:
        """`w[k]` in `sum(w[k] * v for k, v in ...)` reads the generator's own `k`: it cannot run before the step
        (the same name outside, if any, is another variable)."""
        if type(node) is cst.Lambda:
            ps = node.params
            params = [*ps.posonly_params, *ps.params, *ps.kwonly_params,
                      *(p for p in (ps.star_arg, ps.star_kwarg) if type(p) is cst.Param)]
            self.bound.append(frozenset(p.name.value for p in params))
            return
        own = _Names()
        own._root = node
        walk(node, own)
        self.bound.append(frozenset(own.stores))

    def _unbind(self, original, updated):
        self.bound.pop()
        return updated

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_Lambda = _bind
    leave_ListComp = leave_SetComp = leave_DictComp = leave_GeneratorExp = leave_Lambda = _unbind

    def visit_FunctionDef(self, node) -> bool:
        return False  # its subscripts may read its own locals

    def visit_Subscript(self, node: cst.Subscript) -> None:
        self.depth += 1

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript):
        self.depth -= 1
        if self.depth or type(original.value) is not cst.Name:
            return updated
        names = _names([cst.SimpleStatementLine([cst.Expr(original)])])
        index_names = set(names.loads) - {original.value.value}
        if not index_names or not set(names.loads) <= self.outside or self.models & set(names.loads):
            return updated  # a literal index (out[:, 0]) stays; so does anything computed inside the region
        if any(index_names & bound for bound in self.bound):
            return updated
        name = f"{original.value.value}_batch"
        i = 2
        while name in self.taken:
            name, i = f"{original.value.value}_batch{i}", i + 1
        self.taken.add(name)
        self.hoisted.append(_stmt(f"{name} = {code_of(updated)}"))
        return cst.Name(name)


class _ModelCalls(CarryPositions):
    """Inside the step: `model(x)` takes the step's key (and threads the state of a stateful model)."""

    def __init__(self, positions: dict, models: list[str], states: dict[str, str]) -> None:
        super().__init__(positions)
        self.models = set(models)
        self.states = states  # stateful model -> the variable of its state
        self.count = 0
        self.total = 0  # model calls in the region: with several, each gets its own fold_in of the step's key
        self.hoisted: list[cst.BaseStatement] = []  # `model_out, state = model(x, state, key=key)` before a use
        self.root: cst.CSTNode | None = None  # the region's statement being visited: its caller places hoisted
        self._marks: list[int] = []  # len(hoisted) when each enclosing simple statement was entered

    def visit_SimpleStatementLine(self, node) -> None:
        self._marks.append(len(self.hoisted))

    def leave_SimpleStatementLine(self, original, updated):
        """A statement nested in a loop or branch gets what it hoisted right before it, in the same block."""
        mark = self._marks.pop()
        if original is self.root or len(self.hoisted) == mark:
            return updated
        mine, self.hoisted = self.hoisted[mark:], self.hoisted[:mark]
        return cst.FlattenSentinel([*mine, updated])

    def leave_Subscript(self, original: cst.Subscript, updated: cst.Subscript):
        """`model(x, state)[0]` inside an expression: in the step, the new state must be kept."""
        value = updated.value
        model = dotted(value.func) if type(value) is cst.Call else None
        if model in self.states and _has_state_arg(value, self.states[model]) and code_of(updated).endswith("[0]"):
            base = model.replace(".", "_")
            tmp = f"{base}_out" if not self.hoisted else f"{base}_out{len(self.hoisted) + 1}"
            self.hoisted.append(_stmt(f"{tmp}, {self.states[model]} = {code_of(value)}"))
            return cst.Name(tmp)
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        model = dotted(original.func)
        if model not in self.models:
            return updated
        self.count += 1
        key = "key" if self.total <= 1 else f"jax.random.fold_in(key, {self.count})"
        state = self.states.get(model)
        extra = f", {state}" if state is not None and not _has_state_arg(updated, state) else ""
        args = ", ".join([code_of(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for a in updated.args])
        return cst.parse_expression(f"{model}({args}{extra}, key={key})")

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign):
        model = dotted(updated.value.func) if type(updated.value) is cst.Call else None
        if model in self.states and len(updated.targets) == 1:
            state = self.states[model]
            target = updated.targets[0].target
            if type(target) is cst.Tuple and dotted(target.elements[-1].value) == state:
                return updated
            if type(target) is cst.Tuple and not target.lpar:
                target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            pair = cst.Tuple([cst.Element(target), cst.Element(cst.Name(state))], lpar=[], rpar=[])
            return updated.with_changes(targets=[cst.AssignTarget(pair)])
        return updated


class _ReturnThreader(Transformer):
    def __init__(self, threaded: str) -> None:
        self.threaded = threaded

    def visit_FunctionDef(self, node) -> bool:
        return False

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        if updated.value is None:
            return updated.with_changes(value=cst.parse_expression(self.threaded))
        value = updated.value
        if type(value) is cst.Tuple and not value.lpar:
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return updated.with_changes(value=cst.parse_expression(f"{self.threaded}, {code_of(value)}"))


# Tensor methods whose result a Python branch would read as a number (a bool, a count, a value)
TENSOR_READS = {"any", "all", "item", "sum", "mean", "max", "min", "norm", "isnan", "isinf", "isfinite", "numel",
                "nonzero", "count_nonzero", "equal", "allclose"}


def _tensor_branches(stmts, scopes) -> list:
    """The tests of `if` / `while` statements in stmts that read a tensor: a torch function's result or one of the
    TENSOR_READS methods (`if mask.any():`, `if torch.isnan(loss):`, `while err.item() > tol:`)."""
    found = []

    class V(Visitor):
        def visit_FunctionDef(self, node) -> bool:
            return False  # a nested function runs when it is called, not here

        def visit_If(self, node: cst.If) -> None:
            if _reads_tensor(node.test, scopes):
                found.append(node.test)

        def visit_While(self, node: cst.While) -> None:
            if _reads_tensor(node.test, scopes):
                found.append(node.test)

    for stmt in stmts:
        walk(stmt, V())
    return found


def _boolean_names(stmts) -> set[str]:
    """Names these statements bind to a boolean mask (the in-place pass's test: a comparison, `~m`, `a & b`,
    `x.bool()`, dtype=torch.bool, a name bound to one before), or named as one (`train_mask`)."""
    found: set[str] = set()
    for n in (n for stmt in stmts for n in find_all(stmt, cst.Assign)):
        boolean = is_mask_expr(n.value, found)
        found.update(t.target.value for t in n.targets
                     if type(t.target) is cst.Name and (boolean or "mask" in t.target.value.lower()))
    return found


def _mask_indexing(stmts, masks: set[str]) -> list:
    """The subscripts `x[m]` in stmts whose one index is a boolean mask (a name in masks, or an attribute named as
    one: `data.train_mask`); at most the first, for one report per step."""
    for stmt in stmts:
        for sub in find_all(stmt, cst.Subscript):
            index = sub.slice[0].slice if len(sub.slice) == 1 else None
            value = index.value if type(index) is cst.Index else None
            if type(value) is cst.Name and value.value in masks or (
                    type(value) is cst.Attribute and "mask" in value.attr.value.lower()):  # data.train_mask
                return [sub]
    return []


def _reads_tensor(test: cst.BaseExpression, scopes) -> bool:
    for call in _calls(test):
        func = call.func
        if (scopes.qualname(func) or "").startswith("torch."):
            return True
        if type(func) is cst.Attribute and func.attr.value in TENSOR_READS and not call.args \
                and not (type(func.value) is cst.Name and scopes.is_import(func.value.value)):
            return True
    return False


class _TrainerCallHoister(Transformer):
    """Takes trainer calls out of an expression (TrainingPass._hoist_trainer_calls), innermost first, in evaluation
    order. Not out of a lambda, comprehension, conditional expression or `and`/`or`: those may run the call
    several times or not at all, so the call is reported and left."""

    def __init__(self, owner: "TrainingPass", calls: set, taken: set[str]) -> None:
        super().__init__()
        self.owner, self.calls, self.taken = owner, calls, taken
        self.pre: list[cst.SimpleStatementLine] = []
        self.guarded = 0  # inside a lambda, comprehension, conditional expression or boolean operation

    def on_visit(self, node) -> bool:
        if isinstance(node, _GUARDS):
            self.guarded += 1
        return super().on_visit(node)

    def on_leave(self, original, updated):
        if isinstance(original, _GUARDS):
            self.guarded -= 1
        if original not in self.calls or type(updated) is not cst.Call:
            return super().on_leave(original, updated)
        name = dotted(original.func)
        if self.guarded:
            self.owner.report("T2J505", f"{name} is called inside a lambda, comprehension, conditional expression or "
                                        f"boolean operation: the model and optimizer state it returns are not "
                                        f"rebound; call it in a statement of its own", original)
            return updated
        callee = self.owner.facts.functions.get(name or "")
        returns = callee is not None and any(v is not None for v in return_values(callee))
        result = _fresh(f"{name.rsplit('.', 1)[-1]}_result", self.taken) if returns else None
        threaded = self.owner._trainer_call(updated, [cst.Name(result)] if result else [])
        if threaded is None:
            return updated
        self.pre.append(cst.SimpleStatementLine([threaded]))
        return cst.Name(result) if result else cst.Name("None")


_GUARDS = (cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.IfExp, cst.BooleanOperation)


def _fresh(name: str, taken: set[str]) -> str:
    fresh, k = name, 2
    while fresh in taken:
        fresh, k = f"{name}{k}" if name != "loss_fn" else f"compute_loss{'' if k == 2 else k}", k + 1
    taken.add(fresh)
    return fresh


def _parenthesized(target):
    if type(target) is cst.Tuple and not target.lpar:
        return target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return target


def _movable(stmt) -> bool:
    """A statement that may run after the step instead: a simple one, or an `if` that does not change the loop's
    course (timm's `if not math.isfinite(loss_value): sys.exit(1)`; an `if ...: continue` would skip torch's step)."""
    if type(stmt) is cst.SimpleStatementLine:
        return True
    if type(stmt) is not cst.If:
        return False
    found = []

    class V(Visitor):
        def visit_Return(self, n) -> None:
            found.append(n)

        def visit_Break(self, n) -> None:
            found.append(n)

        def visit_Continue(self, n) -> None:
            found.append(n)

        def visit_FunctionDef(self, n) -> bool:
            found.append(n)
            return False

    walk(stmt, V())
    return not found


def _split_off_unneeded(region: list, loss_expr, models: set[str], taken: set[str]) -> tuple[list, list]:
    """The region's statements the loss depends on (they go into the step), and the simple ones it does not
    (`correct += (out.argmax(1) == y).sum().item()`, a print, prefetching the next batch): those run after the
    step on the values it returns, where `.item()` and printing work. A statement stays in the step when it reads
    a trained model (after the step the model is the updated one) or when a later statement of the step reads what
    it writes. One that reads a value a later statement of the step overwrites (`D_x = output.mean().item()` before
    `output = netD(fake)`) reads a copy the step keeps of it (`output_1 = output` at its place)."""
    stay = [not _movable(s) or bool(models & set(_names([s]).loads)) for s in region]
    snapshots: list[set[str]] = [set() for _ in region]
    changed = True
    while changed:
        changed = False
        needed = set(_names([cst.SimpleStatementLine([cst.Expr(loss_expr)])]).loads)
        later_loads: set[str] = set()
        later_stores: set[str] = set()
        for i in range(len(region) - 1, -1, -1):
            n = _names([region[i]])
            stores, loads = set(n.stores), set(n.loads)
            if not stay[i] and stores & (needed | later_loads | later_stores):
                stay[i] = changed = True
            if stay[i]:
                snapshots[i] = set()
                needed |= loads
                later_loads |= loads
                later_stores |= stores
            else:
                snapshots[i] = loads & later_stores
                needed |= snapshots[i]  # the copy is taken inside the step
                later_loads |= snapshots[i]
    if all(stay):
        return region, []
    kept, moved = [], []
    for stmt, k, snap in zip(region, stay, snapshots):
        if k:
            kept.append(stmt)
            continue
        renames = {}
        for name in sorted(snap):
            copy, k = f"{name}_1", 2
            while copy in taken:
                copy, k = f"{name}_{k}", k + 1
            taken.add(copy)
            renames[name] = copy
            kept.append(_stmt(f"{copy} = {name}"))
        moved.append(transform(stmt, _Rename(renames)) if renames else stmt)
    if not kept:
        return region, []
    return kept, moved


class _Rename(Transformer):
    def __init__(self, renames: dict[str, str], stores_only: bool = False, loads_only: bool = False) -> None:
        self.renames = renames
        self.stores_only = stores_only
        self.loads_only = loads_only  # then a rename may be an expression
        self.in_target = 0

    def visit_AssignTarget(self, node) -> None:
        self.in_target += 1

    def leave_AssignTarget(self, original, updated):
        self.in_target -= 1
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name):
        if (self.stores_only and not self.in_target) or (self.loads_only and self.in_target):
            return updated
        if self.loads_only and updated.value in self.renames:
            return cst.parse_expression(self.renames[updated.value])
        return updated.with_changes(value=self.renames.get(updated.value, updated.value))

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        return updated.with_changes(attr=original.attr)


_FILLS = ("append", "extend", "insert")


def _filled_containers(before: list, region: list) -> list:
    """The `losses = []` statements before the loss region whose list the region fills (`losses.append(...)`):
    they move into the step, where the list is made and filled (a list from outside would be filled with the
    trace's values). Only when nothing between reads the name."""
    region_code = "".join(code_of(s) for s in region)
    out = []
    for k, stmt in enumerate(before):
        if not (type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1
                and type(stmt.body[0]) is cst.Assign and len(stmt.body[0].targets) == 1):
            continue
        target, value = stmt.body[0].targets[0].target, stmt.body[0].value
        if not (type(target) is cst.Name and type(value) in (cst.List, cst.Dict) and not value.elements):
            continue
        name = target.value
        if any(f"{name}.{m}(" in region_code for m in _FILLS) and name not in _names(before[k + 1:]).loads:
            out.append(stmt)
    return out


def _defined_before_use(region: list, name: str) -> bool:
    """Whether the region assigns `name` before any statement of it reads `name` (in both branches of an
    if/else, and inside a `with` block, which always runs)."""
    return _first_use(region, name) == "store"


def _first_use(stmts: list, name: str) -> str | None:
    """"load" when `name` may be read before it is assigned, "store" when it is surely assigned first."""
    for stmt in stmts:
        if type(stmt) is cst.With and type(stmt.body) is cst.IndentedBlock:
            if any(name in _names([cst.SimpleStatementLine([cst.Expr(i.item)])]).loads for i in stmt.items):
                return "load"
            found = _first_use(list(stmt.body.body), name)
        elif type(stmt) is cst.If and type(stmt.body) is cst.IndentedBlock:
            if name in _names([cst.SimpleStatementLine([cst.Expr(stmt.test)])]).loads:
                return "load"
            branches = [_first_use(list(stmt.body.body), name), _else_first_use(stmt.orelse, name)]
            found = "load" if "load" in branches else "store" if branches == ["store", "store"] else None
        elif type(stmt) is cst.For and name in _names([cst.SimpleStatementLine([cst.AugAssign(
                stmt.target, cst.AddAssign(), cst.Integer("0"))])]).stores \
                and name not in _names([cst.SimpleStatementLine([cst.Expr(stmt.iter)])]).loads:
            found = "store"  # the loop's own variable: its body reads what the loop assigned
        elif type(stmt) in (cst.For, cst.While) and type(stmt.body) is cst.IndentedBlock:
            header = stmt.iter if type(stmt) is cst.For else stmt.test
            if name in _names([cst.SimpleStatementLine([cst.Expr(header)])]).loads:
                return "load"
            # a name the body assigns before reading it is the body's own (a rollout's `logits`); it is not read
            # from outside the loop (one read after a loop that never ran is torch's NameError too)
            inner = [_first_use(list(stmt.body.body), name), _else_first_use(stmt.orelse, name)]
            found = "load" if "load" in inner else "store" if "store" in inner else None
        else:
            n = _names([stmt])
            found = "load" if name in n.loads else "store" if name in n.stores else None
            if found == "store" and type(stmt) in (cst.For, cst.While):
                found = None  # the loop may not run
        if found is not None:
            return found
    return None


def _else_first_use(orelse, name: str) -> str | None:
    if orelse is None:
        return None
    if type(orelse) is cst.If:
        return _first_use([orelse], name)
    return _first_use(list(orelse.body.body), name) if type(orelse.body) is cst.IndentedBlock else None
