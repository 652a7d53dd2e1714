"""Data-parallel scripts (DistributedDataParallel, torchrun / mp.spawn) -> one JAX program over a device mesh.

    mp.spawn(train, args=(ws,), nprocs=ws)          ->  train(jax.process_index(), ws)
    dist.init_process_group("gloo", ...)            ->  mesh = jax.sharding.Mesh(jax.devices(), ("data",))
    sampler = DistributedSampler(ds, ws, rank)      ->  sampler = t2j.parallel.DistributedSampler(ds, ws, rank)
    loader = DataLoader(ds, 8, sampler=sampler)     ->  loader = t2j.parallel.DataLoader(ds, 8, sampler=sampler,
                                                                                         mesh=mesh)
    ddp = DDP(model, device_ids=[rank])             ->  model = t2j.parallel.replicate(model, mesh)  (ddp -> model)
    dist.all_reduce(loss); loss /= ws               ->  (removed: the loss of the global batch is that mean)
    dist.barrier() / destroy_process_group()        ->  (removed)

The loader yields global batches (every rank's batch of a step, in rank order) sharded along "data"; the
parameters and optimizer state are replicated; the training pass's jitted step is unchanged and XLA inserts the
gradient all-reduce. A value computed from a global batch already is the reduction DDP's collectives compute
across ranks (a sum of per-rank sums, the mean of equal-sized per-rank means), so collectives on such values are
removed; one on a value that differs by rank in another way (computed from `rank` itself) would need
`jax.shard_map` with t2j.parallel.all_reduce (psum), and the diagnostic says so.

Runs first among the rewrites (after grad mode): wrapper aliases are resolved before the training facts are
re-collected, so the training pass sees the one model that DDP wrapped.
"""
from __future__ import annotations

import libcst as cst

from torch2jax.transform.base import Pass, add_marker, marker_text
from torch2jax.transform.codegen import code_of
from torch2jax.transform.names import dotted
from torch2jax.transform.reduction_kind import MEAN, NEUTRAL, SUM, KindFinder
from torch2jax.transform.transforms import _arg, _effects, _Rename, _stmt
from torch2jax.transform.walk import Visitor, transform, walk

DDP = {"torch.nn.parallel.DistributedDataParallel", "torch.nn.parallel.distributed.DistributedDataParallel",
       "torch.nn.DataParallel", "torch.nn.parallel.DataParallel", "torch.nn.parallel.data_parallel.DataParallel"}
FSDP = {"torch.distributed.fsdp.FullyShardedDataParallel",
        "torch.distributed.fsdp.fully_sharded_data_parallel.FullyShardedDataParallel"}
FULLY_SHARD = {"torch.distributed.fsdp.fully_shard", "torch.distributed._composable.fsdp.fully_shard"}
SYNC_BN = {"torch.nn.SyncBatchNorm.convert_sync_batchnorm"}
TENSOR_PARALLEL = {"torch.distributed.tensor.parallel.parallelize_module"}
INIT = {"torch.distributed.init_process_group"}
REMOVED = {"torch.distributed.destroy_process_group", "torch.distributed.barrier", "torch.cuda.set_device",
           "torch.distributed.monitored_barrier"}
SPAWN = {"torch.multiprocessing.spawn", "torch.multiprocessing.start_processes"}
REDUCE = {"torch.distributed.all_reduce", "torch.distributed.reduce"}
BROADCAST = {"torch.distributed.broadcast", "torch.distributed.broadcast_object_list"}
GATHER = {"torch.distributed.all_gather"}
GATHER_INTO = {"torch.distributed.all_gather_into_tensor", "torch.distributed.reduce_scatter_tensor"}
DATALOADERS = {"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"}
SAMPLERS = {"torch.utils.data.distributed.DistributedSampler", "torch.utils.data.DistributedSampler"}
RANK_ENV = {"RANK": "jax.process_index()", "LOCAL_RANK": "jax.process_index()", "WORLD_SIZE": "jax.device_count()",
            "LOCAL_WORLD_SIZE": "jax.local_device_count()"}
LAUNCH_ENV = {"MASTER_ADDR", "MASTER_PORT"}


def _env_key(node) -> str | None:
    """`os.environ["RANK"]` / `os.environ.get("RANK", ...)` / `os.getenv("RANK")` -> "RANK"."""
    if type(node) is cst.Subscript and dotted(node.value) == "os.environ" and len(node.slice) == 1:
        index = node.slice[0].slice
        if type(index) is cst.Index and type(index.value) is cst.SimpleString:
            return index.value.evaluated_value
    if type(node) is cst.Call and dotted(node.func) in ("os.environ.get", "os.getenv") and node.args \
            and type(node.args[0].value) is cst.SimpleString:
        return node.args[0].value.evaluated_value
    return None


