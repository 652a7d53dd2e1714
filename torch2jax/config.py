"""[tool.torch2jax] in the nearest pyproject.toml: defaults for the translate command.

    [tool.torch2jax]
    exclude = ["build/*", "*_pb2.py"]   # globs (relative to the pyproject.toml's folder) left out of folder runs
    select = ["T2J1", "T2J5"]           # report only these diagnostic codes (prefixes); default: all
    ignore = ["T2J306"]                 # and never these

select/ignore decide what is reported (and so the exit status), not what is rewritten: the marker comments in
the code stay. Failures (T2J001 syntax, T2J002 internal) are always reported.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

ALWAYS_REPORTED = ("T2J001", "T2J002")


@dataclass
class Config:
    root: Path | None = None  # the folder of the pyproject.toml it came from
    exclude: list[str] = field(default_factory=list)
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)

    def reports(self, code: str) -> bool:
        if code in ALWAYS_REPORTED:
            return True
        if self.select and not any(code.startswith(p) for p in self.select):
            return False
        return not any(code.startswith(p) for p in self.ignore)

    def excluded(self, path: Path) -> bool:
        if not self.exclude:
            return False
        path = path.resolve()
        try:
            rel = PurePosixPath(path.relative_to(self.root.resolve()).as_posix()) if self.root else None
        except ValueError:
            rel = None
        candidates = [path.name]
        if rel is not None:
            candidates += [str(rel)] + [str(p) for p in rel.parents if str(p) != "."]
        return any(fnmatch(c, pattern.rstrip("/")) for c in candidates for pattern in self.exclude)


def find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    for candidate in [folder, *folder.parents]:
        if (candidate / "pyproject.toml").is_file():
            return candidate / "pyproject.toml"
    return None


def load_config(start: Path) -> Config:
    """The [tool.torch2jax] table of the pyproject.toml nearest to start (a file or folder). Raises ValueError
    (one line, naming the file) when it is not valid."""
    pyproject = find_pyproject(Path(start))
    if pyproject is None:
        return Config()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{pyproject}: cannot read: {e}") from None
    table = data.get("tool", {}).get("torch2jax", {})
    if not isinstance(table, dict):
        raise ValueError(f"{pyproject}: [tool.torch2jax] must be a table")
    config = Config(root=pyproject.parent)
    for key, value in table.items():
        if key not in ("exclude", "select", "ignore"):
            raise ValueError(f"{pyproject}: [tool.torch2jax] {key}: unknown setting (exclude, select, ignore)")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{pyproject}: [tool.torch2jax] {key} must be a list of strings")
        setattr(config, key, list(value))
    return config
