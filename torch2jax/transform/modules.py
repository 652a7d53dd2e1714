"""nn.Module classes -> eqx.Module classes.

Runs on torch-level code (before the ops pass, which then translates the layer constructors and calls):
- the base `nn.Module` becomes `eqx.Module`, fields are declared at class level from what `__init__` assigns
  (layers, lists of modules, arrays, buffers; configuration as static fields);
- `super().__init__()` goes, `register_buffer`/`register_parameter` become assignments, `forward` becomes
  `__call__`, `self.training` reads the `inference` field that `eqx.nn.inference_mode` flips;
- buffers are read through stop_gradient (torch never trains them);
- classes holding Equinox state (BatchNorm running statistics) take `state` and return `(out, state)`, and every
  stateful submodule call inside threads it.
Keys are not handled here: layer constructors get `key=__t2j_key__` from the layer table, and the randomness
pass threads real keys.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass
from torch2jax.transform.inplace import init_helpers
from torch2jax.transform.module_facts import ClassFacts, FieldFacts, ModuleFacts, fields_held
from torch2jax.transform.names import bound_in_function, dotted
from torch2jax.transform.ops import KEY_PLACEHOLDER, function_alias
from torch2jax.transform.walk import Visitor, transform, walk

STATE = "state"
PARAMETER_LISTS = {"self.parameters", "self.named_parameters", "self.named_buffers"}
DICT_METHODS = frozenset(dir(dict)) | {"named_children", "children", "modules", "named_modules"}


class ModulePass(Pass):
    @classmethod
    def applies(cls, source, ctx) -> bool:
        return bool(ctx.module_facts.classes)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.facts: ModuleFacts = ctx.module_facts
        self.defined: set[str] = set()  # user classes defined so far (annotations of later ones are quoted)
        self.cls: ClassFacts | None = None
        self.init_helpers: set[str] = set()  # methods only __init__ calls: the module is still being built
        self.method: str | None = None
        self.pre: list[list[cst.BaseStatement]] = []  # statements hoisted before the current statement
        self.stateful_loop_vars: dict[str, cst.BaseExpression] = {}  # loop variable -> what it iterates
        self.ifexps: list[cst.IfExp] = []  # conditional expressions around the node being rewritten
        self.iterated: set[cst.CSTNode] = set()  # what for loops and comprehensions iterate over
        self.tmp_count = 0
        self.negations: set[cst.CSTNode] = set()
        self.stateful_methods: set[str] = set()  # the class's own methods that call stateful submodules
        self.init_only: set[str] = set()  # methods only __init__ calls (they may still set fields)
        # outside a module class only a module class nested inside, or a `(not self.inference)` that _bare
        # unwraps, can be touched
        self.words = set(self.facts.classes) | {"inference"}

    def wants(self, node) -> bool:
        return self.cls is not None or not self.words.isdisjoint(self.ctx.words(node))

    # ----- classes
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if self.cls is None:
            self.cls = self.facts.classes.get(node.name.value)
            self.init_helpers = init_helpers(node, self.ctx.word_cache) \
                if self.cls is not None and self._ties(self.cls) else set()
            self.stateful_methods = self.cls.stateful_methods if self.cls is not None else set()
            self.init_only = init_helpers(node, self.ctx.word_cache) if self.cls is not None else set()

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        cls = self.facts.classes.get(original.name.value)
        self.defined.add(original.name.value)
        if cls is None or self.cls is not cls:
            return updated
        self.cls = None
        self.note("T2J200", f"nn.Module class {cls.name} -> eqx.Module: fields declared, forward -> __call__"
                  + (", state threaded (BatchNorm statistics)" if cls.stateful else ""), original)
        bases = []
        for b in updated.bases:
            if self.ctx.scopes.qualname(b.value) in ("torch.nn.Module", "torch.nn.modules.module.Module"):
                b = b.with_changes(value=cst.parse_expression("eqx.Module"))
                self.need("eqx")
            bases.append(b)
        decls = self._declarations(cls)
        body = list(updated.body.body)
        at = 1 if body and _is_docstring(body[0]) else 0
        if at < len(body) and decls:
            decls[0] = decls[0].with_changes(leading_lines=body[at].leading_lines)
            body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        if cls.uses_training and not self._base_uses_training(cls) and not any(
                type(b.value) is cst.Name and b.value.value in self.facts.classes for b in updated.bases) \
                and not any(type(s) is cst.FunctionDef and s.name.value == "__init__" for s in body):
            # no __init__ (torch's Module.__init__ ran): one that starts in training mode, as torch's modules do
            init = cst.parse_statement("def __init__(self):\n    self.inference = False\n")
            if at < len(body):
                body[at] = body[at].with_changes(leading_lines=[cst.EmptyLine(indent=False)])
            body.insert(at, init.with_changes(leading_lines=[cst.EmptyLine(indent=False)]))
        body = body[:at] + decls + body[at:]
        return updated.with_changes(bases=bases, body=updated.body.with_changes(body=body))

    def _declarations(self, cls: ClassFacts) -> list[cst.BaseStatement]:
        lines = []
        inherited = {f for b in cls.bases if b in self.facts.classes for f in self.facts.classes[b].fields}
        for f in cls.fields.values():
            if f.name not in inherited:
                lines.append(f"{f.name}: {self._annotation(f)}")
        if cls.uses_training and "inference" not in inherited and not self._base_uses_training(cls):
            lines.append("inference: bool")
        if cls.ties and not any(self._ties(self.facts.classes[b]) for b in cls.bases if b in self.facts.classes):
            lines.append("_t2j_ties: tuple = eqx.field(static=True, default=())  # tied weights (t2j.tie_in_init)")
        buffers = [f.name for f in cls.fields.values() if f.kind == "buffer"]
        nonpersistent = [f.name for f in cls.fields.values() if f.kind == "buffer" and not f.persistent]
        if nonpersistent:
            lines.append(f"_t2j_nonpersistent = {_tuple_src(nonpersistent)}")
        if buffers:
            lines.append(f"_t2j_buffers = {_tuple_src(buffers)}  # not trained: torch's buffers")
        return [cst.parse_statement(line + "\n") for line in lines]

    def _base_takes_key(self, cls: ClassFacts) -> bool:
        """Whether a user base class's __init__ builds something random (layers, parameters): it takes a key."""
        for b in cls.bases:
            base = self.facts.classes.get(b)
            if base is not None and (any(f.kind in ("module", "list", "dict", "array") for f in base.fields.values())
                                     or self._base_takes_key(base)):
                return True
        return False

    def _base_uses_training(self, cls: ClassFacts) -> bool:
        return any(self.facts.classes[b].uses_training or self._base_uses_training(self.facts.classes[b])
                   for b in cls.bases if b in self.facts.classes)

    def _annotation(self, f: FieldFacts) -> str:
        default = " = None" if f.conditional else ""
        if f.kind == "static":
            extra = ", default=None" if f.conditional else ""
            return f"{f.type_name or 'object'} = eqx.field(static=True{extra})"
        if f.kind == "module":
            return ("object" if f.dynamic and f.type_name is None else self._type_name(f.type_name)) + default
        if f.kind in ("array", "buffer"):
            self.need("jax")
            return "jax.Array" + default
        return {"list": "list", "dict": "dict"}.get(f.kind, "object") + default

    def _type_name(self, type_name: str | None) -> str:
        if type_name in self.facts.classes:
            return type_name if type_name in self.defined else repr(type_name)
        record = self.ctx.tables.records.get(type_name or "")
        target = function_alias(record) if record is not None else None
        if target is None:
            return "eqx.Module"
        self.need(target.split(".")[0])
        return target

    # ----- methods
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.ctx.scopes.push(node)
        if self.cls is not None and self.method is None:
            self.method = node.name.value
            self.tmp_count = 0

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.ctx.scopes.pop()
        if self.cls is None or self.method != original.name.value:
            return updated
        self.method = None
        if original.name.value == "__init__":
            return self._tie_init(self._init(updated))
        if original.name.value not in self.init_only and _takes_self(original):
            updated = self._field_writes(original, updated)
        if self._ties(self.cls) and _takes_self(original) and original.name.value not in self.init_helpers:
            updated = _prepend(updated, "self = t2j.tied(self)  # tied weights: one parameter in every place\n")
            self.need("t2j")
        if original.name.value == "forward":
            updated = updated.with_changes(name=cst.Name("__call__"))
        if original.name.value in ("forward", "__call__"):
            if self.cls.stateful:
                updated = _add_state_param(updated, optional=self.cls.state_optional)
            updated = self._add_key_param(updated)
        elif original.name.value in self.stateful_methods:
            updated = _add_state_param(updated)
            self.report("T2J210", f"{self.cls.name}.{original.name.value}() calls stateful submodules: it takes the "
                                  "state and returns (out, state)", original)
        return updated

    def _field_writes(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        """`self.f = v` in a method other than __init__: an Equinox module is frozen once built. A field that
        __init__ sets to None and the method fills (word_language_model's `self.src_mask` cache) becomes a local of
        the method, computed at every call (T2J212); any other field written there is an error (T2J303)."""
        written: dict[str, cst.CSTNode] = {}

        class V(Visitor):
            def visit_FunctionDef(self, node) -> bool:
                return node is original

            def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
                t = node.target
                if type(t) is cst.Attribute and type(t.value) is cst.Name and t.value.value == "self":
                    written.setdefault(t.attr.value, node)

        walk(original, V())
        cached = []
        for name, node in written.items():
            f = self._field(name)
            if f is not None and f.kind == "none":
                cached.append(name)
            else:
                self.report("T2J303", f"self.{name} is set inside {original.name.value}: Equinox modules are frozen "
                                      "after __init__; keep it as state (eqx.nn.State) or return the new value to "
                                      "the caller", node)
        if not cached:
            return updated
        self.report("T2J212", f"self.{', self.'.join(cached)} (None after __init__, set here) became a local of "
                              f"{original.name.value}, computed at every call: an Equinox module is frozen", original)
        bound = bound_in_function(original)
        local = {name: name if name not in bound else f"{name}_cache" for name in cached}
        updated = transform(updated, _SelfToLocal(local))
        for name in reversed(cached):
            updated = _prepend(updated, f"{local[name]} = self.{name}  # a cache: None until this call sets it\n")
        return updated

    def _add_key_param(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        """Every module call takes `*, key=None`, as Equinox's layers do: callers can always pass a key."""
        p = fn.params
        names = {q.name.value for q in (*p.params, *p.kwonly_params, *p.posonly_params)}
        if "key" in names:
            self.report("T2J203", f"{self.cls.name}.{fn.name.value} has a parameter named `key`: it cannot also "
                                  f"take the PRNG key that dropout and other random layers need", fn)
            return fn
        new = cst.Param(cst.Name("key"), default=cst.Name("None"),
                        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        params = list(p.params)
        if params and not p.kwonly_params and p.star_arg is cst.MaybeSentinel.DEFAULT and p.star_kwarg is None:
            params[-1] = params[-1].with_changes(comma=comma)
        kwonly = list(p.kwonly_params)
        if kwonly:
            kwonly[-1] = kwonly[-1].with_changes(comma=comma)
        star = p.star_arg if p.star_arg is not cst.MaybeSentinel.DEFAULT else cst.ParamStar(comma=comma)
        if type(star) is cst.Param and star.comma is cst.MaybeSentinel.DEFAULT:
            star = star.with_changes(comma=comma)
        if p.star_kwarg is not None:
            new = new.with_changes(comma=comma)
        return fn.with_changes(params=p.with_changes(params=params, star_arg=star, kwonly_params=kwonly + [new]))

    def _init(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        body = [s for s in fn.body.body if not self._is_super_init(s)]
        if len(body) != len(fn.body.body) and self.cls.bases:
            body = list(fn.body.body)  # a user base class: its __init__ sets its own fields; keep the call
        if self.cls.uses_training and not self._base_uses_training(self.cls):
            at = 1 if body and _is_docstring(body[0]) else 0
            body.insert(at, cst.parse_statement("self.inference = False\n"))
        if not body:
            body = [cst.parse_statement("pass\n")]
        return fn.with_changes(body=fn.body.with_changes(body=body))

    def _ties(self, cls: ClassFacts) -> bool:
        return cls.ties or any(self._ties(self.facts.classes[b]) for b in cls.bases if b in self.facts.classes)

    def _tie_init(self, fn: cst.FunctionDef) -> cst.FunctionDef:
        """A class that ties weights settles them at the end of __init__ (runtime/ties.py); a field that holds
        other submodule fields (`self.net = nn.Sequential(self.conv1, ...)`) ties their parameters once built."""
        if not self.cls.ties:
            return fn
        self.need("t2j")
        body = []
        for stmt in fn.body.body:
            body.append(stmt)
            shared = _assigned_field(stmt)
            if shared in self.cls.shares and any(f != shared for f in fields_held(stmt.body[0].value)):
                self.report("T2J215", f"self.{shared} holds submodules that are also fields: torch shares them, the "
                                      "translation ties their parameters (t2j.share_in_init)", stmt)
                body.append(cst.parse_statement(f"t2j.share_in_init(self, {shared!r})\n"))
        at = len(body) - 1 if body and type(body[-1]) is cst.SimpleStatementLine \
            and type(body[-1].body[0]) is cst.Return else len(body)
        body.insert(at, cst.parse_statement("t2j.finish_ties_in_init(self)\n"))
        return fn.with_changes(body=fn.body.with_changes(body=body))

    def _is_super_init(self, stmt: cst.BaseStatement) -> bool:
        if type(stmt) is not cst.SimpleStatementLine or len(stmt.body) != 1:
            return False
        expr = stmt.body[0]
        if type(expr) is not cst.Expr or type(expr.value) is not cst.Call:
            return False
        func = expr.value.func
        if type(func) is cst.Attribute and func.attr.value == "__init__":
            inner = func.value
            if type(inner) is cst.Call and dotted(inner.func) == "super":
                return True
            return self.ctx.scopes.qualname(inner) in ("torch.nn.Module",)
        return False

    # ----- statements inside methods
    def visit_SimpleStatementLine(self, node) -> None:
        self.pre.append([])

    def leave_SimpleStatementLine(self, original, updated):
        pre = self.pre.pop()
        if self.cls is None or self.method is None:
            return updated
        if self.method == "__init__":
            updated = self._register_calls(updated)
        if pre:
            pre[0] = pre[0].with_changes(leading_lines=updated.leading_lines)
            return cst.FlattenSentinel(pre + [updated.with_changes(leading_lines=[])])
        return updated

    def _register_calls(self, stmt: cst.SimpleStatementLine) -> cst.SimpleStatementLine:
        """self.register_buffer("name", value[, persistent]) -> self.name = value."""
        small = stmt.body[0] if len(stmt.body) == 1 else None
        if not (type(small) is cst.Expr and type(small.value) is cst.Call):
            return stmt
        call = small.value
        if not (type(call.func) is cst.Attribute and dotted(call.func.value) == "self"
                and call.func.attr.value in ("register_buffer", "register_parameter")
                and len(call.args) >= 2 and type(call.args[0].value) is cst.SimpleString):
            return stmt
        name = call.args[0].value.evaluated_value
        target = cst.AssignTarget(cst.Attribute(cst.Name("self"), cst.Name(name)))
        return stmt.with_changes(body=[cst.Assign([target], call.args[1].value)])

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self.iterated.add(node.iter)

    def visit_For(self, node: cst.For) -> None:
        self.iterated.add(node.iter)
        if self.cls is not None and type(node.target) is cst.Name and self._is_stateful_callee(node.iter):
            self.stateful_loop_vars[node.target.value] = node.iter

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign):
        """`x = self.bn(x)` in a stateful __call__ -> `x, state = self.bn(x, state=state)`."""
        if self._in_stateful_call() and len(updated.targets) == 1 and type(updated.value) is cst.Name \
                and self.pre and self.pre[-1] and self._is_hoisted_tmp(updated.value.value):
            hoisted = self.pre[-1].pop()
            assign = hoisted.body[0]
            target = updated.targets[0].target
            if type(target) is cst.Tuple and not target.lpar:
                target = target.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            new_target = cst.Tuple([cst.Element(target), cst.Element(cst.Name(STATE))], lpar=[], rpar=[])
            return assign.with_changes(targets=[cst.AssignTarget(new_target)])
        return updated

    def _is_hoisted_tmp(self, name: str) -> bool:
        stmt = self.pre[-1][-1]
        tgt = stmt.body[0].targets[0].target
        return type(tgt) is cst.Tuple and dotted(tgt.elements[0].value) == name

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.cls is None or self.method is None:
            return updated
        if dotted(original.func) == "self.forward":
            return updated.with_changes(func=cst.Name("self"))
        if dotted(original.func) == "next" and original.args and _self_listing(original.args[0].value):
            # `next(self.parameters())` (the dtype/device of the first parameter): the runtime's list, iterated
            self.need("t2j")
            listing = original.args[0].value.func.attr.value
            return updated.with_changes(args=[updated.args[0].with_changes(
                value=cst.parse_expression(f"iter(t2j.{listing}(self))"))])
        if original in self.iterated and _self_listing(original):
            # `for p in self.parameters()`, `{n: p for n, p in self.named_parameters()}`: the runtime lists
            # them in torch's order and with torch's names
            self.need("t2j")
            return cst.parse_expression(f"t2j.{original.func.attr.value}(self)")
        path = dotted(original.func) or ""
        field = self._field(path[5:]) if path.startswith("self.") and path.count(".") == 1 else None
        if field is not None and field.type_name == "torch.nn.MultiheadAttention":
            # torch's `key=` argument is `key_` in the runtime layer: `key` is the PRNG key there
            updated = updated.with_changes(args=[
                a.with_changes(keyword=cst.Name("key_")) if a.keyword is not None and a.keyword.value == "key"
                else a for a in updated.args])
        func = updated.func
        if type(func) is cst.Attribute and type(func.value) is cst.Call and dotted(func.value.func) == "super":
            if func.attr.value == "forward":
                return updated.with_changes(func=func.with_changes(attr=cst.Name("__call__")))
            if func.attr.value == "__init__" and self.method == "__init__" and self._base_takes_key(self.cls):
                return _append_key(updated)
        if self._in_stateful_call() and self._is_stateful_callee(original.func) and self.pre:
            self.tmp_count += 1
            base = (dotted(original.func) or "sub").replace("self.", "").replace(".", "_")
            tmp = f"{base}_out" if self.tmp_count == 1 else f"{base}_out{self.tmp_count}"
            args = list(updated.args)
            func = updated.func
            if self._is_dynamic_callee(original.func):
                # a submodule of unknown kind: the runtime threads state only if it holds any
                self.need("t2j")
                args = [cst.Arg(func, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))] + args
                func = cst.parse_expression("t2j.nn.call_with_state")
            if args:
                args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            args.append(cst.Arg(cst.Name(STATE), keyword=cst.Name(STATE),
                                equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
            call = updated.with_changes(func=func, args=args)
            target = cst.Tuple([cst.Element(cst.Name(tmp)), cst.Element(cst.Name(STATE))], lpar=[], rpar=[])
            value = call
            for branch_of in reversed(self.ifexps):  # `self.down(x) if self.down is not None else x`: still guarded
                in_body = _contains(branch_of.body, original)
                if not in_body and not _contains(branch_of.orelse, original):
                    continue  # in the test: evaluated either way
                skipped = cst.Tuple([cst.Element(cst.Name("None")), cst.Element(cst.Name(STATE))])
                value = cst.IfExp(test=branch_of.test, body=value if in_body else skipped,
                                  orelse=skipped if in_body else value,
                                  lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            if value is not call:
                value = value.with_changes(lpar=[], rpar=[])
            self.pre[-1].append(cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(target)], value)]))
            return cst.Name(tmp)
        return updated

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        if self._in_stateful_call() and updated.value is not None:
            value = updated.value
            if type(value) is cst.Tuple and not value.lpar:
                value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            if self.cls.state_optional:
                # (out, state) when called with a state, out when not: the runtime layers' convention
                self.need("t2j")
                value = value.with_changes(lpar=[], rpar=[]) if type(value) is cst.Tuple else value
                return updated.with_changes(value=cst.Call(cst.parse_expression("t2j.nn.with_state"), [
                    cst.Arg(value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))),
                    cst.Arg(cst.Name(STATE))]))
            pair = cst.Tuple([cst.Element(value), cst.Element(cst.Name(STATE))], lpar=[], rpar=[])
            return updated.with_changes(value=pair)
        return updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if self.cls is not None and self.method is not None and self._dict_member(original):
            # ModuleDict's attribute access (self.transformer.wte): the translation holds a plain dict
            return cst.Subscript(updated.value, [cst.SubscriptElement(cst.Index(
                cst.SimpleString(repr(original.attr.value))))], lpar=updated.lpar, rpar=updated.rpar)
        if self.cls is None or self.method in (None, "__init__") or dotted(original.value) != "self":
            return updated
        name = original.attr.value
        if name == "training":
            node = cst.UnaryOperation(cst.Not(), cst.parse_expression("self.inference"))
            self.negations.add(node)
            return node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        field = self._field(name)
        if field is not None and field.kind == "buffer":
            self.need("jax")
            return cst.parse_expression(f"jax.lax.stop_gradient(self.{name})")
        return updated

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(value=self._bare(updated.value))

    def leave_If(self, original: cst.If, updated: cst.If) -> cst.If:
        return updated.with_changes(test=self._bare(updated.test))

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self.ifexps.append(node)

    def leave_IfExp(self, original: cst.IfExp, updated: cst.IfExp) -> cst.IfExp:
        self.ifexps.pop()
        return updated.with_changes(test=self._bare(updated.test))

    def _bare(self, value: cst.BaseExpression) -> cst.BaseExpression:
        """`(not self.inference)` needs no parentheses as a whole argument or condition."""
        if type(value) is cst.UnaryOperation and value.lpar and any(
                value.deep_equals(n.with_changes(lpar=value.lpar, rpar=value.rpar)) for n in self.negations):
            return value.with_changes(lpar=[], rpar=[])
        return value

    # ----- helpers
    def _field(self, name: str) -> FieldFacts | None:
        cls = self.cls
        while cls is not None:
            if name in cls.fields:
                return cls.fields[name]
            cls = next((self.facts.classes[b] for b in cls.bases if b in self.facts.classes), None)
        return None

    def _in_stateful_call(self) -> bool:
        return self.cls is not None and self.cls.stateful and (self.method in ("forward", "__call__")
                                                               or self.method in self.stateful_methods)

    def _is_stateful_callee(self, func: cst.BaseExpression) -> bool:
        if type(func) is cst.Subscript or self._dict_member(func):
            func = func.value
        path = dotted(func)
        if path is None:
            return False
        if path in self.stateful_loop_vars:
            return True
        if path.startswith("self.") and path.count(".") == 1:
            if path[5:] in self.stateful_methods:
                return True
            field = self._field(path[5:])
            return field is not None and (field.stateful or field.dynamic)
        return False

    def _dict_member(self, node: cst.BaseExpression) -> bool:
        """`self.d.name` with d a ModuleDict field, and name one of its keys, not a dict method."""
        if not (type(node) is cst.Attribute and type(node.value) is cst.Attribute
                and dotted(node.value.value) == "self") or node.attr.value in DICT_METHODS:
            return False
        field = self._field(node.value.attr.value)
        return field is not None and field.kind == "dict"

    def _is_dynamic_callee(self, func: cst.BaseExpression) -> bool:
        """A submodule that may or may not hold state (decided by the constructor's arguments)."""
        if self._dict_member(func):
            return True  # one named member of a ModuleDict that holds state somewhere: that member may not
        if type(func) is cst.Subscript:
            func = func.value
        path = dotted(func) or ""
        if path in self.stateful_loop_vars:
            return self._is_dynamic_callee(self.stateful_loop_vars[path])
        field = self._field(path[5:]) if path.startswith("self.") and path.count(".") == 1 else None
        if field is None:
            return False
        held = [self.facts.classes[c] for c in (field.type_name, *field.holds) if c in self.facts.classes]
        return field.dynamic or (bool(held) and not field.own_stateful
                                 and all(c.state_optional or not c.stateful for c in held))


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    if tree is node:
        return True
    return any(_contains(child, node) for child in tree.children)


