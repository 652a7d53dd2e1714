"""translate(): parse, collect facts, run the rewrite passes, fix imports, return code and diagnostics."""
from __future__ import annotations

import gc

import libcst as cst

from torch2jax import diagnostics
from torch2jax.diagnostics import Diagnostic
from torch2jax.mappings import load_tables
from torch2jax.result import Translation
from torch2jax.transform.base import FileContext, file_suppressed, may_hold_skip_markers, suppressed
from torch2jax.transform.branched_step import BranchedStepPass
from torch2jax.transform.codegen import code_of, generate
from torch2jax.transform.freezing import FreezingPass
from torch2jax.transform.grad_mode import GradModePass
from torch2jax.transform.host_random import HostRandomPass
from torch2jax.transform.imports import fix_imports
from torch2jax.transform.inplace import InplacePass
from torch2jax.transform.module_apply import ModuleApplyPass
from torch2jax.transform.module_facts import collect_module_facts
from torch2jax.transform.module_updates import ModuleUpdatesPass
from torch2jax.transform.modules import ModulePass
from torch2jax.transform.names import ImportCollector, Scopes, module_level_rebinds
from torch2jax.transform.ops import OpsPass
from torch2jax.transform.parallel import ParallelPass
from torch2jax.transform.parsing import parse_module
from torch2jax.transform.positions import Positions, positions as source_positions
from torch2jax.transform.randomness import RandomnessPass
from torch2jax.transform.training import TrainingPass
from torch2jax.transform.training_facts import collect_training_facts
from torch2jax.transform.transforms import AmpPass, TransformsPass
from torch2jax.transform.walk import Transformer, iter_statements, transform

# ParallelPass and TransformsPass run on torch-level code before the in-place and training passes: they resolve
# wrapper aliases (DDP(model), torch.compile(model)) and re-collect the training facts, turn GradScaler calls into
# plain backward()/step(), and lift imperative autograd (requires_grad_ ... autograd.grad / backward) into
# functions before the in-place pass drops requires_grad_ and the training pass looks for backward() + step().
# AmpPass runs after the training pass, so the autocast blocks it rewrites are already inside the jitted step and
# the model calls there already take their keys; the module and ops passes then translate what it produced.
# HostRandomPass runs after the training pass, which jits the step: it reports Python/NumPy draws in traced code.
# BranchedStepPass puts the loss computation before a branch that holds the step (`if training:`) into both arms,
# for the training pass to find the loss and its step in one block.
# FreezingPass drops requires_grad settings on models no optimizer trains before the in-place and module-updates
# passes would rewrite them.
PASSES = (GradModePass, BranchedStepPass, ParallelPass, TransformsPass, FreezingPass, InplacePass, ModuleUpdatesPass,
          TrainingPass, HostRandomPass, AmpPass, ModulePass, ModuleApplyPass, OpsPass, RandomnessPass)


def _python_syntax_error(source: str) -> tuple[int, int, str] | None:
    """CPython's own message for a syntax error, which users know better than the parser's token list."""
    import ast

    try:
        ast.parse(source)
    except SyntaxError as e:
        return e.lineno or 1, max((e.offset or 1) - 1, 0), e.msg
    except (ValueError, MemoryError, RecursionError):
        return None
    return None


def _mentions_torch(source: str) -> bool:
    return "torch" in source


def translate(source: str, filename: str = "<string>") -> Translation:
    """Translate one file's PyTorch source to JAX source. Never raises on bad input: see .diagnostics."""
    # A translation allocates a great many small objects (libcst rebuilds trees) and frees them by reference
    # counting; the cycle collector's passes over that growing heap cost about a third of the time and find
    # little. It is paused for the call, and left as it was after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _translate(source, filename)
    finally:
        if collecting:
            gc.enable()


