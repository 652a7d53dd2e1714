"""The result of translating one file."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch2jax.diagnostics import Diagnostic


@dataclass
class Translation:
    code: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    filename: str = "<string>"
    failed: bool = False  # the input could not be translated at all (syntax or internal error): code is the input
    changes: list[Diagnostic] = field(default_factory=list)  # the exact rewrites made, for the review mode

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)