class ParallelPass(Pass):
    # a file that uses none of these names has no process group, DDP wrapper or launcher to rewrite
    TRIGGER_WORDS = frozenset({"distributed", "DataParallel", "DistributedDataParallel", "multiprocessing"})

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.functions: list[cst.FunctionDef] = []
        self.mesh_scopes: set[int] = set()  # functions (ids, None for the module) that build the mesh
        self.samplers: set[str] = set()
        self.world_names: set[str] = set()
        self.changed = False
        self.active = False
        self.module_node: cst.Module | None = None
        self.pending: list = []  # diagnostics on removed statements: a comment above the next statement

    def report_removed(self, code: str, message: str, stmt) -> None:
        """Report on a statement that is removed: its marker goes above the statement that follows."""
        pos = self.ctx.positions.get(stmt)
        line, col = (pos.start.line, pos.start.column) if pos else self.here()
        d = self.ctx.report(code, message, line, col)
        if d.safety in ("manual", "unsafe"):
            self.pending.append(d)

    def visit_Module(self, node: cst.Module) -> None:
        self.module_node = node
        self.active = True  # the source has one of TRIGGERS (Pass.applies)

        pass_ = self

        class Facts(Visitor):
            def __init__(self):
                self.fn: list = []

            def visit_FunctionDef(self, n):
                self.fn.append(n)
                pass_.ctx.scopes.push(n)

            def leave_FunctionDef(self, n):
                self.fn.pop()
                pass_.ctx.scopes.pop()

            def visit_Call(self, n: cst.Call) -> None:
                if pass_.ctx.scopes.qualname(n.func) in INIT:
                    pass_.mesh_scopes.add(id(self.fn[-1]) if self.fn else None)

            def visit_Assign(self, n: cst.Assign) -> None:
                if type(n.value) is cst.Call and pass_.ctx.scopes.qualname(n.value.func) in SAMPLERS:
                    for t in n.targets:
                        if type(t.target) is cst.Name:
                            pass_.samplers.add(t.target.value)

        walk(node, Facts())

    def visit_FunctionDef(self, node) -> None:
        self.ctx.scopes.push(node)
        self.functions.append(node)

    def leave_FunctionDef(self, original, updated):
        self.ctx.scopes.pop()
        self.functions.pop()
        return updated

    def qual(self, node) -> str | None:
        return self.ctx.scopes.qualname(node)

    def _mesh(self) -> str:
        scope = id(self.functions[-1]) if self.functions else None
        if scope in self.mesh_scopes:
            return "mesh"
        self.need("t2j")
        return "t2j.parallel.data_mesh()"

    # ----- expressions
    def leave_Subscript(self, original, updated):
        key = _env_key(original) if self.active else None
        if key in RANK_ENV:
            self.need("jax")
            return cst.parse_expression(RANK_ENV[key])
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call):
        if not self.active:
            return updated
        key = _env_key(original)
        if key in RANK_ENV:
            self.need("jax")
            self.report("T2J611", f"{key} from the launcher -> {RANK_ENV[key]}: one process drives every device",
                        original)
            return cst.parse_expression(RANK_ENV[key])
        qual = self.qual(original.func)
        if qual in DATALOADERS:
            sampler = _arg(original, 3, "sampler")
            distributed = (type(sampler) is cst.Name and sampler.value in self.samplers) or (
                type(sampler) is cst.Call and self.qual(sampler.func) in SAMPLERS)
            if distributed:
                self.need("t2j")
                args = list(updated.args)
                comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                args[-1] = args[-1].with_changes(comma=comma)
                args.append(cst.Arg(cst.parse_expression(self._mesh()), keyword=cst.Name("mesh"),
                                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
                self.report("T2J612", "DataLoader over a DistributedSampler -> t2j.parallel.DataLoader: each batch "
                                      "is the global batch (every rank's batch of that step, in rank order), "
                                      "sharded over the mesh's 'data' axis", original)
                return updated.with_changes(func=cst.parse_expression("t2j.parallel.DataLoader"), args=args)
        if qual in SPAWN:
            fn = _arg(original, 0, "fn")
            extra = _arg(original, 1, "args")
            if fn is not None:
                rest = ""
                if type(extra) is cst.Tuple:
                    rest = "".join(", " + code_of(e.value) for e in extra.elements)
                elif extra is not None:
                    rest = f", *{code_of(extra)}"
                self.need("jax")
                self.report("T2J611", "mp.spawn -> one call: one JAX process drives every device (multi-host: run "
                                      "it once per host after jax.distributed.initialize())", original)
                return cst.parse_expression(f"{code_of(fn)}(jax.process_index(){rest})")
        return updated

    def leave_With(self, original: cst.With, updated: cst.With):
        """`with ddp_model.no_sync():` (gradient accumulation without the all-reduce) and `with ddp_model.join():`
        -> the body: one program over the global batch has no per-rank gradients to hold back or ranks to join."""
        item = original.items[0].item if len(original.items) == 1 else None
        if not (self.active and type(item) is cst.Call and type(item.func) is cst.Attribute
                and item.func.attr.value in ("no_sync", "join") and original.items[0].asname is None
                and type(updated.body) is cst.IndentedBlock):
            return updated
        self.report("T2J612", f"DDP's {item.func.attr.value}() context removed: the step on the global batch "
                              "reduces the gradients where XLA needs them", original)
        stmts = list(updated.body.body)
        stmts[0] = stmts[0].with_changes(leading_lines=list(updated.leading_lines) + list(stmts[0].leading_lines))
        return cst.FlattenSentinel(stmts)

    # ----- statements
    def leave_IndentedBlock(self, original, updated):
        if not self.active:
            return updated
        body = self._rewrite_block(list(updated.body))
        return updated.with_changes(body=body or [_stmt("pass")])

    def leave_Module(self, original, updated):
        if not self.active:
            return updated
        module = updated.with_changes(body=self._rewrite_block(list(updated.body)))
        if self.changed:
            from torch2jax.transform.training_facts import collect_training_facts

            self.ctx.training_facts = collect_training_facts(module, self.ctx.scopes, self.ctx.module_facts)
        return module

    def _call_of(self, stmt) -> tuple[cst.Call | None, cst.BaseExpression | None]:
        """(call, assignment target) of `call(...)` or `target = call(...)` statements."""
        if not (type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1):
            return None, None
        small = stmt.body[0]
        if type(small) is cst.Expr and type(small.value) is cst.Call:
            return small.value, None
        if type(small) is cst.Assign and len(small.targets) == 1 and type(small.value) is cst.Call:
            return small.value, small.targets[0].target
        return None, None

    def _rewrite_block(self, body: list) -> list:
        out: list = []
        i = 0
        while i < len(body):
            stmt = body[i]
            call, target = self._call_of(stmt)
            qual = self.qual(call.func) if call is not None else None
            # markers of what _statement reports belong to this statement, not to the enclosing one's line
            self._markers.append([])
            replacement, rest = self._statement(stmt, call, target, qual, body[i + 1:])
            self.pending += self._markers.pop()
            if replacement is None:
                out.append(add_marker(stmt, self.pending) if self.pending else stmt)
                self.pending = []
                i += 1
                continue
            notes, self.pending = self.pending, []
            if notes and not replacement and not rest:
                for d in notes:
                    self._markers[-1].append(d)
                notes = []
            comments = [cst.EmptyLine(indent=True, comment=cst.Comment("# " + marker_text(d))) for d in notes]
            lead = list(stmt.leading_lines) + comments  # what was above the statement goes above what follows
            if lead and replacement:
                replacement[0] = self._carry(replacement[0].with_changes(
                    leading_lines=lead + list(replacement[0].leading_lines)), replacement[0])
            elif lead and rest:
                rest = [self._carry(rest[0].with_changes(leading_lines=lead + list(rest[0].leading_lines)),
                                    rest[0])] + rest[1:]
            body = out + replacement + rest
            out = out + replacement
            i = len(out)
        return out

    def _left(self, stmt, code: str, message: str, rest):
        """The statement kept as it is, with the diagnostic's marker on its own line (a block rewrite reports
        from the enclosing statement, whose line would otherwise get the marker)."""
        pos = self.ctx.positions.get(stmt)
        line, col = (pos.start.line, pos.start.column) if pos else self.here()
        d = self.ctx.report(code, message, line, col)
        return [self._carry(add_marker(stmt, [d]), stmt)], rest

    def _carry(self, new, old):
        """`new` (built from `old`) reports at `old`'s source position."""
        pos = self.ctx.positions.get(old)
        if pos is not None:
            self.ctx.positions.setdefault(new, pos)
        return new

    def _statement(self, stmt, call, target, qual, rest):
        """(replacement statements, the rest of the block) or (None, None) to keep the statement."""
        small = stmt.body[0] if type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1 else None
        if type(small) is cst.Assign and len(small.targets) == 1 and _env_key(small.targets[0].target) in \
                LAUNCH_ENV:
            self.report("T2J611", "launcher rendezvous address removed: one process drives every device", stmt)
            return [], rest
        if call is None:
            return None, None
        if qual in INIT:
            self.need("jax")
            self.report("T2J610", "init_process_group -> a device mesh: one process drives every device "
                                  "(multi-host: call jax.distributed.initialize() before building it)", stmt)
            return [_stmt('mesh = jax.sharding.Mesh(jax.devices(), ("data",))')], rest
        if qual in REMOVED:
            self.report("T2J610", f"{qual} removed: one process drives every device", stmt)
            return [], rest
        if qual in SYNC_BN | DDP | FSDP and type(target) is cst.Name:
            wrapped = _arg(call, 0, "module") or _arg(call, 0, "model")
            if wrapped is None:
                return None, None
            built = []
            if type(wrapped) is not cst.Name:
                # model = DDP(Net().to(rank)): the model is built first under the wrapper's name (the training
                # pass then sees a Net), and wrapped next
                built = [self._carry(_stmt(f"{target.value} = {code_of(wrapped)}"), stmt)]
                wrapped = target
            model, alias = wrapped.value, target.value
            if alias != model:
                rest = [transform(transform(s, _Rename(f"{alias}.module", model, self.ctx.positions)),
                                  _Rename(alias, model, self.ctx.positions)) for s in rest]
                self.changed = True
            rest = [transform(s, _Rename(f"{model}.module", model, self.ctx.positions)) for s in rest]
            if qual in SYNC_BN:
                self.report("T2J612", "convert_sync_batchnorm removed: BatchNorm statistics of the global batch "
                                      "are SyncBatchNorm's", stmt)
                return built, rest
            self.need("t2j")
            if qual in FSDP:
                self.report("T2J613", "FSDP -> t2j.parallel.fsdp: each large parameter is split over the 'data' "
                                      "axis along its largest divisible dimension (ZeRO-3); its auto_wrap_policy, "
                                      "mixed_precision, cpu_offload and sharding_strategy are not translated: "
                                      "decide which layers to shard and how", stmt)
                return built + [_stmt(f"{model} = t2j.parallel.fsdp({model}, {self._mesh()})")], rest
            self.report("T2J612", f"{qual.rsplit('.', 1)[1]} -> parameters replicated over the mesh; the jitted step "
                                  "on sharded global batches needs no wrapper (XLA all-reduces the gradients)" +
                        (f"; `{alias}` is `{model}` from here on" if alias != model else ""), stmt)
            return built + [_stmt(f"{model} = t2j.parallel.replicate({model}, {self._mesh()})")], rest
        if qual in FULLY_SHARD and target is None:
            model = _arg(call, 0, "module")
            if type(model) is cst.Name:
                self.need("t2j")
                self.report("T2J613", "fully_shard -> t2j.parallel.fsdp (ZeRO-3 over 'data'): decide which layers "
                                      "to shard and how", stmt)
                return [_stmt(f"{model.value} = t2j.parallel.fsdp({model.value}, {self._mesh()})")], rest
        if qual in TENSOR_PARALLEL:
            return self._left(stmt, "T2J614", "tensor parallelism: a parallelize plan has no automatic translation; "
                                              "build a mesh with a 'model' axis and place each weight with "
                                              "NamedSharding (e.g. P('model', None) for a column-parallel Linear's "
                                              "weight in torch's (out, in) layout), then jit", rest)
        if qual in REDUCE and target is None:
            return self._all_reduce(stmt, call, rest, op_position=2 if qual.endswith(".reduce") else 1)
        if qual in BROADCAST and target is None:
            self.report_removed("T2J615", f"{qual.rsplit('.', 1)[1]} removed: one program holds one value", stmt)
            return [], rest
        if qual in GATHER and target is None:
            out, value = _arg(call, 0, "tensor_list"), _arg(call, 1, "tensor")
            if type(out) is cst.Name and value is not None:
                self.need("t2j")
                self.report("T2J616", "all_gather -> the global value split in rank order (right for per-sample "
                                      "tensors of a global batch; a per-rank statistic has no global counterpart)",
                            stmt)
                return [_stmt(f"{out.value} = t2j.parallel.split_global({code_of(value)}, len({out.value}))")], rest
        if qual in GATHER_INTO and target is None:
            out, value = _arg(call, 0, "output_tensor" if "gather" in qual else "output"), _arg(call, 1, "input_tensor"
                                                                                                if "gather" in qual
                                                                                                else "input")
            if type(out) is cst.Name and value is not None:
                self.report("T2J615", f"{qual.rsplit('.', 1)[1]} -> the global value itself", stmt)
                return [_stmt(f"{out.value} = {code_of(value)}")], rest
        return None, None

    def _all_reduce(self, stmt, call, rest, op_position=1):
        """all_reduce / reduce of a value computed on the global batch: what it becomes depends on whether the
        value is a per-sample mean or a sum over samples (reduction_kind.py)."""
        tensor = _arg(call, 0, "tensor")
        if type(tensor) is not cst.Name:
            return self._left(stmt, "T2J617", "all_reduce of an expression: left as it is; reduce a named value "
                                              "computed on the global batch, or use jax.shard_map with "
                                              "t2j.parallel.all_reduce", rest)
        name = tensor.value
        op = code_of(_arg(call, op_position, "op") or cst.Name("SUM")).rsplit(".", 1)[-1].upper()  # reduce(t, dst, op)
        scope = self.functions[-1] if self.functions else self.module_node
        functions = {s.name.value: s for s in self.module_node.body if type(s) is cst.FunctionDef}
        kind = KindFinder(scope, self.qual, functions).name_kind(name)
        divided = bool(rest) and self._divides(rest[0], name)
        world = "jax.device_count()"
        if op == "SUM" and kind in (MEAN, NEUTRAL) and divided:
            self.report_removed("T2J615", f"all_reduce + division by the world size removed: {name} is a mean "
                                          "computed on the global batch, the mean over ranks already", stmt)
            return [], rest[1:]
        if op == "SUM" and kind in (MEAN, NEUTRAL):
            self.need("jax")
            self.report("T2J615", f"all_reduce(SUM) of a mean -> {name} * the world size: {name} is computed on the "
                                  "global batch (the mean over ranks), and torch sums the ranks' values", stmt)
            return [self._carry(_stmt(f"{name} = {name} * {world}"), stmt)], rest
        if op == "SUM" and kind == SUM or op == "AVG" and kind in (MEAN, NEUTRAL):
            self.report_removed("T2J615", f"all_reduce removed: {name} is a {kind} computed on the global batch, "
                                          f"which is already the {'sum' if op == 'SUM' else 'mean'} over ranks", stmt)
            return [], rest
        if op == "AVG" and kind == SUM:
            self.need("jax")
            self.report("T2J615", f"all_reduce(AVG) of a sum -> {name} / the world size: {name} is computed on the "
                                  "global batch (the sum over ranks)", stmt)
            return [self._carry(_stmt(f"{name} = {name} / {world}"), stmt)], rest
        what = "all_reduce + division by the world size removed" if divided else "all_reduce removed"
        self.report_removed("T2J616", f"{what}: {name} is computed on the global batch and taken to be what the {op} "
                                      f"over ranks gives; cannot tell whether it is a batch mean or a sum (check, or "
                                      "reduce it with t2j.parallel.all_reduce inside jax.shard_map)", stmt)
        return [], rest[1:] if divided else rest

    def _divides(self, stmt, name: str) -> bool:
        """`x /= world_size`, `x = x / world_size`, `x.div_(world_size)` (by a world-size name or call)."""
        if not (type(stmt) is cst.SimpleStatementLine and len(stmt.body) == 1):
            return False
        small = stmt.body[0]
        divisor = None
        if type(small) is cst.AugAssign and type(small.operator) is cst.DivideAssign \
                and dotted(small.target) == name:
            divisor = small.value
        elif type(small) is cst.Assign and len(small.targets) == 1 and dotted(small.targets[0].target) == name \
                and type(small.value) is cst.BinaryOperation and type(small.value.operator) is cst.Divide \
                and dotted(small.value.left) == name:
            divisor = small.value.right
        elif type(small) is cst.Expr and type(small.value) is cst.Call \
                and type(small.value.func) is cst.Attribute and small.value.func.attr.value in ("div_",) \
                and dotted(small.value.func.value) == name and small.value.args:
            divisor = small.value.args[0].value
        if divisor is None:
            return False
        text = code_of(divisor)
        return "world" in text.lower() or "get_world_size" in text or "nprocs" in text or "WORLD" in text \
            or _effects(divisor).loads and all("size" in n.lower() or "world" in n.lower() for n in
                                                _effects(divisor).loads)
