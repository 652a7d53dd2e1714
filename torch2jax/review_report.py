"""The review's file formats: JSON (for tools), a tf_upgrade_v2-style text report, a side-by-side HTML page."""
from __future__ import annotations

import html
import json
from dataclasses import asdict

from torch2jax.diagnostics import Diagnostic
from torch2jax.review import FileReview, title, todo


def summary(reviews: list[FileReview]) -> dict:
    diags = [d for r in reviews for d in r.translation.diagnostics]
    return {
        "files": len(reviews),
        "changed": sum(r.changed for r in reviews),
        "failed": sum(r.failed for r in reviews),
        "hunks": sum(len(r.hunks) for r in reviews),
        "hunks_needing_a_human": sum(h.needs_human for r in reviews for h in r.hunks),
        "manual": sum(d.safety == "manual" for d in diags),
        "open_manual": sum(len(r.open_manual) for r in reviews),
        "unsafe": sum(d.safety == "unsafe" for d in diags),
        "check_failed": sum(r.check_failed for r in reviews),
    }


def summary_line(s: dict) -> str:
    return (f"{_n(s['files'], 'file')}, {s['changed']} changed, {_n(s['hunks'], 'hunk')} "
            f"({s['hunks_needing_a_human']} to check), {_n(s['manual'], 'manual item')} "
            f"({s['open_manual']} not marked yet), {_n(s['unsafe'], 'unsafe rewrite')}")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def note_dict(d: Diagnostic) -> dict:
    out = asdict(d)
    out.pop("filename", None)
    return out | {"title": title(d.code), "todo": todo(d)}


def to_json(reviews: list[FileReview]) -> str:
    files = []
    for r in reviews:
        old, new = r.lines()
        files.append({
            "path": r.path,
            "changed": r.changed,
            "failed": r.failed,
            "check_failed": r.check_failed,
            "hunks": [{
                "header": h.header(),
                "old_start": h.old_range[0] + 1, "old_lines": h.old_range[1] - h.old_range[0],
                "new_start": h.new_range[0] + 1, "new_lines": h.new_range[1] - h.new_range[0],
                "needs_human": h.needs_human,
                "lines": h.diff_lines(old, new),
                "notes": [note_dict(n) for n in h.notes],
            } for h in r.hunks],
            "other_notes": [note_dict(d) for d in r.other_notes],
            "open_manual": [note_dict(d) for d in r.open_manual],
        })
    return json.dumps({"files": files, "summary": summary(reviews)}, indent=2)


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
    lines += ["", summary_line(summary(reviews))]
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:22px 0 6px;font-family:monospace}
table.diff{border-collapse:collapse;width:100%;table-layout:fixed;margin-bottom:8px}
table.diff td{vertical-align:top;font-family:monospace;font-size:12px;white-space:pre-wrap;
  overflow-wrap:anywhere;padding:0 6px}
td.no{width:34px;color:#999;text-align:right;user-select:none;background:#fafafa}
th{text-align:left;background:#eee;font-size:13px;padding:3px 6px}
.del{background:#ffe4e4}.add{background:#ddf7dd}.empty{background:#f4f4f4}
tr.head td{background:#eef3fb;color:#346;font-family:monospace;padding:3px 6px;border-top:2px solid #bcd}
tr.notes td{font-family:system-ui,sans-serif;white-space:normal;padding:4px 8px;background:#fffbe8}
.note{margin:2px 0;font-size:12.5px} .code{font-family:monospace;font-weight:bold}
.tag{display:inline-block;border-radius:3px;padding:0 5px;font-size:11px;color:#fff;margin:0 4px}
.tag.safe{background:#2a7d2a}.tag.unsafe{background:#c07000}.tag.manual{background:#b00020}
.todo{color:#a03000;font-style:italic} .summary{color:#555} ul.human{font-size:13px}
"""


def report_html(reviews: list[FileReview]) -> str:
    """A side-by-side page: each hunk's notes, then torch on the left and JAX on the right, line by line."""
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>torch2jax review</title>",
           f"<style>{_CSS}</style></head><body><h1>torch2jax review</h1>",
           f"<p class='summary'>{html.escape(summary_line(summary(reviews)))}</p>"]
    human = [(r, d) for r in reviews for d in r.translation.diagnostics if d.safety in ("manual", "unsafe")]
    if human:
        out.append("<p><b>Needs a human:</b></p><ul class='human'>")
        out += [f"<li><span class='code'>{html.escape(r.path)}:{d.line}</span> {_note_html(d)}</li>"
                for r, d in human]
        out.append("</ul>")
    for r in reviews:
        out.append(f"<h2>{html.escape(r.path)}</h2>")
        if r.failed:
            out.append("<p>not translated: " + "; ".join(html.escape(d.message) for d in r.translation.diagnostics)
                       + "</p>")
            continue
        if not r.hunks:
            out.append("<p class='summary'>unchanged</p>")
            continue
        out.append("<table class='diff'><colgroup><col style='width:40px'><col><col style='width:40px'><col>"
                   "</colgroup><tr><th></th><th>torch</th><th></th><th>JAX</th></tr>")
        old, new = r.before.splitlines(), r.after.splitlines()
        for h in r.hunks:
            out.append(f"<tr class='head'><td colspan='4'>{html.escape(h.header())}</td></tr>")
            out.append("<tr class='notes'><td colspan='4'>"
                       + "".join(f"<div class='note'>{_note_html(n)}</div>" for n in h.notes) + "</td></tr>")
            out += _rows(h.ops, old, new)
        out.append("</table>")
        if r.other_notes:
            out.append("<p><b>Notes on unchanged lines:</b></p>"
                       + "".join(f"<div class='note'>{_note_html(n)}</div>" for n in r.other_notes))
    out.append("</body></html>")
    return "\n".join(out)


def _note_html(n: Diagnostic) -> str:
    text = (f"<span class='code'>{n.code}</span><span class='tag {n.safety}'>{n.safety}</span>"
            f"<b>{html.escape(title(n.code))}</b> (line {n.line}): {html.escape(n.message)}")
    return text + (f" <span class='todo'>{html.escape(todo(n))}</span>" if todo(n) else "")


def _rows(ops: list[tuple], old: list[str], new: list[str]) -> list[str]:
    """Table rows pairing the torch and JAX lines of each opcode; the shorter side is padded."""
    rows = []
    for tag, i1, i2, j1, j2 in ops:
        for k in range(max(i2 - i1, j2 - j1)):
            left = _cell(i1 + k, old, i2, "" if tag == "equal" else "del")
            right = _cell(j1 + k, new, j2, "" if tag == "equal" else "add")
            rows.append(f"<tr>{left}{right}</tr>")
    return rows


def _cell(index: int, lines: list[str], end: int, cls: str) -> str:
    if index >= end:
        return "<td class='no empty'></td><td class='empty'></td>"
    return (f"<td class='no'>{index + 1}</td>"
            f"<td class='{cls}'>{html.escape(lines[index]) or '&nbsp;'}</td>")
