"""Reading and writing source files safely: encodings, binary files, atomic writes."""
from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path

from torch2jax.result import Translation


class InputError(Exception):
    """A path that cannot be read as Python source: the message is one line for the user."""


@dataclass
class Source:
    text: str
    encoding: str  # as tokenize reports it; "utf-8-sig" when the file starts with a BOM


def read_source(path: Path) -> Source:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{path}: symlink loop") from None
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if b"\x00" in data:
        raise InputError(f"{path}: binary file, not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot decode as Python source ({e.__class__.__name__}: {e})") from None
    if encoding == "utf-8-sig":
        text = text.removeprefix("\ufeff")
    return Source(text, encoding)


def translate_file(path: str | os.PathLike) -> Translation:
    """Translate one file. Raises InputError when the path cannot be read as Python source."""
    from torch2jax.pipeline import translate

    path = Path(path)
    return translate(read_source(path).text, filename=str(path))


def write_atomic(path: Path, text: str, encoding: str = "utf-8", like: Path | None = None) -> None:
    """Write through a temporary file in the same folder and a rename: a killed run never leaves half a file.
    `like`: copy that file's permission bits (the file being replaced)."""
    data = text.encode(encoding)  # utf-8-sig writes the BOM back
    if path.is_symlink():  # write the file it links to: the link stays a link
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        with _signals_held():  # a SIGTERM between creating the temp file and knowing its name would leak it
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".t2j-tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if like is not None and like.exists():
            os.chmod(tmp, like.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _signals_held():
    """SIGTERM and SIGINT wait until the block is done (their handlers then run); a no-op where the OS has no
    signal masks."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def python_files(folder: Path) -> list[Path]:
    """Every .py file under folder, sorted, not following symlinked folders (no loops)."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        out += [Path(root) / f for f in sorted(files) if f.endswith(".py")]
    return out
