"""The `torch2jax` command: translate, coverage, explain (review and check live in their own modules)."""
from __future__ import annotations

import difflib
import errno
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional

import typer

from torch2jax.files import InputError, python_files, read_source, write_atomic
from torch2jax.result import Translation

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Translate PyTorch source to JAX.")

EXIT_OK, EXIT_DIAGNOSTIC_ERRORS, EXIT_BAD_INPUT = 0, 1, 2


def _err(line: str) -> None:
    typer.echo(line, err=True)


def _fail(line: str) -> None:
    _err(f"torch2jax: error: {line}")
    raise typer.Exit(EXIT_BAD_INPUT)


def _uncommitted(path: Path) -> list[str]:
    """`git status --porcelain` lines for path when it lies in a git work tree (uncommitted or untracked changes
    that --write would overwrite); [] outside a work tree or without git."""
    import subprocess

    folder = path if path.is_dir() else path.parent
    try:
        proc = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=all", "--",
                               str(path.resolve())], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []
    return [line for line in proc.stdout.splitlines() if line.rstrip('"').endswith(".py")]  # what --write writes


def _refuse_uncommitted(path: Path, force: bool) -> None:
    if force:
        return
    dirty = _uncommitted(path)
    if dirty:
        first = dirty[0][3:]
        more = f" and {len(dirty) - 1} more" if len(dirty) > 1 else ""
        _fail(f"{path}: uncommitted changes ({first}{more}) would be overwritten by --write: commit or stash "
              "them, or pass --force")


def _write(path: Path, text: str, encoding: str, like: Path | None = None) -> str:
    """Write atomically; the error line ("" on success)."""
    try:
        write_atomic(path, text, encoding, like=like)
    except UnicodeEncodeError as e:
        return f"{path}: the translation cannot be written as {encoding} ({e.reason}); the file is left as it was"
    except OSError as e:
        return f"{path}: cannot write: {e.strerror or e}"
    return ""


def _translate_one(path: Path) -> tuple[Path, Translation | None, str, str]:
    """(path, translation, encoding, error line). Runs in worker processes for folders."""
    from torch2jax.pipeline import translate

    try:
        src = read_source(path)
    except InputError as e:
        return path, None, "", str(e)
    return path, translate(src.text, filename=str(path)), src.encoding, ""


def _report(t: Translation, quiet: bool, config=None) -> bool:
    """Print the diagnostics [tool.torch2jax] select/ignore let through; whether one of them is an error."""
    shown = [d for d in t.diagnostics if config is None or config.reports(d.code)]
    for d in shown:
        if d.code == "T2J001":
            _err(f"{t.filename}:{d.line}: {d.message}")
        elif not (quiet and d.severity == "info"):
            _err(d.format(t.filename))
    return any(d.severity == "error" for d in shown)


def _config(path: Path):
    from torch2jax.config import load_config

    try:
        return load_config(path)
    except ValueError as e:
        _fail(str(e))


def _unified_diff(path: Path, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                        f"a/{path}", f"b/{path}"))


