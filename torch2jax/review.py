"""`torch2jax review`: the translation as diff hunks, each with the notes that explain it.

A hunk's notes are the diagnostics and change notes (Translation.changes) whose source line falls in the lines the
hunk replaces; a hunk that only inserts lines (new imports) takes the notes of the line it is inserted at.
"""
from __future__ import annotations

import difflib
import html
import json
from dataclasses import asdict, dataclass, field

from torch2jax.diagnostics import Diagnostic
from torch2jax.result import Translation

CONTEXT = 2
MARKER = "# torch2jax: rejected in review, still torch"


@dataclass
class Hunk:
    old_start: int  # 1-based first line of the input the hunk covers (context included)
    old_lines: list[str]
    new_start: int
    new_lines: list[str]
    ops: list[tuple]  # difflib opcodes (tag, i1, i2, j1, j2) inside the hunk, 0-based in the whole files
    notes: list[Diagnostic] = field(default_factory=list)

    @property
    def needs_human(self) -> bool:
        return any(n.safety in ("manual", "unsafe") for n in self.notes)

    def header(self) -> str:
        return f"@@ -{self.old_start},{len(self.old_lines)} +{self.new_start},{len(self.new_lines)} @@"

    def diff_lines(self, old: list[str], new: list[str]) -> list[str]:
        out = []
        for tag, i1, i2, j1, j2 in self.ops:
            if tag == "equal":
                out += [" " + line for line in old[i1:i2]]
            else:
                out += ["-" + line for line in old[i1:i2]] + ["+" + line for line in new[j1:j2]]
        return out


@dataclass
class FileReview:
    path: str
    before: str
    after: str
    translation: Translation
    hunks: list[Hunk]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @property
    def manual(self) -> list[Diagnostic]:
        return [d for d in self.translation.diagnostics if d.safety == "manual"]


def review_source(before: str, translation: Translation, path: str) -> FileReview:
    after = translation.code
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    notes = list(translation.diagnostics) + list(translation.changes)
    hunks = []
    for group in matcher.get_grouped_opcodes(CONTEXT):
        i1, j1 = group[0][1], group[0][3]
        i2, j2 = group[-1][2], group[-1][4]
        hunk = Hunk(i1 + 1, old[i1:i2], j1 + 1, new[j1:j2], list(group))
        hunk.notes = _notes_for(hunk, notes)
        hunks.append(hunk)
    _note_every_hunk(hunks, notes)
    return FileReview(path, before, after, translation, hunks)


def _changed_lines(hunk: Hunk) -> set[int]:
    lines = set()
    for tag, i1, i2, _, _ in hunk.ops:
        if tag in ("replace", "delete"):
            lines.update(range(i1 + 1, i2 + 1))
        elif tag == "insert":
            lines.add(i1 + 1)  # inserted before input line i1 + 1
    return lines


def _notes_for(hunk: Hunk, notes: list[Diagnostic]) -> list[Diagnostic]:
    lines = _changed_lines(hunk)
    return [n for n in notes if n.line in lines]


def _note_every_hunk(hunks: list[Hunk], notes: list[Diagnostic]) -> None:
    """A hunk whose changed lines carry no note (a statement rewritten on lines after the one a note names, a
    blank line moved with an import) takes the nearest note before it within the hunk's span."""
    for hunk in hunks:
        if hunk.notes or not notes:
            continue
        first = min(_changed_lines(hunk))
        span = range(hunk.old_start, hunk.old_start + len(hunk.old_lines) + 1)
        near = [n for n in notes if n.line in span] or [n for n in notes if n.line <= first]
        if near:
            line = max(n.line for n in near if n.line <= first) if any(n.line <= first for n in near) else \
                min(n.line for n in near)
            hunk.notes = [n for n in near if n.line == line]


# ----- output formats

def to_json(reviews: list[FileReview]) -> str:
    files = []
    for r in reviews:
        old, new = r.before.splitlines(keepends=True), r.after.splitlines(keepends=True)
        files.append({
            "path": r.path,
            "changed": r.changed,
            "hunks": [{
                "header": h.header(), "old_start": h.old_start, "old_lines": len(h.old_lines),
                "new_start": h.new_start, "new_lines": len(h.new_lines),
                "lines": [line.rstrip("\r\n") for line in h.diff_lines(old, new)],
                "notes": [_note_dict(n) for n in h.notes],
            } for h in r.hunks],
            "diagnostics": [_note_dict(d) for d in r.translation.diagnostics],
        })
    return json.dumps({"files": files, "summary": summary(reviews)}, indent=2)