def _append_key(call: cst.Call) -> cst.Call:
    if any(a.keyword is not None and a.keyword.value == "key" for a in call.args):
        return call
    args = list(call.args)
    if args:
        args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    args.append(cst.Arg(cst.Name(KEY_PLACEHOLDER), keyword=cst.Name("key"),
                        equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
    return call.with_changes(args=args)


def _add_state_param(fn: cst.FunctionDef, optional: bool = False) -> cst.FunctionDef:
    """`def __call__(self, x, mask=None)` -> `def __call__(self, x, state, mask=None)` (`state=None` when the
    class holds state only if its constructor's arguments say so)."""
    params = list(fn.params.params)
    at = next((i for i, p in enumerate(params) if p.default is not None), len(params))
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if at > 0:
        params[at - 1] = params[at - 1].with_changes(comma=comma)
    new = cst.Param(cst.Name(STATE), comma=comma if at < len(params) or fn.params.star_arg
                    is not cst.MaybeSentinel.DEFAULT or fn.params.kwonly_params else cst.MaybeSentinel.DEFAULT)
    if optional:
        new = new.with_changes(default=cst.Name("None"),
                               equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
    params.insert(at, new)
    return fn.with_changes(params=fn.params.with_changes(params=params))


def _is_docstring(stmt) -> bool:
    return type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 and type(stmt.body[0]) is cst.Expr \
        and type(stmt.body[0].value) in (cst.SimpleString, cst.ConcatenatedString)


def _tuple_src(names: list[str]) -> str:
    return "(" + ", ".join(repr(n) for n in names) + ("," if len(names) == 1 else "") + ")"


def _assigned_field(stmt: cst.BaseStatement) -> str | None:
    """`self.f = ...` as a whole statement: f."""
    if type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 and type(stmt.body[0]) is cst.Assign:
        targets = stmt.body[0].targets
        if len(targets) == 1 and type(targets[0].target) is cst.Attribute \
                and dotted(targets[0].target.value) == "self":
            return targets[0].target.attr.value
    return None


def _takes_self(fn: cst.FunctionDef) -> bool:
    """A method of the instance: its first parameter is self, and it is no staticmethod or classmethod."""
    if any(dotted(d.decorator) in ("staticmethod", "classmethod") for d in fn.decorators):
        return False
    params = [*fn.params.posonly_params, *fn.params.params]
    return bool(params) and params[0].name.value == "self"


class _SelfToLocal(cst.CSTTransformer):
    """`self.name` -> its local for the given names (not inside nested functions or classes)."""

    def __init__(self, names: dict[str, str]) -> None:
        super().__init__()
        self.names = names  # field -> local
        self.depth = 0

    def visit_FunctionDef(self, node) -> bool:
        self.depth += 1
        return self.depth == 1

    def leave_FunctionDef(self, original, updated):
        self.depth -= 1
        return updated

    def visit_ClassDef(self, node) -> bool:
        return False

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        if type(updated.value) is cst.Name and updated.value.value == "self" and updated.attr.value in self.names:
            return cst.Name(self.names[updated.attr.value], lpar=updated.lpar, rpar=updated.rpar)
        return updated


def _prepend(fn: cst.FunctionDef, line: str) -> cst.FunctionDef:
    """`line` as the first statement of `fn` (after its docstring)."""
    if type(fn.body) is not cst.IndentedBlock:
        return fn
    body = list(fn.body.body)
    at = 1 if body and _is_docstring(body[0]) else 0
    body.insert(at, cst.parse_statement(line))
    return fn.with_changes(body=fn.body.with_changes(body=body))


def _self_listing(node: cst.BaseExpression) -> bool:
    """`self.parameters()` / `self.named_parameters()` / `self.named_buffers()`, without arguments."""
    return type(node) is cst.Call and dotted(node.func) in PARAMETER_LISTS and not node.args
