"""`torch2jax review`: a file's translation as diff hunks, each with the notes that explain it, and the merge of the
hunks a reviewer accepted.

Notes are the translation's diagnostics and change notes (Translation.changes). A note belongs to the hunk whose
changed input lines hold its line. A hunk left without one (lines a rewrite inserted away from its statement, a
rewrite that changed lines of a statement after the line its note names) takes the notes that name a function or
class it adds, for imports only the imports note, or else the notes of the innermost statement around it that has
some (found with `ast`: the translator never imports torch or jax, and the standard library is enough here); only when
none of these exists does it get a T2J011 note saying that nothing explains it. Notes on lines no hunk changed are kept apart
(FileReview.other_notes): a manual item can leave its line unchanged.
"""
from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field

from torch2jax import diagnostics
from torch2jax.diagnostics import Diagnostic
from torch2jax.result import Translation

CONTEXT = 2  # unchanged lines shown around a hunk
SPLIT = 2  # changes this many unchanged lines apart are separate hunks: small hunks are separate decisions
MARKER = "# torch2jax: rejected in review, still torch"


@dataclass
class Hunk:
    ops: list[tuple]  # difflib opcodes (tag, i1, i2, j1, j2), 0-based in the whole files, context included
    notes: list[Diagnostic] = field(default_factory=list)

    @property
    def old_range(self) -> tuple[int, int]:
        return self.ops[0][1], self.ops[-1][2]

    @property
    def new_range(self) -> tuple[int, int]:
        return self.ops[0][3], self.ops[-1][4]

    @property
    def needs_human(self) -> bool:
        return any(n.safety in ("manual", "unsafe") for n in self.notes)

    def header(self) -> str:
        (i1, i2), (j1, j2) = self.old_range, self.new_range
        # unified-diff convention: an empty range names the line before it
        return f"@@ -{i1 + 1 if i2 > i1 else i1},{i2 - i1} +{j1 + 1 if j2 > j1 else j1},{j2 - j1} @@"

    def changed_lines(self) -> set[int]:
        """1-based input lines the hunk replaces; an insertion counts the lines on both sides of it."""
        lines = set()
        for tag, i1, i2, _, _ in self.ops:
            if tag in ("replace", "delete"):
                lines.update(range(i1 + 1, i2 + 1))
            elif tag == "insert":
                lines.update({i1, i1 + 1} - {0})
        return lines

    def diff_lines(self, old: list[str], new: list[str]) -> list[str]:
        """The hunk's body as unified-diff lines (' ', '-', '+' prefixes), without line endings."""
        out = []
        for tag, i1, i2, j1, j2 in self.ops:
            if tag == "equal":
                out += [" " + line for line in old[i1:i2]]
            else:
                out += ["-" + line for line in old[i1:i2]] + ["+" + line for line in new[j1:j2]]
        return [line.rstrip("\r\n") for line in out]


@dataclass
class FileReview:
    path: str
    before: str
    translation: Translation
    hunks: list[Hunk]
    other_notes: list[Diagnostic]  # notes on lines that no hunk changed
    open_manual: list[Diagnostic]  # manual items whose marker comment is not in the input yet

    @property
    def after(self) -> str:
        return self.translation.code

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def failed(self) -> bool:
        return self.translation.failed

    def lines(self) -> tuple[list[str], list[str]]:
        return self.before.splitlines(keepends=True), self.after.splitlines(keepends=True)

    @property
    def check_failed(self) -> bool:
        """What `review --check` rejects: the translation would change the file, or a manual item is still open."""
        return self.changed or bool(self.open_manual)


def title(code: str) -> str:
    info = diagnostics.code_table().get(code)
    return info.title if info else "unknown code"


def todo(note: Diagnostic) -> str:
    """What a note leaves to the reviewer, by its safety."""
    if note.safety == "manual":
        return f"left for a human: rewrite it by hand (torch2jax explain {note.code})"
    if note.safety == "unsafe":
        return "check: this may compute something different from torch here"
    return ""


def review_source(before: str, translation: Translation, path: str) -> FileReview:
    old, new = before.splitlines(keepends=True), translation.code.splitlines(keepends=True)
    ops = difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
    hunks = [Hunk(group) for group in _split(ops)]
    statements = _statement_spans(before)
    notes = list(translation.diagnostics) + list(translation.changes)
    owned = _assign(hunks, notes)
    for hunk in hunks:
        if not hunk.notes:
            hunk.notes = (_naming_notes(hunk, old, new, notes)
                          or _enclosing_notes(hunk, notes, statements, translation.filename))
        hunk.notes.sort(key=lambda n: (n.line, n.column))
    other = [n for n in translation.diagnostics if id(n) not in owned]
    open_manual = [d for d in translation.diagnostics
                   if d.safety == "manual" and not _marked(d, before.splitlines(), statements)]
    return FileReview(path, before, translation, hunks, other, open_manual)


