"""Diagnostics: what the translator changed inexactly, or could not translate, with a code, a line and a safety level.

The codes themselves (title, default severity and safety, explanation, before/after example) live in codes.toml
beside this file, so `torch2jax explain CODE` and the review mode read the same table.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SEVERITIES = ("error", "warning", "info")
SAFETIES = ("safe", "unsafe", "manual")


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    line: int
    column: int
    severity: str = "warning"  # error | warning | info
    safety: str = "safe"  # safe: exact; unsafe: may differ from torch; manual: left for a human
    filename: str = field(default="<string>", compare=False)

    def format(self, filename: str | None = None) -> str:
        return f"{filename or self.filename}:{self.line}:{self.column}: {self.code} {self.message}"


@dataclass(frozen=True)
class CodeInfo:
    code: str
    title: str
    severity: str
    safety: str
    explain: str
    before: str = ""
    after: str = ""


@cache
def code_table() -> dict[str, CodeInfo]:
    raw = tomllib.loads((Path(__file__).with_name("codes.toml")).read_text())
    table = {}
    for code, rec in raw.items():
        unknown = set(rec) - {"title", "severity", "safety", "explain", "before", "after"}
        if unknown:
            raise ValueError(f"codes.toml: {code}: unknown keys {sorted(unknown)}")
        if rec["severity"] not in SEVERITIES or rec["safety"] not in SAFETIES:
            raise ValueError(f"codes.toml: {code}: bad severity or safety")
        table[code] = CodeInfo(code=code, **rec)
    return table


def make(code: str, message: str, line: int, column: int, filename: str = "<string>") -> Diagnostic:
    """A diagnostic with the severity and safety its code declares."""
    info = code_table()[code]
    # one line: messages quote source (a call spanning lines), and a marker comment cannot hold a newline
    message = " ".join(message.split())
    return Diagnostic(code, message, line, column, info.severity, info.safety, filename)
