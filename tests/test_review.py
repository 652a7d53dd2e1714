"""`torch2jax review`: hunks with their notes, --check, JSON, the interactive loop (in a pseudo-terminal), the text
report and the HTML page (rendered by headless Chromium)."""
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from torch2jax import translate
from torch2jax.cli import app
from torch2jax.diagnostics import code_table
from torch2jax.result import Translation
from torch2jax.review import MARKER, merge, review_source
from torch2jax.review_report import report_html, report_text, to_json

ROOT = Path(__file__).resolve().parents[1]
CASE = Path(__file__).parent / "cases" / "review_classifier.py"
runner = CliRunner()
HEADER = re.compile(r"^@@ -\d+,\d+ \+\d+,\d+ @@$")
NOTE = re.compile(r"^# (T2J\d{3}) \[(safe|unsafe|manual)\] ")


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("review") / "classifier.py"
    shutil.copy(CASE, path)
    return path


@pytest.fixture(scope="module")
def review(torch_file):
    before = torch_file.read_text()
    return review_source(before, translate(before, filename=str(torch_file)), str(torch_file))


def _text_hunks(output: str) -> list[tuple[str, list[str]]]:
    """(header, note codes) of each hunk in the text output."""
    hunks = []
    for line in output.splitlines():
        if HEADER.match(line):
            hunks.append((line, []))
        elif NOTE.match(line) and hunks:
            hunks[-1][1].append(NOTE.match(line).group(1))
    return hunks


def test_every_hunk_has_a_note_that_explain_knows(torch_file, review):
    result = runner.invoke(app, ["review", str(torch_file)])
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stdout  # not a terminal: plain text
    hunks = _text_hunks(result.stdout)
    assert len(hunks) == len(review.hunks) >= 4
    assert all(codes for _, codes in hunks), hunks
    codes = {c for _, cs in hunks for c in cs}
    assert {"T2J101", "T2J200", "T2J301", "T2J501"} <= codes  # untranslatable call, layers, in-place, training
    for code in codes:
        explained = runner.invoke(app, ["explain", code])
        assert explained.exit_code == 0, (code, explained.output)
        assert code_table()[code].explain
    # each manual or unsafe note says what is left to the reviewer
    assert "left for a human" in result.stdout and "check: " in result.stdout


def test_notes_sit_on_the_hunks_that_changed_their_lines(review):
    by_code = {n.code: h for h in review.hunks for n in h.notes}
    old, new = review.lines()
    assert any("torch.special.zeta" in line for line in by_code["T2J101"].diff_lines(old, new))
    assert any("t2j.masked_set" in line for line in by_code["T2J306"].diff_lines(old, new))
    assert any("train_step" in line for line in by_code["T2J501"].diff_lines(old, new))


