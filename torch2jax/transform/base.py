"""What every rewrite pass shares: the file's facts, diagnostics with source positions, and marker comments."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from torch2jax import diagnostics
from torch2jax.diagnostics import Diagnostic
from torch2jax.mappings import Tables
from torch2jax.transform.module_facts import ModuleFacts
from torch2jax.transform.names import Scopes
from torch2jax.transform.positions import carry
from torch2jax.transform.walk import Transformer, is_layout, is_node, is_statement, nodes_reaching, words

MARKER = "torch2jax:"
SKIP = re.compile(r"#.*\btorch2jax:\s*skip\b")  # `# torch2jax: skip`: leave this statement (or file) as it is


def _comment_lines(node: cst.CSTNode) -> list:
    """The comments that belong to a statement: the lines of their own above it (and above its def/class line,
    below decorators), the end of its line, the end of its header line."""
    out = [line.comment for line in getattr(node, "leading_lines", ())]
    out += [line.comment for line in getattr(node, "lines_after_decorators", ())]
    trailing = getattr(node, "trailing_whitespace", None)
    body = getattr(node, "body", None)
    if type(body) is cst.IndentedBlock:
        trailing = body.header
    elif type(body) is cst.SimpleStatementSuite:
        trailing = body.trailing_whitespace
    if type(trailing) is cst.TrailingWhitespace:
        out.append(trailing.comment)
    return [c.value for c in out if c is not None]


# What a node is to a pass's walk: the module and statements are tested (Pass.wants), blocks of statements always
# entered, the rest (expressions, small statements, parameters, decorators) entered as Pass.EXPRESSIONS and
# Pass.expression_words say.
_LAYOUT, _MODULE, _STATEMENT, _BLOCK, _OTHER = range(1, 6)  # (none is 0: `table.get(tp) or _kind(tp)`)
_BLOCKS = (cst.IndentedBlock, cst.SimpleStatementSuite, cst.Else, cst.ExceptHandler, cst.ExceptStarHandler,
           cst.Finally, cst.MatchCase)
_KINDS: dict[type, int] = {}


def _kind(tp: type) -> int:
    kind = _KINDS.get(tp)
    if kind is None:
        kind = _KINDS[tp] = (_LAYOUT if is_layout(tp) else _MODULE if tp is cst.Module else
                             _STATEMENT if is_statement(tp) else _BLOCK if issubclass(tp, _BLOCKS) else _OTHER)
    return kind


def suppressed(node: cst.CSTNode) -> bool:
    """A statement the user marked `# torch2jax: skip`: no pass rewrites it."""
    if not isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
        return False
    return any(SKIP.match(c) for c in _comment_lines(node))


def may_hold_skip_markers(source: str) -> bool:
    """False when no line of the source holds `# torch2jax: skip`: then no statement is suppressed (the test of
    every statement's comments is skipped). A marker inside a string counts: this errs on the side of looking."""
    return "torch2jax" in source and SKIP.search(source) is not None


def file_suppressed(source: str) -> bool:
    """`# torch2jax: skip` among the comment lines before a file's first statement leaves the file as it is."""
    for line in source.splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            return False
        if SKIP.match(text):
            return True
    return False


@dataclass
class FileContext:
    """Facts about one file, shared by the passes, and what they report."""

    filename: str
    scopes: Scopes
    tables: Tables
    positions: dict  # node -> libcst CodeRange in the input (carried over to rewritten nodes)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    changes: list[Diagnostic] = field(default_factory=list)  # exact rewrites: the notes the review mode shows
    needed_imports: set[str] = field(default_factory=set)  # short names: jnp, jax, eqx, optax, t2j
    module_facts: "ModuleFacts | None" = None  # nn.Module classes (module_facts.py), project-wide in folder runs
    training_facts: object = None  # optimizers, schedulers, models, trainer functions (training_facts.py)
    word_cache: dict = field(default_factory=dict)  # node -> its words (walk.words), shared by the passes
    may_suppress: bool = True  # False when no statement can be `# torch2jax: skip` (may_hold_skip_markers)
    input_words: frozenset | set = frozenset()  # the words of the input module (walk.words)

    def words(self, node: cst.CSTNode) -> set[str]:
        return words(node, self.word_cache)

    def report(self, code: str, message: str, line: int, column: int) -> Diagnostic:
        d = diagnostics.make(code, message, line, column, self.filename)
        self.diagnostics.append(d)
        return d


class Pass(Transformer):
    """A transformer that knows where it is in the original source and marks the statements it reports on."""

    # source text without which the pass has nothing to do: a cheap test that saves a whole tree walk
    TRIGGERS: tuple[str, ...] = ()
    # ... or identifiers (walk.words) of the input, one of which the file must use (a word in a comment or string
    # does not count)
    TRIGGER_WORDS: frozenset[str] = frozenset()

    @classmethod
    def applies(cls, source: str, ctx: "FileContext") -> bool:
        if cls.TRIGGER_WORDS and cls.TRIGGER_WORDS.isdisjoint(ctx.input_words):
            return False
        return not cls.TRIGGERS or any(word in source for word in cls.TRIGGERS)

    def wants(self, node: cst.CSTNode) -> bool:
        """Whether the pass may change or report anything in this statement (or the module): one that does not
        leaves it unvisited, which saves most of the time on files where a pass has little to do. A pass that
        answers False must be sure of it: usually a test of the statement's words (ctx.words)."""
        return True

    # False: the pass has no hook below statements (in expressions, small statements, parameters, decorators), so
    # only statements and their blocks are visited; what is below them stays as it is
    EXPRESSIONS = True
    # Names every expression-level hook of the pass starts from (the ops pass: imported names, Tensor methods): below
    # statements only the nodes with one of them inside are visited (walk.nodes_reaching). None: all of them.
    expression_words: set[str] | None = None

    def __init__(self, ctx: FileContext) -> None:
        super().__init__()
        self.ctx = ctx
        # the nodes being visited, outermost first: a report without a node of its own points at the innermost one
        # with a source position (looked up only then: most visits report nothing)
        self._visiting: list[cst.CSTNode] = []
        self._markers: list[list[Diagnostic]] = [[]]
        self._skipping: set[int] = set()  # ids of the `# torch2jax: skip` statements being left alone
        self._reaching: set[cst.CSTNode] = set()  # with expression_words: the nodes below statements to visit

    # --- positions: the innermost node whose original position is known
    def _enters(self, node: cst.CSTNode) -> bool:
        """For a node below statement level: whether the pass visits it."""
        return self.EXPRESSIONS and (self.expression_words is None or node in self._reaching)

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = _KINDS.get(type(node)) or _kind(type(node))
        if kind == _LAYOUT:
            return False  # kept as it is (see walk.is_layout)
        if kind == _OTHER and not self._enters(node):
            return False  # kept as it is
        self._visiting.append(node)
        if kind == _STATEMENT:
            self._markers.append([])
            if (self.ctx.may_suppress and suppressed(node)) or not self.wants(node):
                self._skipping.add(id(node))
                return False
            if self.expression_words is not None and self.EXPRESSIONS:
                self._reaching |= nodes_reaching(node, self.expression_words)
        elif kind == _MODULE and not self.wants(node):
            self._skipping.add(id(node))
            return False
        return self._visit_hook(node)  # Transformer.on_visit, whose layout test was made above

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        kind = _KINDS.get(type(original)) or _kind(type(original))
        if kind == _LAYOUT or (kind == _OTHER and not self._enters(original)):
            return original
        if self._skipping and id(original) in self._skipping:  # neither its children nor its leave_ method ran
            self._skipping.discard(id(original))
            self._visiting.pop()
            if type(original) is not cst.Module:
                self._markers.pop()
            return original
        result = super().on_leave(original, updated)
        self._visiting.pop()
        # a rebuilt node (one with a changed child) carries the original's position over, for later passes' reports
        if result is not original and is_node(type(result)):
            carry(self.ctx.positions, original, result)
        if kind == _STATEMENT:
            pending = self._markers.pop()
            if pending and is_statement(type(result)):
                result = add_marker(result, pending)
        return result

    def _position(self, node: cst.CSTNode | None) -> tuple[int, int]:
        """Where node is in the input; for a def or class rebuilt without its position (a method a class rewrite
        rebuilt), where its name is; else where the innermost node being visited is."""
        positions = self.ctx.positions
        pos = positions.get(node) if node is not None else None
        if pos is None and type(node) in (cst.FunctionDef, cst.ClassDef):
            pos = positions.get(node.name)
        return (pos.start.line, pos.start.column) if pos else self.here()

    def here(self) -> tuple[int, int]:
        """Where the innermost node being visited that has a source position is in the input."""
        positions = self.ctx.positions
        for node in reversed(self._visiting):
            pos = positions.get(node)
            if pos is not None:
                return pos.start.line, pos.start.column
        return 1, 0

    def report(self, code: str, message: str, node: cst.CSTNode | None = None) -> Diagnostic:
        line, col = self._position(node)
        d = self.ctx.report(code, message, line, col)
        if d.safety in ("manual", "unsafe"):
            self._markers[-1].append(d)
        return d

    def note(self, code: str, message: str, node: cst.CSTNode | None = None) -> None:
        """Record an exact rewrite (not a diagnostic): `torch2jax review` explains each change with these."""
        line, col = self._position(node)
        self.ctx.changes.append(diagnostics.make(code, message, line, col, self.ctx.filename))

    def need(self, *names: str) -> None:
        self.ctx.needed_imports.update(names)


class CarryPositions(Transformer):
    """A helper transformer inside a pass: the nodes it rebuilds keep the source positions of the originals."""

    def __init__(self, positions: dict) -> None:
        super().__init__()
        self.positions = positions

    def on_leave(self, original, updated):
        result = super().on_leave(original, updated)
        if result is not original and is_node(type(result)):
            carry(self.positions, original, result)
        return result


def marker_text(d: Diagnostic) -> str:
    return f"{MARKER} {d.code} {d.message}"


def add_marker(stmt, pending: list[Diagnostic]):
    """Append `# torch2jax: CODE message` to the statement's line (once: translating again adds nothing)."""
    if type(stmt) is cst.SimpleStatementLine:
        trailing = stmt.trailing_whitespace
    elif isinstance(getattr(stmt, "body", None), cst.IndentedBlock):
        trailing = stmt.body.header
    else:
        return stmt
    existing = trailing.comment.value if trailing.comment else ""
    texts = []
    for d in pending:
        text = marker_text(d)
        if f"{MARKER} {d.code}" not in existing and text not in texts:
            texts.append(text)
    if not texts:
        return stmt
    comment = "  # ".join(([existing] if existing else []) + texts)
    if not comment.startswith("#"):
        comment = "# " + comment
    whitespace = trailing.whitespace if existing else cst.SimpleWhitespace("  ")
    new_trailing = trailing.with_changes(comment=cst.Comment(comment), whitespace=whitespace)
    if type(stmt) is cst.SimpleStatementLine:
        return stmt.with_changes(trailing_whitespace=new_trailing)
    return stmt.with_changes(body=stmt.body.with_changes(header=new_trailing))
