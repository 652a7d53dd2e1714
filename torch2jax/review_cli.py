"""The `torch2jax review` command: hunks and notes in the terminal (rich colours, plain text when piped), the
interactive accept/reject loop, --check for CI and pre-commit, and the JSON/report/HTML outputs."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from torch2jax.files import InputError, python_files, read_source, write_atomic
from torch2jax.review import FileReview, merge, review_source, title, todo
from torch2jax.review_report import report_html, report_text, summary, summary_line, to_json

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2
HELP = "y: accept (use the JAX), n: reject (keep the torch, marked), s: skip the rest of this file, q: quit"
_STYLE = {"+": "green", "-": "red", " ": "", "@": "cyan"}
_SAFETY_STYLE = {"safe": "green", "unsafe": "yellow", "manual": "bold red"}


def run(paths: list[Path], *, interactive: bool = False, check: bool = False, fmt: str = "text",
        report: Path | None = None, html: Path | None = None, jobs: int = 0) -> int:
    """The whole command; returns the exit status."""
    console = Console(highlight=False, soft_wrap=True)  # soft_wrap: piped output is never re-wrapped at 80 columns
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    if fmt not in ("text", "json"):
        return _usage(errors, f"unknown format {fmt!r} (text or json)")
    if interactive and (check or fmt == "json"):
        return _usage(errors, "--interactive cannot be combined with --check or --format json")
    files, status = [], EXIT_OK
    for path in paths:
        if not path.exists():
            return _usage(errors, f"{path}: no such file or directory")
        files += python_files(path) if path.is_dir() else [path]
    files = list(dict.fromkeys(files))  # a file named twice (a folder and a file in it) is reviewed once
    reviews, encodings = [], {}
    for path, translation, encoding, error in _translate(files, jobs):
        if error:
            errors.print(Text(f"torch2jax: error: {error}"))
            status = EXIT_BAD_INPUT
            continue
        review = review_source(read_source(path).text, translation, str(path))
        if review.failed:
            for d in translation.diagnostics:
                errors.print(Text(d.format(str(path))))
            status = EXIT_BAD_INPUT
        reviews.append(review)
        encodings[str(path)] = encoding
    if report is not None:
        write_atomic(report, report_text(reviews))
    if html is not None:
        write_atomic(html, report_html(reviews))
    if fmt == "json":
        console.file.write(to_json(reviews) + "\n")
    elif check:
        _print_check(console, reviews)
    elif interactive:
        written = _interactive(console, [r for r in reviews if r.hunks and not r.failed], encodings)
        return status if written else EXIT_BAD_INPUT
    else:
        for review in reviews:
            render(console, review)
        console.print(Text(summary_line(summary(reviews)), style="bold"))
    if check and any(r.check_failed for r in reviews if not r.failed):
        status = max(status, EXIT_CHECK_FAILED)
    return status


def _usage(errors: Console, line: str) -> int:
    errors.print(Text(f"torch2jax: error: {line}"))
    return EXIT_BAD_INPUT


def _translate(files: list[Path], jobs: int):
    """(path, translation, encoding, error) per file, in worker processes for many files (the translate command's)."""
    import os

    from torch2jax.cli import _map_with_progress, _translate_one

    return _map_with_progress(_translate_one, files, jobs or os.cpu_count() or 1)


# ----- terminal rendering

def render(console: Console, review: FileReview) -> None:
    if review.failed or not review.hunks:
        return
    console.print(Text(f"--- a/{review.path}\n+++ b/{review.path}", style="bold"))
    for n in range(len(review.hunks)):
        render_hunk(console, review, n)
    if review.other_notes:
        console.print(Text("# notes on lines the translation left unchanged:", style="bold"))
        for note in review.other_notes:
            console.print(_note_text(note))


def render_hunk(console: Console, review: FileReview, n: int) -> None:
    """The header, the notes that explain the hunk (why first), then its diff lines."""
    hunk = review.hunks[n]
    old, new = review.lines()
    console.print(Text(hunk.header(), style="cyan"))
    for note in hunk.notes:
        console.print(_note_text(note))
    for line in hunk.diff_lines(old, new):
        console.print(Text(line, style=_STYLE.get(line[:1], "")))


def _note_text(note) -> Text:
    text = Text("# ")
    text.append(note.code, style="bold")
    text.append(f" [{note.safety}]", style=_SAFETY_STYLE[note.safety])
    text.append(f" {title(note.code)} (line {note.line}): {note.message}")
    if todo(note):
        text.append(f"\n#   -> {todo(note)}", style=_SAFETY_STYLE[note.safety])
    return text


def _print_check(console: Console, reviews: list[FileReview]) -> None:
    """One line per file `--check` rejects, then its open manual items as file:line:col: CODE message."""
    for r in reviews:
        if r.failed or not r.check_failed:
            continue
        why = [f"would change ({len(r.hunks)} hunk{'s' * (len(r.hunks) != 1)})"] if r.changed else []
        why += [f"{len(r.open_manual)} manual item{'s' * (len(r.open_manual) != 1)} not marked yet"] \
            if r.open_manual else []
        console.print(Text(f"{r.path}: {', '.join(why)}", style="bold red"))
        for d in r.open_manual:
            console.print(Text(f"  {d.format(r.path)}"))
    bad = sum(r.check_failed for r in reviews if not r.failed)
    if bad:
        console.print(Text(f"{bad} of {len(reviews)} files need `torch2jax review` (or translate --write)"))


# ----- interactive review

def _interactive(console: Console, reviews: list[FileReview], encodings: dict[str, str]) -> bool:
    """Ask about every hunk, then write the merged files (atomically) only when the user confirms; False when a
    file could not be written."""
    decisions: dict[str, list[bool | None]] = {}
    total = sum(len(r.hunks) for r in reviews)
    seen = 0
    quit_ = False
    for review in reviews:
        if quit_:
            break
        console.print(Text(f"--- a/{review.path}\n+++ b/{review.path}", style="bold"))
        choices: list[bool | None] = []
        for n in range(len(review.hunks)):
            seen += 1
            render_hunk(console, review, n)
            answer = _ask(console, f"[{seen}/{total}] accept this hunk? [y,n,s,q,?] ", "ynsq")
            if answer in ("s", "q"):
                quit_ = answer == "q"
                seen += len(review.hunks) - n - 1  # the count goes on from the next file's first hunk
                break
            choices.append(answer == "y")
        else:
            decisions[review.path] = choices
            continue
        if quit_ and choices:  # what was decided before quitting still counts; the rest stays torch, unmarked
            decisions[review.path] = choices
    return _write_decisions(console, reviews, decisions, encodings)


def _ask(console: Console, prompt: str, allowed: str) -> str:
    while True:
        try:
            answer = console.input(Text(prompt, style="bold blue")).strip().lower()[:1]
        except EOFError:
            console.print()
            return "q"
        if answer and answer in allowed:
            return answer
        console.print(Text(HELP))


def _write_decisions(console: Console, reviews: list[FileReview], decisions: dict[str, list[bool | None]],
                     encodings: dict[str, str]) -> bool:
    merged = []
    for review in reviews:
        choices = decisions.get(review.path)
        if choices:
            text = merge(review, choices)
            if text != review.before:
                merged.append((review, text, choices))
    if not merged:
        console.print(Text("nothing to write"))
        return True
    for review, _, choices in merged:
        console.print(Text(f"  {review.path}: {choices.count(True)} accepted, {choices.count(False)} rejected, "
                           f"{len(review.hunks) - len(choices)} left as they are"))
    try:
        answer = console.input(Text(f"write {len(merged)} file(s)? [y/N] ", style="bold blue")).strip().lower()
    except EOFError:
        answer = ""
    if answer not in ("y", "yes"):
        console.print(Text("nothing written"))
        return True
    ok = True
    for review, text, _ in merged:
        path = Path(review.path)
        try:
            write_atomic(path, text, encodings.get(review.path, "utf-8"), like=path)
        except (OSError, UnicodeEncodeError) as e:  # one unwritable file must not lose the others' decisions
            console.print(Text(f"could not write {review.path}: {e}; it is left as it was", style="bold red"))
            ok = False
            continue
        console.print(Text(f"wrote {review.path}"))
    return ok