def test_check_fails_on_torch_and_passes_on_its_translation(torch_file, review, tmp_path):
    before = torch_file.read_bytes()
    result = runner.invoke(app, ["review", "--check", str(torch_file)])
    assert result.exit_code == 1, result.output
    assert "would change" in result.stdout and "T2J101" in result.stdout
    assert torch_file.read_bytes() == before  # --check writes nothing
    out = tmp_path / "classifier_jax.py"
    out.write_text(review.after)
    assert translate(out.read_text()).code == out.read_text()
    result = runner.invoke(app, ["review", "--check", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["review", "--check", str(out), str(torch_file)]).exit_code == 1


def test_check_fails_on_a_manual_item_without_its_marker(tmp_path):
    path = tmp_path / "m.py"
    marked = translate("import torch\n\n\ndef f(x):\n    return torch.special.zeta(x, 2.0)\n").code
    path.write_text(marked)
    assert runner.invoke(app, ["review", "--check", str(path)]).exit_code == 0
    path.write_text(marked.replace("  # torch2jax: T2J101 torch.special.zeta has no JAX mapping", ""))
    result = runner.invoke(app, ["review", "--check", str(path)])
    assert result.exit_code == 1 and "T2J101" in result.stdout


def test_json_lists_the_same_hunks_as_the_text(torch_file):
    text = runner.invoke(app, ["review", str(torch_file)])
    data = json.loads(runner.invoke(app, ["review", "--format", "json", str(torch_file)]).stdout)
    (entry,) = data["files"]
    assert [(h["header"], [n["code"] for n in h["notes"]]) for h in entry["hunks"]] == _text_hunks(text.stdout)
    assert data["summary"]["hunks"] == len(entry["hunks"])
    assert all(h["notes"] and h["lines"] for h in entry["hunks"])
    assert entry["check_failed"] and entry["open_manual"][0]["code"] == "T2J101"


def test_folders_and_bad_input(tmp_path):
    (tmp_path / "pkg").mkdir()
    shutil.copy(CASE, tmp_path / "pkg" / "a.py")
    (tmp_path / "pkg" / "plain.py").write_text("x = 1\n")
    data = json.loads(runner.invoke(app, ["review", "--format", "json", str(tmp_path / "pkg")]).stdout)
    assert [f["changed"] for f in data["files"]] == [True, False]
    assert runner.invoke(app, ["review", str(tmp_path / "missing.py")]).exit_code == 2
    (tmp_path / "bad.py").write_text("import torch\ndef f(:\n")
    assert runner.invoke(app, ["review", "--check", str(tmp_path / "bad.py")]).exit_code == 2
    assert runner.invoke(app, ["review", "-i", "--check", str(tmp_path / "pkg")]).exit_code == 2


def test_merge_all_none_and_rejections(review):
    n = len(review.hunks)
    assert merge(review, [True] * n) == review.after
    assert merge(review, [None] * n) == review.before == merge(review, [])
    rejected = merge(review, [False] * n)
    assert rejected != review.before
    without_markers = "".join(line for line in rejected.splitlines(True) if MARKER not in line)
    assert without_markers == review.before
    compile(rejected, "rejected.py", "exec")  # a marker is a comment line: the file still parses


def test_rejected_marker_goes_above_the_statement():
    """Inside a backslash continuation or a string a comment line would break the file: the marker goes above the
    statement the first rejected line belongs to."""
    before = "import os\n\n\nx = (1 +\n     2)\n\n\ny = 1 + \\\n    2\n\n\n\ns = '''a\nb'''\n"
    after = before.replace("     2)", "     5)").replace("    2\n", "    7\n").replace("b'''", "B'''")
    review = review_source(before, Translation(after), "f.py")
    merged = merge(review, [False] * len(review.hunks))
    compile(merged, "merged.py", "exec")
    assert [line for line in merged.splitlines() if MARKER not in line] == before.splitlines()
    assert [merged.splitlines()[k + 1][:2] for k, line in enumerate(merged.splitlines()) if MARKER in line] == \
        ["x ", "y ", "s "]
    assert all(n.code == "T2J011" for h in review.hunks for n in h.notes)  # no rule explains these edits


lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "    d\n", "e\r\n"]), max_size=14)


@given(lines, lines, st.data())
def test_merge_properties(old, new, data):
    before, after = "".join(old), "".join(new)
    review = review_source(before, Translation(after), "f.py")
    n = len(review.hunks)
    assert merge(review, [True] * n) == after
    assert merge(review, [None] * n) == before
    assert all(h.notes for h in review.hunks)  # T2J011 when nothing explains a hunk
    spans = [h.old_range for h in review.hunks]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # hunks never overlap
    choice = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    merged = merge(review, choice)
    assert "".join(line for line in merged.splitlines(True) if MARKER not in line) == merge(
        review, [c or None for c in choice])


def test_report_lists_what_needs_a_human_first(review, tmp_path, torch_file):
    text = report_text([review])
    human, changes = text.split("Every change:")
    assert "Needs a human:" in human and "T2J101 MANUAL" in human
    change_lines = [line for line in changes.splitlines() if line.startswith(str(torch_file))]
    assert change_lines and all(re.match(r".+:\d+:\d+: T2J\d{3} (ERROR|WARNING|INFO) .+", line)
                                for line in change_lines)
    report, page = tmp_path / "r.txt", tmp_path / "r.html"
    result = runner.invoke(app, ["review", str(torch_file), "--report", str(report), "--html", str(page)])
    assert result.exit_code == 0
    assert report.read_text() == text.replace(str(review.path), str(torch_file))
    assert page.read_text().count("class='head'") == len(review.hunks)


def test_pre_commit_hook_definition():
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "torch2jax-review" and hook["entry"] == "torch2jax review --check"
    assert hook["language"] == "python" and hook["types"] == ["python"]


# ----- the interactive loop, in a pseudo-terminal