def _split(ops: list[tuple]) -> list[list[tuple]]:
    """difflib's opcodes as hunks: changes fewer than SPLIT unchanged lines apart stay together; each hunk gets up to
    CONTEXT lines of context, never more than half of the unchanged run it shares with its neighbour."""
    groups: list[list[tuple]] = []
    for k, op in enumerate(ops):
        if op[0] == "equal":
            continue
        gap = ops[k - 1] if k > 0 and ops[k - 1][0] == "equal" else None
        if groups and gap is not None and gap[2] - gap[1] < SPLIT and groups[-1][-1][2] == gap[1]:
            groups[-1] += [gap, op]
        elif groups and gap is None:
            groups[-1].append(op)
        else:
            groups.append([op])
    for n, group in enumerate(groups):
        i1, j1, i2, j2 = group[0][1], group[0][3], group[-1][2], group[-1][4]
        start = groups[n - 1][-1][2] if n else 0  # the unchanged run before the hunk starts here
        end = groups[n + 1][0][1] if n + 1 < len(groups) else _old_len(ops)
        before = min(CONTEXT, (i1 - start) - (i1 - start) // 2 if n else i1 - start)
        after = min(CONTEXT, (end - i2) // 2 if n + 1 < len(groups) else end - i2)
        if before:
            group.insert(0, ("equal", i1 - before, i1, j1 - before, j1))
        if after:
            group.append(("equal", i2, i2 + after, j2, j2 + after))
    return groups


def _old_len(ops: list[tuple]) -> int:
    return ops[-1][2] if ops else 0


def _assign(hunks: list[Hunk], notes: list[Diagnostic]) -> set[int]:
    """Give each note to the hunk that changed its line; the ids of the notes given."""
    by_line: dict[int, Hunk] = {}
    for hunk in hunks:
        for line in hunk.changed_lines():
            by_line.setdefault(line, hunk)
    owned = set()
    for note in notes:
        hunk = by_line.get(note.line)
        if hunk is not None:
            hunk.notes.append(note)
            owned.add(id(note))
    return owned


@dataclass(frozen=True)
class _Span:
    first: int
    last: int
    header_last: int  # a compound statement's marker comment goes on its header, which ends here


def _statement_spans(source: str) -> list[_Span]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt):
            body = getattr(node, "body", None)
            header_last = body[0].lineno - 1 if isinstance(body, list) and body else node.end_lineno
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            spans.append(_Span(first, node.end_lineno, max(header_last, node.lineno)))
    return sorted(spans, key=lambda s: s.last - s.first)


def _naming_notes(hunk: Hunk, old: list[str], new: list[str], notes: list[Diagnostic]) -> list[Diagnostic]:
    """Notes for a hunk far from the line its rule names: the notes that name a function or class the hunk adds
    (a training step inserted before the function whose loop it came from), or, for a hunk of imports only, the
    imports note."""
    added = [new[j] for tag, _, _, j1, j2 in hunk.ops if tag != "equal" for j in range(j1, j2)]
    removed = [old[i] for tag, i1, i2, _, _ in hunk.ops if tag != "equal" for i in range(i1, i2)]
    defined = re.findall(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)", "".join(added), re.M)
    named = [n for n in notes if any(re.search(rf"\b{d}\b", n.message) for d in defined)]
    if named:
        return named
    if any(line.strip() for line in added + removed) and all(
            line.lstrip().startswith(("import ", "from ")) for line in added + removed if line.strip()):
        return [n for n in notes if n.code == "T2J010"]
    return []


def _enclosing_notes(hunk: Hunk, notes: list[Diagnostic], statements: list[_Span], filename: str) -> list[Diagnostic]:
    """The notes of the innermost statement around the hunk's changes that has any, nearest to the change first."""
    anchors = sorted(hunk.changed_lines())
    for span in statements:  # innermost first
        if not any(span.first <= a <= span.last for a in anchors):
            continue
        inside = [n for n in notes if span.first <= n.line <= span.last]
        if inside:
            nearest = min(min(abs(n.line - a) for a in anchors) for n in inside)
            return [n for n in inside if min(abs(n.line - a) for a in anchors) == nearest]
    line = anchors[0] if anchors else 1
    return [diagnostics.make("T2J011", "no rule left a note for this change: read it before accepting it",
                             line, 0, filename)]


def _marked(d: Diagnostic, lines: list[str], statements: list[_Span]) -> bool:
    """Whether the input already carries the translator's marker comment for d (on d's statement)."""
    span = next((s for s in statements if s.first <= d.line <= s.last), None)
    first, last = (d.line, d.line) if span is None else (span.first, max(span.header_last, d.line))
    tag = f"torch2jax: {d.code}"
    return any(tag in line for line in lines[first - 1:last])


def merge(review: FileReview, accepted: list[bool | None]) -> str:
    """The input with the accepted hunks translated. A rejected hunk (False) keeps the torch code under a marker
    comment naming the notes it rejected; an undecided one (None, or past the end of `accepted`) is left as it was."""
    old, new = review.lines()
    statements = _statement_spans(review.before)
    out, pos = [], 0
    for n, hunk in enumerate(review.hunks):
        choice = accepted[n] if n < len(accepted) else None
        marked = False
        for tag, i1, i2, j1, j2 in hunk.ops:
            out += old[pos:i1]
            if tag == "equal" or choice is not True:
                if tag != "equal" and choice is False and i2 > i1 and not marked:
                    # above the statement the first rejected line belongs to, when that starts inside the hunk (so
                    # what precedes it in `out` is the input's): a comment line is legal there, not inside a
                    # backslash continuation or a string
                    start = next((s.first - 1 for s in statements if s.first <= i1 + 1 <= s.last), i1)
                    start = start if hunk.old_range[0] <= start <= i1 else i1
                    out.insert(len(out) - (i1 - start), _marker_line(old[start], hunk))
                    marked = True
                out += old[i1:i2]
            else:
                out += new[j1:j2]
            pos = i2
    out += old[pos:]
    return "".join(out)


def _marker_line(line: str, hunk: Hunk) -> str:
    """A comment line indented like the torch line below it, naming the codes of the notes rejected."""
    body = line.rstrip("\r\n")
    ending = line[len(body):] or "\n"
    indent = body[:len(body) - len(body.lstrip())]
    codes = ", ".join(dict.fromkeys(n.code for n in hunk.notes))
    return f"{indent}{MARKER} ({codes}){ending}" if codes else f"{indent}{MARKER}{ending}"