def _note_dict(d: Diagnostic) -> dict:
    out = asdict(d)
    out.pop("filename", None)
    return out


def summary(reviews: list[FileReview]) -> dict:
    return {
        "files": len(reviews),
        "changed": sum(r.changed for r in reviews),
        "hunks": sum(len(r.hunks) for r in reviews),
        "manual": sum(len(r.manual) for r in reviews),
        "unsafe": sum(1 for r in reviews for d in r.translation.diagnostics if d.safety == "unsafe"),
    }


def report_text(reviews: list[FileReview]) -> str:
    """tf_upgrade_v2's report: what needs a human first, grouped by file, then every change."""
    lines = ["torch2jax review report", "=" * 23, "", "Needs a human:"]
    for r in reviews:
        items = [d for d in r.translation.diagnostics if d.safety in ("manual", "unsafe")]
        if items:
            lines.append(f"  {r.path}")
            lines += [f"    {d.line}:{d.column}: {d.code} {d.safety.upper()} {d.message}" for d in items]
    if len(lines) == 4:
        lines.append("  nothing")
    lines += ["", "Every change:"]
    for r in reviews:
        for d in sorted(list(r.translation.diagnostics) + list(r.translation.changes),
                        key=lambda d: (d.line, d.column)):
            lines.append(f"{r.path}:{d.line}:{d.column}: {d.code} {d.severity.upper()} {d.message}")
    s = summary(reviews)
    lines += ["", f"{s['files']} files, {s['changed']} changed, {s['hunks']} hunks, {s['manual']} manual items, "
                  f"{s['unsafe']} unsafe rewrites"]
    return "\n".join(lines) + "\n"


def report_html(reviews: list[FileReview]) -> str:
    """A side-by-side page: torch on the left, JAX on the right, each hunk's notes beside it."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>torch2jax review</title><style>",
             "body{font-family:sans-serif;margin:1em} table{border-collapse:collapse;width:100%;table-layout:fixed}",
             "td{vertical-align:top;font-family:monospace;font-size:12px;white-space:pre-wrap;padding:0 6px}",
             ".del{background:#fdd}.add{background:#dfd}.note{font-family:sans-serif;font-size:12px}",
             ".manual{color:#a00;font-weight:bold}.unsafe{color:#a60}.safe{color:#060} h2{font-size:15px}",
             "th{text-align:left;background:#eee} .hunk td{border-top:1px solid #ccc}",
             "</style></head><body>", "<h1>torch2jax review</h1>"]
    s = summary(reviews)
    parts.append(f"<p>{s['files']} files, {s['hunks']} hunks, {s['manual']} manual items, "
                 f"{s['unsafe']} unsafe rewrites</p>")
    for r in reviews:
        old, new = r.before.splitlines(), r.after.splitlines()
        parts.append(f"<h2>{html.escape(r.path)}</h2><table><tr><th style='width:37%'>torch</th>"
                     f"<th style='width:37%'>JAX</th><th>notes</th></tr>")
        for h in r.hunks:
            left, right = [], []
            for tag, i1, i2, j1, j2 in h.ops:
                cls = "" if tag == "equal" else " class='{}'"
                left += [f"<div{cls.format('del')}>{html.escape(x) or '&nbsp;'}</div>" for x in old[i1:i2]]
                right += [f"<div{cls.format('add')}>{html.escape(x) or '&nbsp;'}</div>" for x in new[j1:j2]]
            notes = "".join(f"<div class='note {n.safety}'>{n.code} [{n.safety}] line {n.line}: "
                            f"{html.escape(n.message)}</div>" for n in h.notes)
            parts.append(f"<tr class='hunk'><td>{''.join(left)}</td><td>{''.join(right)}</td>"
                         f"<td>{notes}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def merge(review: FileReview, accepted: list[bool]) -> str:
    """The input with the accepted hunks' translation and the rejected hunks' torch code, marked."""
    old, new = review.before.splitlines(keepends=True), review.after.splitlines(keepends=True)
    out, pos = [], 0
    for hunk, ok in zip(review.hunks, accepted):
        for tag, i1, i2, j1, j2 in hunk.ops:
            if i1 > pos:
                out += old[pos:i1]
            if tag == "equal" or not ok:
                chunk = old[i1:i2]
                if tag != "equal" and chunk:
                    chunk = [_mark(chunk[0])] + chunk[1:]
                out += chunk
            else:
                out += new[j1:j2]
            pos = i2
    out += old[pos:]
    return "".join(out)


def _mark(line: str) -> str:
    body = line.rstrip("\r\n")
    ending = line[len(body):]
    return f"{body}  {MARKER}{ending}" if MARKER not in body and body.strip() else line