class Terminal:
    """A child process on a pseudo-terminal: read until a prompt shows, then answer it."""

    def __init__(self, *args: str, color: bool = False):
        env = dict(os.environ, COLUMNS="200", TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        env.update({} if color else {"NO_COLOR": "1"})
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the CLI, with the pty as its terminal
            os.execvpe(sys.executable, [sys.executable, "-m", "torch2jax", *args], env)
        self.output, self.raw = "", ""

    def expect(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output):
            if time.monotonic() > deadline or not select.select([self.fd], [], [], deadline - time.monotonic())[0]:
                raise AssertionError(f"{pattern!r} never showed; output so far:\n{self.output}")
            try:
                chunk = os.read(self.fd, 65536).decode(errors="replace")
            except OSError:  # the child closed the terminal
                chunk = ""
            if not chunk:
                raise AssertionError(f"{pattern!r} never showed before the end:\n{self.output}")
            self.raw += chunk
            self.output += re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", chunk)
        self.output = self.output[re.search(pattern, self.output).end():]

    def send(self, line: str) -> None:
        os.write(self.fd, (line + "\r").encode())

    def wait(self) -> int:
        try:
            while os.read(self.fd, 65536):
                pass
        except OSError:
            pass
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


def test_interactive_accept_reject_confirm(tmp_path):
    path = tmp_path / "classifier.py"
    shutil.copy(CASE, path)
    before = path.read_text()
    review = review_source(before, translate(before, filename=str(path)), str(path))
    n = len(review.hunks)
    choices = [True, False] + [True] * (n - 2)
    skipped = tmp_path / "skipped.py"
    skipped.write_text("import torch\n\n\ndef g(x):\n    return torch.sum(x, 1)\n")
    term = Terminal("review", "--interactive", str(path), str(skipped))
    for k, accept in enumerate(choices):
        term.expect(rf"\[{k + 1}/\d+\] accept this hunk\?")
        term.send("y" if accept else "n")
    term.expect(rf"\[{n + 1}/\d+\] accept this hunk\?")  # the second file: skip it
    term.send("s")
    term.expect(r"1 accepted" if n == 2 else rf"{n - 1} accepted, 1 rejected")
    term.expect(r"write 1 file\(s\)\? \[y/N\]")
    assert path.read_text() == before  # nothing written before the confirmation
    term.send("y")
    term.expect("wrote")
    assert term.wait() == 0
    written = path.read_text()
    assert written == merge(review, choices)
    old, _ = review.lines()
    first_removed = next(old[i1] for tag, i1, i2, _, _ in review.hunks[1].ops if tag != "equal" and i2 > i1)
    assert f"{MARKER} (" in written
    marker_at = written.splitlines().index(next(l for l in written.splitlines() if MARKER in l))
    assert written.splitlines()[marker_at + 1] == first_removed.rstrip("\n")
    assert written.count(MARKER) == 1
    assert skipped.read_text() == "import torch\n\n\ndef g(x):\n    return torch.sum(x, 1)\n"


def test_interactive_quit_without_confirming_writes_nothing(tmp_path):
    path = tmp_path / "classifier.py"
    shutil.copy(CASE, path)
    before = path.read_bytes()
    term = Terminal("review", "--interactive", str(path), color=True)
    term.expect(r"\[1/\d+\] accept this hunk\?")
    assert "\x1b[31m-" in term.raw and "\x1b[32m+" in term.raw  # a terminal gets red and green lines
    term.send("y")
    term.expect(r"\[2/\d+\] accept this hunk\?")
    term.send("?")  # help, then the same question again
    term.expect(r"y: accept")
    term.send("q")
    term.expect(r"write 1 file\(s\)\? \[y/N\]")
    term.send("")
    term.expect("nothing written")
    assert term.wait() == 0
    assert path.read_bytes() == before


# ----- the HTML page in a real browser

def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _png_colours(png: Path, enough: int = 64) -> int:
    """How many distinct colours the PNG holds, counting up to `enough` (decoded here with zlib and the PNG row
    filters, top row first: no imaging library needed; stopping early keeps it fast)."""
    import struct
    import zlib

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,), tag = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            width, height, depth, kind, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[kind]
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours = bytearray(stride), set()
    for r in range(height):
        kind_of_filter, row = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        for i in range(stride):  # undo the PNG row filters (None, Sub, Up, Average, Paeth)
            a = row[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind_of_filter == 1:
                row[i] = (row[i] + a) & 255
            elif kind_of_filter == 2:
                row[i] = (row[i] + b) & 255
            elif kind_of_filter == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif kind_of_filter == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(bytes(row[i:i + bpp]) for i in range(0, stride, bpp))
        if len(colours) >= enough:
            break
        prev = row
    return len(colours)


def test_html_renders_in_headless_chromium(review, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on this machine (apt-get install chromium)")
    page, png = tmp_path / "review.html", tmp_path / "review.png"
    page.write_text(report_html([review]))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1200,900",
           page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120)
    assert png.exists() and png.stat().st_size > 10_000
    assert _png_colours(png) >= 64  # text, the red and green sides, the note tags: not a blank page
    if os.environ.get("T2J_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["T2J_KEEP_SCREENSHOT"])