def _translate(source: str, filename: str) -> Translation:
    try:
        module = parse_module(source)
    except cst.ParserSyntaxError as e:
        line, col, message = _python_syntax_error(source) or (e.raw_line, e.raw_column, e.message)
        d = diagnostics.make("T2J001", f"syntax error: {message}", line, col, filename)
        return Translation(source, [d], filename, failed=True)
    except Exception as e:  # libcst's validation (b"" "" concatenated), recursion on deep nesting...
        line, col, message = _python_syntax_error(source) or (1, 0, f"{type(e).__name__}: {e}")
        d = diagnostics.make("T2J001", f"syntax error: {message}", line, col, filename)
        return Translation(source, [d], filename, failed=True)
    if not _mentions_torch(source) or file_suppressed(source):
        return Translation(source, [], filename)
    try:
        return _translate_module(module, source, filename)
    except Exception as e:  # an internal error must never lose or corrupt the user's file
        d = diagnostics.make("T2J002", f"internal error: {type(e).__name__}: {e}", 1, 0, filename)
        return Translation(source, [d], filename, failed=True)


def _translate_module(module: cst.Module, source: str, filename: str) -> Translation:
    original_body = list(module.body)
    default_indent, default_newline = module.default_indent, module.default_newline
    collector = ImportCollector().scan(module)
    aliases = collector.aliases
    if not any(q == "torch" or q.startswith("torch.") for q in aliases.values()) and not any(
            m == "torch" or m.startswith("torch.") for m in collector.star_modules):
        return Translation(source, [], filename)  # no torch import: nothing here is torch's (and output stays fixed)
    positions = source_positions(module, layout=False)
    rebound = module_level_rebinds(module, aliases)
    for name in rebound:
        del aliases[name]
    word_cache: dict = {}
    may_suppress = may_hold_skip_markers(source)
    ctx = FileContext(filename=filename, scopes=Scopes(aliases, rebound, positions, word_cache), tables=load_tables(),
                      positions=positions, may_suppress=may_suppress, word_cache=word_cache)
    ctx.input_words = ctx.words(module)
    ctx.module_facts = collect_module_facts(module, ctx.scopes, word_cache=ctx.word_cache)
    if TrainingPass.applies(source, ctx):  # the training pass is the one that reads them
        ctx.training_facts = collect_training_facts(module, ctx.scopes, ctx.module_facts, ctx.word_cache)
    skipped = _suppressed_statements(module, positions) if may_suppress else {}
    for pass_cls in PASSES:
        if pass_cls.applies(source, ctx):
            module = transform(module, pass_cls(ctx))
    if skipped:
        module = transform(module, _RestoreSuppressed(skipped, ctx.positions))
    before_imports = module
    module = fix_imports(module, ctx.needed_imports)
    if module is not before_imports:
        line = next((positions[s].start.line for s in original_body if _imports_torch(s) and s in positions), 1)
        ctx.changes.append(diagnostics.make("T2J010", "imports: torch imports no longer used removed, the JAX "
                                            "imports the translation uses added", line, 0, filename))
    code = generate(module, positions.statements, positions.code, default_indent, default_newline) \
        if isinstance(positions, Positions) else module.code
    diags = sorted(ctx.diagnostics, key=lambda d: (d.line, d.column, d.code))
    changes = sorted(ctx.changes, key=lambda d: (d.line, d.column, d.code))
    return Translation(code, _dedupe(diags), filename, changes=_dedupe(changes))


def _suppressed_statements(module: cst.Module, positions: dict) -> dict:
    """The `# torch2jax: skip` statements, by their (line, column) in the input (not those inside one)."""
    def skipped(stmt) -> bool:
        return suppressed(stmt) and stmt in positions

    return {(positions[stmt].start.line, positions[stmt].start.column): stmt
            for stmt in iter_statements(module, enter=lambda stmt: not skipped(stmt)) if skipped(stmt)}


class _RestoreSuppressed(Transformer):
    """After the passes: a statement rebuilt from a `# torch2jax: skip` one (a pass that rewrites whole blocks does
    not go through Pass.on_visit for each statement) is put back as it was."""

    def __init__(self, skipped: dict, positions: dict) -> None:
        super().__init__()
        self.skipped, self.positions = skipped, positions

    def _original(self, node):
        pos = self.positions.get(node)
        if pos is None or not isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            return None
        original = self.skipped.get((pos.start.line, pos.start.column))
        return original if type(original) is type(node) else None

    def on_visit(self, node) -> bool:
        return self._original(node) is None

    def on_leave(self, original, updated):
        return self._original(original) or updated


def _imports_torch(stmt) -> bool:
    code = code_of(stmt) if isinstance(stmt, cst.SimpleStatementLine) else ""
    return code.lstrip().startswith(("import torch", "from torch"))


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        k = (d.code, d.message, d.line, d.column)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out