@app.command()
def translate(
    input: Path = typer.Argument(..., help="A .py file or a folder of them."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output file or folder (mirrors the tree)."),
    write: bool = typer.Option(False, "--write", help="Rewrite the input files in place."),
    diff: bool = typer.Option(False, "--diff", help="Print a unified diff instead of the translation."),
    jobs: int = typer.Option(0, "-j", "--jobs", help="Worker processes for folders (0: one per core)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Hide info diagnostics."),
    force: bool = typer.Option(False, "--force", help="With --write: overwrite files with uncommitted changes."),
) -> None:
    """Translate IN to JAX. Diagnostics go to stderr as file:line:col: CODE message."""
    if sum([output is not None, write, diff]) > 1:
        _fail("use only one of -o, --write and --diff")
    if not input.exists():
        if input.is_symlink():
            try:
                input.resolve(strict=True)
            except RuntimeError:  # Python < 3.13
                _fail(f"{input}: symlink loop")
            except OSError as e:
                if e.errno == errno.ELOOP:
                    _fail(f"{input}: symlink loop")
            _fail(f"{input}: broken symlink")
        _fail(f"{input}: no such file or directory")
    if write:
        _refuse_uncommitted(input, force)
    config = _config(input)
    if input.is_dir():
        raise typer.Exit(_translate_folder(input, output, write, diff, jobs, quiet, config))
    path, t, encoding, error = _translate_one(input)
    if error:
        _fail(error)
    has_errors = _report(t, quiet, config)
    if t.failed:
        raise typer.Exit(EXIT_BAD_INPUT)
    before = read_source(input).text
    if diff:
        sys.stdout.write(_unified_diff(input, before, t.code))
    elif write:
        if t.code != before and (error := _write(input, t.code, encoding, like=input)):
            _fail(error)
    elif output is not None:
        if output.is_dir():
            output = output / input.name
        if output.resolve() == input.resolve():
            _fail("the output is the input: use --write to rewrite in place")
        if error := _write(output, t.code, encoding):
            _fail(error)
    else:
        sys.stdout.write(t.code)
    raise typer.Exit(EXIT_DIAGNOSTIC_ERRORS if has_errors else EXIT_OK)


def _translate_folder(folder: Path, output: Path | None, write: bool, diff: bool, jobs: int, quiet: bool,
                      config=None) -> int:
    if output is None and not (write or diff):
        _fail("translating a folder needs -o OUT_FOLDER, --write or --diff")
    if output is not None:
        out_resolved, in_resolved = output.resolve(), folder.resolve()
        if out_resolved == in_resolved or in_resolved in out_resolved.parents:
            _fail(f"output folder {output} is inside the input folder {folder}")
    files = [f for f in python_files(folder) if config is None or not config.excluded(f)]
    jobs = jobs or os.cpu_count() or 1
    status = EXIT_OK
    results = _map_with_progress(_translate_one, files, jobs)
    for path, t, encoding, error in results:
        if error:
            _err(f"torch2jax: error: {error}")
            status = EXIT_BAD_INPUT
            continue
        has_errors = _report(t, quiet, config)
        if t.failed:
            status = EXIT_BAD_INPUT
            continue
        if has_errors and status == EXIT_OK:
            status = EXIT_DIAGNOSTIC_ERRORS
        error = ""
        if diff:
            sys.stdout.write(_unified_diff(path, read_source(path).text, t.code))
        elif write:
            if t.code != read_source(path).text:
                error = _write(path, t.code, encoding, like=path)
        else:
            error = _write(output / path.relative_to(folder), t.code, encoding)
        if error:
            _err(f"torch2jax: error: {error}")
            status = EXIT_BAD_INPUT
    return status


def _map_with_progress(fn, items: list, jobs: int):
    """fn over items, in worker processes when there are enough of them, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("translating", total=len(items))
        if jobs <= 1 or len(items) < 4:
            for item in items:
                yield fn(item)
                progress.advance(task)
            return
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            # the biggest files first, so that no worker is left with a big one at the end while the others idle
            futures = {id(item): pool.submit(fn, item) for item in sorted(items, key=_size, reverse=True)}
            for item in items:
                future = futures[id(item)]
                try:
                    result = future.result()
                except Exception:  # the worker died (killed, out of memory, could not start): this process
                    result = fn(item)  # does that file, and the run goes on
                yield result
                progress.advance(task)


def _size(path) -> int:
    try:
        return os.stat(path).st_size
    except (OSError, TypeError):
        return 0


@app.command()
def coverage(
    unmapped: bool = typer.Option(False, "--unmapped", help="List the frequently used torch APIs not mapped."),
) -> None:
    """How many torch APIs are mapped, and how much of real-world torch usage that covers."""
    from torch2jax.coverage import coverage_report

    typer.echo(coverage_report(show_unmapped=unmapped))


@app.command()
def explain(code: str = typer.Argument(..., help="A diagnostic code such as T2J101.")) -> None:
    """What a diagnostic code means, with a before/after example."""
    from torch2jax.diagnostics import code_table

    info = code_table().get(code.upper())
    if info is None:
        _fail(f"unknown diagnostic code {code!r} (known: {', '.join(sorted(code_table()))})")
    typer.echo(f"{info.code}: {info.title} [{info.severity}, {info.safety}]\n\n{info.explain}")
    if info.before:
        typer.echo(f"\nBefore:\n    {info.before.replace(chr(10), chr(10) + '    ')}")
    if info.after:
        typer.echo(f"After:\n    {info.after.replace(chr(10), chr(10) + '    ')}")


@app.command("check")
def check_command(
    original: Path = typer.Argument(..., help="The PyTorch file or folder."),
    translated: Optional[Path] = typer.Argument(None, help="Its translation (translated here when left out)."),
    entry: list[str] = typer.Option([], "--entry", "-e", help="Check only this function/class (repeatable)."),
    input: list[str] = typer.Option([], "--input", "-i", help="An input: 'x: float32[8,3,32,32]' (repeatable; "
                                    "'Net.x: ...' for one entry, 'idx: int64[4]:0..9', 'dim: 1')."),
    args: list[str] = typer.Option([], "--args", "-a", help="Constructor arguments: 'Net=(10, 3)' (repeatable), "
                                   "or a .json/.toml spec file."),
    train: list[str] = typer.Option([], "--train", help="A script, or a function of the file, to run on both sides "
                                    "comparing the losses it prints (repeatable)."),
    steps: int = typer.Option(3, "--steps", help="SGD steps in the module training stage."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds per entry and stage (a script's replaying run, JIT off, gets 5 times as long)."),
    memory: int = typer.Option(4096, "--memory", help="MiB of address space user code may add (0: no limit)."),
    examples: Optional[int] = typer.Option(None, "--examples", help="Hypothesis examples per function."),
    allow_torch: bool = typer.Option(False, "--allow-torch", help="Go on when the translation still imports torch."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run ORIGINAL and its translation on generated inputs and compare: interface, numbers and gradients,
    training. Exit status 0 when nothing failed, 1 otherwise, 2 for bad usage."""
    from torch2jax.check import check as run_check

    if not original.exists():
        _fail(f"{original}: no such file or directory")
    if translated is not None and not translated.exists():
        _fail(f"{translated}: no such file or directory")
    stream = None if json_out else (lambda r: typer.echo(r.format()))
    try:
        report = run_check(original, translated, entries=entry or None, inputs=input or None, args=args or None,
                           train=train or None, timeout=timeout, examples=examples, steps=steps, memory_mb=memory,
                           allow_torch=allow_torch, on_result=stream)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if json_out:
        typer.echo(report.to_json())
    else:
        typer.echo(report.summary())
    raise typer.Exit(report.exit_code)


@app.command("review")
def review_command(
    paths: list[Path] = typer.Argument(..., help="Files and folders of PyTorch source."),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="Accept or reject each hunk, then write "
                                     "the merged files in place (after a confirmation)."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 when a file would change or has manual "
                               "items not marked yet (CI, pre-commit)."),
    format: str = typer.Option("text", "--format", help="text or json."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write a text report (what needs a human "
                                          "first, then every change)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a side-by-side HTML page."),
    jobs: int = typer.Option(0, "-j", "--jobs", help="Worker processes for folders (0: one per core)."),
) -> None:
    """The translation of each file as diff hunks, each with the notes that explain it: the rule that fired, its
    safety (safe / unsafe / manual) and what still needs a human."""
    from torch2jax.review_cli import run

    raise typer.Exit(run(paths, interactive=interactive, check=check, fmt=format, report=report, html=html,
                         jobs=jobs))


def main() -> None:
    import signal

    # a terminated run unwinds (SystemExit) like Ctrl-C does: write_atomic removes its temporary file
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    app()
