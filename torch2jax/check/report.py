"""What `check` returns: one result per entry and stage, a summary, an exit status, text and JSON renderings.

An entry (a function, a module class, a script) goes through the stages in order and stops at the first one that
does not pass, so a report has up to three lines per entry: interface, numbers, training.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

STAGES = ("interface", "numbers", "training")
PASS, FAIL, SKIP, ERROR = "PASS", "FAIL", "SKIP", "ERROR"


@dataclass
class StageResult:
    """One line of the report: `status` of `entry` (in `file`) at `stage`."""

    file: str
    entry: str
    stage: str
    status: str
    message: str = ""
    kind: str = ""  # function, random function, module, script, class, file
    max_abs: float | None = None
    max_rel: float | None = None
    inputs: str = ""  # the inputs used ("x: float32[3,4]") and how they were found
    details: list[str] = field(default_factory=list)  # further lines: the shrunk failing example, notes
    seconds: float | None = None  # how long the stage took

    @property
    def name(self) -> str:
        return f"{self.file}::{self.entry}" if self.entry else self.file

    def format(self) -> str:
        parts = [f"{self.status:<5} {self.name} [{self.stage}]"]
        if self.max_abs is not None:
            parts.append(f"max abs {self.max_abs:.2e} rel {self.max_rel or 0.0:.2e}")
        if self.inputs:
            parts.append(f"inputs {self.inputs}")
        if self.message:
            parts.append(self.message)
        if self.seconds is not None:
            parts.append(f"({self.seconds:.1f} s)")
        return "  ".join(parts) + "".join(f"\n      {line}" for line in self.details)


@dataclass
class Report:
    results: list[StageResult] = field(default_factory=list)

    def add(self, result: StageResult) -> StageResult:
        self.results.append(result)
        return result

    def entries(self) -> dict[str, list[StageResult]]:
        """Results grouped by entry (file::name), in report order."""
        out: dict[str, list[StageResult]] = {}
        for r in self.results:
            out.setdefault(r.name, []).append(r)
        return out

    def entry_status(self, name: str) -> str:
        """ERROR or FAIL if a stage of the entry did, SKIP if a stage could not be checked, else PASS."""
        statuses = [r.status for r in self.entries().get(name, [])]
        for s in (ERROR, FAIL, SKIP):
            if s in statuses:
                return s
        return PASS

    def find(self, entry: str, stage: str | None = None, file: str | None = None) -> list[StageResult]:
        """The results of `entry` (its bare name or file::name), optionally of one stage."""
        return [r for r in self.results
                if entry in (r.entry, r.name) and (stage is None or r.stage == stage)
                and (file is None or r.file == file)]

    @property
    def counts(self) -> dict[str, int]:
        counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
        for name in self.entries():
            status = self.entry_status(name)
            counts[{PASS: "passed", FAIL: "failed", ERROR: "errors", SKIP: "skipped"}[status]] += 1
        return counts

    @property
    def ok(self) -> bool:
        c = self.counts
        return c["failed"] == 0 and c["errors"] == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        c = self.counts
        failed = c["failed"] + c["errors"]
        errors = f" ({c['errors']} error{'s' * (c['errors'] != 1)})" if c["errors"] else ""
        return f"{c['passed']} passed, {failed} failed{errors}, {c['skipped']} skipped"

    def format(self) -> str:
        return "\n".join([r.format() for r in self.results] + [self.summary()])

    __str__ = format

    def to_dict(self) -> dict:
        return {
            "results": [asdict(r) | {"name": r.name} for r in self.results],
            "entries": {name: self.entry_status(name) for name in self.entries()},
            "counts": self.counts,
            "summary": self.summary(),
            "ok": self.ok,
            "exit_code": self.exit_code,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)
