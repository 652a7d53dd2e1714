"""No file is ever lost or mangled: byte-for-byte round trips, encodings and line endings kept, --write refusing
uncommitted changes, internal errors and killed runs leaving files as they were, unreadable inputs reported."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from torch2jax import translate
from torch2jax.cli import app
from torch2jax.files import python_files, read_source, write_atomic

runner = CliRunner()
GOOD = "import torch\n\n\ndef f(x):\n    # keep me\n    return torch.sum(x, 1, True)\n"


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


# ----- 1. untouched code comes back byte for byte

UNTOUCHED = [
    # no torch at all: every odd corner of the syntax
    '# -*- coding: utf-8 -*-\n"""Doc."""\nfrom __future__ import annotations\n\n\n'
    "@decorator(  1,2 )\nclass A( B ) :   # comment\n\tx : 'int'=1  # type: ignore\n\n\n\n"
    "\tdef f(self,*a,**k)->\"A\":\n\t\treturn  ( a ,k )\n",
    "x = 'single'  ;  y = \"double\"  ;  z = '''triple'''\nw = r'\\d' f'{x!r:>10}'\nv = b'\\x00' B'' rb'x'\n",
    "def f(a, /, b, *, c): ...\n\n\nlambda: (yield)\nif (n := 10) > 5:\n    pass\n# trailing comment",
    "async def g():\n    async with a as b, c:\n        await x\n    async for i in y:\n        pass\n",
    "match x:\n    case [1, *rest] if rest:\n        pass\n    case {'k': v, **kw}:\n        pass\n"
    "    case Point(x=0) | None:\n        pass\n",
    "x = [\n    1,\n    2,  # two\n]\n\\\n\ny = 1\n",
    "type Alias = list[int]\ndef f[T](x: T) -> T: return x\n" if sys.version_info >= (3, 12) else "x = 1\n",
    # mentions torch (the passes look at it), imports nothing of torch's
    "# a torch model's helpers\nimport numpy as np  # noqa\n\nDEVICE = 'cpu'\n\n\ndef shape(x: 'torch.Tensor') -> tuple:"
    "\n    return np.shape(x)  # type: ignore[attr-defined]\n",
]


@pytest.mark.parametrize("source", UNTOUCHED)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_untouched_source_round_trips_exactly(source, newline):
    source = source.replace("\n", newline)
    result = translate(source)
    assert result.code == source


def test_comments_layout_and_quotes_kept_around_a_rewrite():
    source = ("import torch\n\n\n# a comment\n@decorator  # deco\ndef f(x: 'torch.Tensor') -> \"torch.Tensor\":\n"
              "    '''doc'''\n\n    y = torch.sum(x, 1, True)  # type: ignore\n\n\n\n    return y  # done\n")
    code = translate(source).code
    assert "jnp.sum(x, axis=1, keepdims=True)  # type: ignore\n" in code
    for kept in ["# a comment\n@decorator  # deco\ndef f(x: 'torch.Tensor') -> \"torch.Tensor\":\n    '''doc'''\n\n",
                 "\n\n\n\n    return y  # done\n"]:
        assert kept in code


def test_rewritten_call_over_several_lines_keeps_its_lines_and_comments():
    source = ("import torch\nimport torch.nn as nn\n\n\ndef build(x):\n    net = nn.Sequential(\n        # stem\n"
              "        nn.Linear(3, 4),\n        nn.ReLU(True),  # in place\n        nn.Linear(\n            4,\n"
              "            2,  # classes\n        ),\n    )\n    y = torch.cat(\n        [x, x],  # twice\n"
              "        dim=1,\n    )\n    return net, y\n")
    code = translate(source).code
    for kept in ["nn.Sequential(\n        # stem\n        t2j.nn.Linear(3, 4, key=", "),\n        t2j.nn.ReLU(),  # in place\n",
                 "t2j.nn.Linear(\n            4,\n            2,  # classes\n", "jnp.concatenate(\n        [x, x],  # twice\n"]:
        assert kept in code, code
    assert translate(code).code == code


# ----- 2. encodings and line endings through the command

TORCH_LATIN1 = "# -*- coding: latin-1 -*-\nimport torch\n\n\ndef f(x):\n    # café\n    return torch.sum(x, 1, True)\n"


@pytest.mark.parametrize("kind", ["crlf", "bom", "latin1", "bom-crlf", "tabs"])
@pytest.mark.parametrize("mode", ["-o", "--write"])
def test_encoding_and_newlines_kept(tmp_path, kind, mode):
    text = TORCH_LATIN1 if kind == "latin1" else GOOD.replace("# keep me", "# keep me: é")
    if kind == "tabs":
        text = text.replace("    ", "\t")
    newline = "\r\n" if "crlf" in kind else "\n"
    encoding = {"latin1": "latin-1", "bom": "utf-8-sig", "bom-crlf": "utf-8-sig"}.get(kind, "utf-8")
    data = text.replace("\n", newline).encode(encoding)
    src = tmp_path / "m.py"
    src.write_bytes(data)
    if mode == "-o":
        out = tmp_path / "out.py"
        result = _cli("translate", src, "-o", out)
    else:
        out = src
        result = _cli("translate", src, "--write")
    assert result.exit_code == 0, result.output
    written = out.read_bytes()
    assert written.startswith(b"\xef\xbb\xbf") == kind.startswith("bom")
    decoded = written.decode(encoding)
    assert "jnp.sum(x, axis=1, keepdims=True)" in decoded
    assert ("é" in decoded) and ("café" in decoded) == (kind == "latin1")
    if newline == "\r\n":
        assert decoded.count("\r\n") == decoded.count("\n")
    else:
        assert "\r" not in decoded
    if kind == "tabs":
        assert "\treturn jnp.sum" in decoded
    if mode == "-o":
        assert src.read_bytes() == data


def test_untouched_file_written_back_byte_for_byte(tmp_path):
    data = "# -*- coding: latin-1 -*-\r\n# caf\xe9\r\nx = 1\t# tab\r\n".encode("latin-1")
    src = tmp_path / "plain.py"
    src.write_bytes(data)
    result = _cli("translate", src, "-o", tmp_path / "o.py")
    assert result.exit_code == 0
    assert (tmp_path / "o.py").read_bytes() == data
    mtime = src.stat().st_mtime_ns
    assert _cli("translate", src, "--write").exit_code == 0
    assert src.read_bytes() == data and src.stat().st_mtime_ns == mtime  # not even rewritten


# ----- 3. --write and git

def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_write_refuses_uncommitted_changes(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q")
    src = repo / "pkg" / "m.py"
    src.write_text(GOOD)
    other = repo / "pkg" / "other.py"
    other.write_text(GOOD)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "init")
    edited = GOOD + "# edited\n"
    src.write_text(edited)
    for target in (src, repo / "pkg"):
        result = _cli("translate", target, "--write")
        assert result.exit_code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert "uncommitted changes" in result.stderr and "--force" in result.stderr
        assert src.read_text() == edited and other.read_text() == GOOD
    # other files' changes do not matter, untracked .py files in new folders do
    src.write_text(GOOD)
    (repo / "pkg" / "notes.txt").write_text("dirty")
    (repo / "pkg" / "new" / "deep").mkdir(parents=True)
    (repo / "pkg" / "new" / "deep" / "n.py").write_text(GOOD)
    result = _cli("translate", repo / "pkg", "--write")
    assert result.exit_code == 2 and "n.py" in result.stderr
    shutil.rmtree(repo / "pkg" / "new")
    src.write_text(edited)
    # an untracked file would be lost too
    new = repo / "new.py"
    new.write_text(GOOD)
    assert _cli("translate", new, "--write").exit_code == 2 and new.read_text() == GOOD
    # a committed file is fine; --force overrides
    assert _cli("translate", other, "--write").exit_code == 0 and "jnp.sum" in other.read_text()
    assert _cli("translate", src, "--write", "--force").exit_code == 0 and "jnp.sum" in src.read_text()
    # outside a work tree there is nothing to check
    loose = tmp_path / "loose.py"
    loose.write_text(GOOD)
    assert _cli("translate", loose, "--write").exit_code == 0 and "jnp.sum" in loose.read_text()


# ----- internal errors, killed runs

@pytest.fixture
def broken_pass(monkeypatch):
    from torch2jax.transform.ops import OpsPass

    def boom(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(OpsPass, "wants", boom)


def test_internal_error_leaves_file_unchanged(tmp_path, broken_pass):
    src = tmp_path / "m.py"
    data = GOOD.replace("\n", "\r\n").encode()
    src.write_bytes(data)
    result = _cli("translate", src, "--write")
    assert result.exit_code == 2
    assert "T2J002 internal error: RuntimeError: boom" in result.stderr
    assert src.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]
    folder_result = _cli("translate", tmp_path, "--write", "-j", "1")
    assert folder_result.exit_code == 2 and src.read_bytes() == data


def test_translate_never_raises_on_internal_errors(broken_pass):
    result = translate(GOOD)
    assert result.failed and result.code == GOOD
    assert [d.code for d in result.diagnostics] == ["T2J002"]


def test_write_atomic_interrupted_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "m.py"
    target.write_text("old\n")
    for exc in (KeyboardInterrupt, OSError(28, "No space left on device")):
        def fail(fd, exc=exc):
            raise exc
        monkeypatch.setattr(os, "fsync", fail)
        with pytest.raises(type(exc) if isinstance(exc, BaseException) else exc):
            write_atomic(target, "new\n" * 1000)
        assert target.read_text() == "old\n"
        assert [p.name for p in tmp_path.iterdir()] == ["m.py"]
    monkeypatch.undo()
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["m.py"]


KILL_LOOP = textwrap.dedent("""
    import signal, sys
    from pathlib import Path
    from torch2jax.files import write_atomic
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # what the torch2jax command installs
    target = Path(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        write_atomic(target, (chr(97 + i % 26) * 200_000 + "\\n") * 20)
""")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_writer_leaves_whole_file(tmp_path, sig):
    target = tmp_path / "m.py"
    target.write_text("old\n")
    proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    text = target.read_text()
    assert text == "old\n" or (len(set(text.replace("\n", ""))) == 1 and len(text) == 20 * 200_001)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "m.py"]
    if sig != signal.SIGKILL:  # SIGKILL cannot be caught: a temp file may stay, never a half-written target
        assert leftovers == []
    assert all(name.endswith(".t2j-tmp") for name in leftovers)
    assert python_files(tmp_path) == [target]  # leftovers are never taken for source


# ----- unreadable inputs, folder runs go on

def test_symlink_loop_and_broken_symlink(tmp_path):
    loop = tmp_path / "loop.py"
    loop.symlink_to(tmp_path / "loop2.py")
    (tmp_path / "loop2.py").symlink_to(loop)
    result = _cli("translate", loop)
    assert result.exit_code == 2 and result.stderr.strip() == f"torch2jax: error: {loop}: symlink loop"
    dangling = tmp_path / "dangling.py"
    dangling.symlink_to(tmp_path / "nowhere.py")
    result = _cli("translate", dangling)
    assert result.exit_code == 2 and result.stderr.strip() == f"torch2jax: error: {dangling}: broken symlink"
    # a folder that links to itself is not followed
    folder = tmp_path / "proj"
    folder.mkdir()
    (folder / "self").symlink_to(folder)
    (folder / "a.py").write_text(GOOD)
    assert python_files(folder) == [folder / "a.py"]


def test_unreadable_file_one_line(tmp_path, monkeypatch):
    src = tmp_path / "secret.py"
    src.write_text(GOOD)
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "secret.py":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    result = _cli("translate", src)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"torch2jax: error: {src}: permission denied"


def test_folder_run_reports_every_failure_and_goes_on(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    root.mkdir()
    names = ["a_good.py", "b_syntax.py", "c_binary.py", "d_loop.py", "e_good.py", "f_undecodable.py", "g_good.py"]
    (root / "a_good.py").write_text(GOOD)
    (root / "b_syntax.py").write_text("import torch\ndef (:\n")
    (root / "c_binary.py").write_bytes(b"\x00torch")
    (root / "d_loop.py").symlink_to(root / "d_loop.py")
    (root / "e_good.py").write_text(GOOD)
    (root / "f_undecodable.py").write_bytes(b"x = '\xff\xfe'\n")
    (root / "g_good.py").write_text(GOOD)
    out = tmp_path / "out"
    result = _cli("translate", root, "-o", out, "-j", "1")
    assert result.exit_code == 2
    for bad in ("b_syntax.py:2: syntax error", "c_binary.py: binary file", "d_loop.py: symlink loop",
                "f_undecodable.py: cannot decode"):
        assert bad in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a_good.py", "e_good.py", "g_good.py"]
    assert all("jnp.sum" in (out / n).read_text() for n in ["a_good.py", "e_good.py", "g_good.py"])
    assert sorted(p.name for p in root.iterdir()) == names


def test_folder_write_error_reported_and_run_goes_on(tmp_path, monkeypatch):
    import torch2jax.files as files

    root = tmp_path / "proj"
    root.mkdir()
    for n in "abc":
        (root / f"{n}.py").write_text(GOOD)
    real = files.write_atomic

    def write_atomic(path, *args, **kwargs):
        if path.name == "b.py":
            raise OSError(28, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr("torch2jax.cli.write_atomic", write_atomic)
    result = _cli("translate", root, "-o", tmp_path / "out", "-j", "1")
    assert result.exit_code == 2
    assert f"{root / 'b.py'}" not in result.stderr  # the output path is named, not the input
    assert "b.py: cannot write: No space left on device" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.py", "c.py"]


# ----- 5. many files through the process pool

def test_folder_of_200_files_with_the_pool(tmp_path):
    root = tmp_path / "many"
    for i in range(200):
        sub = root / f"pkg{i % 7}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"m{i}.py").write_text(GOOD.replace("def f", f"def f{i}") if i % 3 else f"X = {i}\n")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "torch2jax", "translate", str(root), "-o", str(out), "-j", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = sorted(out.rglob("*.py"))
    assert len(written) == 200
    for path in written:
        i = int(path.stem[1:])
        text = path.read_text()
        assert ("jnp.sum" in text and f"def f{i}" in text) if i % 3 else text == f"X = {i}\n"


def test_dead_worker_does_not_stop_the_folder_run(tmp_path, monkeypatch):
    """A worker process that dies (here: every worker) costs nothing but time: the files are done in-process."""
    import torch2jax.cli as cli

    root = tmp_path / "proj"
    root.mkdir()
    for i in range(6):
        (root / f"m{i}.py").write_text(GOOD)
    monkeypatch.setattr(cli, "_translate_one", _die_in_worker)
    out = tmp_path / "out"
    result = _cli("translate", root, "-o", out, "-j", "2")
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.py"))) == 6


def _die_in_worker(path):
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        os._exit(1)
    from torch2jax.files import read_source

    return path, translate(read_source(path).text, filename=str(path)), "utf-8", ""


def test_write_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.py"
    real.write_text(GOOD)
    link = tmp_path / "link.py"
    link.symlink_to(real)
    assert _cli("translate", link, "--write").exit_code == 0
    assert link.is_symlink() and "jnp.sum" in real.read_text()
