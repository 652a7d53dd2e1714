"""User code runs in other processes, with a time limit and a memory limit: a crash, a hang or an exception in it
becomes a result line, never the checker's end.

Three levels:

- the checker (the caller of `check`) imports neither torch nor jax; it talks to
- a *zygote*: `python -m torch2jax.check.isolation`, which imports torch, jax, equinox, hypothesis and the checker's
  worker code once (a few seconds) and never computes, so it can fork safely; it forks
- a *worker*, which serves the requests (load a pair of files, check one entry at one stage) one at a time. The
  zygote waits for each reply for at most that request's timeout; past it, or when the worker dies (a segfault,
  `os._exit`, the memory limit), the zygote kills the worker's process group, answers with a timeout/crash
  status, and forks a fresh worker for the next request (cheap: no re-import).

The memory limit is RLIMIT_AS, set in the worker to the zygote's address space plus `memory_mb`. Compiled XLA
executables are cached on disk (jax's persistent compilation cache, `$TORCH2JAX_CHECK_CACHE` or
~/.cache/torch2jax/jax) so that a fresh worker does not compile jnp's eager operations again.

Protocol: one JSON object per line each way. User code's prints go to the worker's log file, never the protocol.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

STARTUP_TIMEOUT = 300.0  # importing torch and jax on a loaded machine can take a minute


def _cache_dir() -> str:
    env = os.environ.get("TORCH2JAX_CHECK_CACHE")
    if env is not None:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "torch2jax", "jax")


# ============================================================================================ the checker's side
class WorkerPool:
    """The checker's handle on a zygote (started on first use, restarted if it dies)."""

    def __init__(self, memory_mb: int = 4096, env: dict | None = None):
        self.memory_mb = memory_mb
        self.env = env
        self.proc: subprocess.Popen | None = None
        self._buf = b""
        self._log = None

    def _start(self) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("JAX_PLATFORMS", "cpu")  # numbers compared at CPU precision (no TF32 matmuls)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["PYTHONUNBUFFERED"] = "1"
        self._log = tempfile.TemporaryFile()
        with warnings.catch_warnings():  # a caller that uses jax itself: fork + exec is safe, jax's warning is noise
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "torch2jax.check.isolation", str(self.memory_mb)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env)
        self._buf = b""
        ready = self._read(STARTUP_TIMEOUT)
        if ready is None or not ready.get("ready"):
            tail = self._log_tail()
            self.close()
            raise RuntimeError(f"the checker's worker did not start: {ready!r}\n{tail}")

    def _log_tail(self, n: int = 3000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n:]

    def _read(self, timeout: float) -> dict | None:
        """One JSON line from the zygote, or None when it died or stayed silent for `timeout` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, request: dict, timeout: float) -> dict:
        """Send one request; the reply, or {"status": "timeout"|"crash", ...} when the worker did not answer."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        request = dict(request, timeout=timeout)
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return {"status": "crash", "detail": "the checker's worker exited"}
        reply = self._read(timeout + 60.0)  # the zygote enforces `timeout`; this guards against the zygote itself
        if reply is None:
            tail = self._log_tail()
            self.close()
            return {"status": "crash", "detail": "the checker's worker stopped answering", "log": tail}
        return reply

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.stdin.write(b'{"op": "shutdown"}\n')
                    self.proc.stdin.flush()
                    self.proc.wait(timeout=5)
                except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def limit_memory(memory_mb: int) -> None:
    """RLIMIT_AS for a fresh process running user code (a preexec_fn): `memory_mb` of address space."""
    import resource

    limit = int(memory_mb) << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


# ============================================================================================ the zygote
def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


class _Worker:
    def __init__(self, memory_mb: int):
        self.log = tempfile.NamedTemporaryFile(prefix="t2j-check-", suffix=".log", delete=False)
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the worker
            try:
                os.setpgid(0, 0)
                os.close(self.to_child)
                os.close(self.from_child)
                if memory_mb > 0:
                    import resource

                    limit = _vm_size() + (int(memory_mb) << 20)
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                os.dup2(self.log.fileno(), 1)
                os.dup2(self.log.fileno(), 2)
                sys.stdin = open(os.devnull)
                _worker_loop(to_child_r, from_child_w)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(0)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b""

    def log_tail(self, n: int = 2000) -> str:
        try:
            with open(self.log.name, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log.name) - n))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def request(self, req: dict, timeout: float) -> dict:
        try:
            os.write(self.to_child, (json.dumps(req) + "\n").encode())
        except OSError:
            return self._dead()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return {"status": "timeout", "detail": f"no answer within {timeout:g} s (killed)",
                        "log": self.log_tail()}
            ready, _, _ = select.select([self.from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_child, 1 << 16)
            if not chunk:
                return self._dead()
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def _dead(self) -> dict:
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            what = f"killed by signal {sig} ({signal.Signals(sig).name})"
        else:
            what = f"exited with status {os.WEXITSTATUS(status)}"
        self.close()
        return {"status": "crash", "detail": f"the process running it {what}", "log": self.log_tail()}

    def kill(self) -> None:
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None
        self.close()

    def close(self) -> None:
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_child = self.from_child = -1
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    @property
    def alive(self) -> bool:
        return self.pid is not None


def _preimport() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import numpy  # noqa: F401
    import torch  # noqa: F401
    import jax

    cache = _cache_dir()
    if cache:
        try:
            os.makedirs(cache, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        except Exception:  # an old jax, a read-only home: go without the cache
            pass
    import equinox  # noqa: F401
    import hypothesis  # noqa: F401
    import hypothesis.extra.numpy  # noqa: F401

    import torch2jax.runtime  # noqa: F401
    from torch2jax.check import worker  # noqa: F401


def _zygote(memory_mb: int) -> None:
    proto_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed goes to stderr, not the protocol
    sys.stdout = sys.stderr

    def send(obj):
        proto_out.write(json.dumps(obj, default=str) + "\n")
        proto_out.flush()

    try:
        _preimport()
    except BaseException as e:  # noqa: BLE001
        send({"ready": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
        return
    send({"ready": True, "pid": os.getpid()})
    worker: _Worker | None = None
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "shutdown":
            break
        if worker is None or not worker.alive:
            worker = _Worker(memory_mb)
        reply = worker.request(req, float(req.get("timeout", 60)))
        send(reply)
    if worker is not None and worker.alive:
        worker.kill()


def _worker_loop(fd_in: int, fd_out: int) -> None:
    from torch2jax.check import worker

    out = os.fdopen(fd_out, "w")
    for line in os.fdopen(fd_in):
        req = json.loads(line)
        try:
            reply = worker.handle(req)
        except BaseException as e:  # noqa: BLE001  (the checker's own bug: report it, keep serving)
            reply = {"status": "error", "detail": f"checker error: {type(e).__name__}: {e}",
                     "traceback": traceback.format_exc()}
        out.write(json.dumps(reply, default=str) + "\n")
        out.flush()


if __name__ == "__main__":
    _zygote(int(sys.argv[1]) if len(sys.argv) > 1 else 4096)
