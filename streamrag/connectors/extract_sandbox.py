"""PDF, DOCX and HTML read in warm child processes with time and memory limits (#34): a file that makes its
reader spin or swell is killed together with its child and becomes a dead letter at ``extract`` that names
the limit; the next file is read by a fresh child, and the worker itself never stalls or swells.

A child is ``python -m streamrag.connectors.extract_sandbox``, a process of its own: not a fork of a worker
that runs threads and holds a model, and not a multiprocessing ``spawn`` child (which first imports the
parent's ``__main__``: the whole CLI). It imports only the extractors, closes core dumps, caps its address
space (RLIMIT_AS = STREAMRAG_EXTRACT_MEMORY_MB), says it is ready, then reads one file at a time from its
stdin. Before each file its CPU limit (RLIMIT_CPU) is set to the CPU time it has used plus
STREAMRAG_EXTRACT_TIMEOUT_S; the parent kills it when the wall clock passes the same timeout. Replies are
JSON (blocks, title, pages), never pickle: a child that a hostile file took over can send back only data.

Not ``concurrent.futures.ProcessPoolExecutor``: it cannot kill the one worker that is stuck (a dead worker
breaks the whole pool, failing every file in flight), and its spawned workers import the parent's main module.
Children start on first use (plain-text ingest starts none) and are kept warm: a file costs a pipe round
trip, not a process start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from streamrag.core.extraction import FORMAT_NAMES, Block, Extracted, ExtractionFailed
from streamrag.core.lazy import import_named

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">Q")
_MAX_REPLY = 64 << 20  # an extraction's JSON; far past any text STREAMRAG_MAX_DOC_CHARS lets through
# what a child sees of the environment: no credentials of the worker (a reader a hostile file took over finds none)
_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "HOME", "VIRTUAL_ENV", "PYTHONHASHSEED")
_KINDS = ("heading", "text", "row")


# -- framing and the reply's JSON -------------------------------------------------------------------------
def _write(fh: IO[bytes], payload: bytes) -> None:
    fh.write(_FRAME.pack(len(payload)))
    fh.write(payload)
    fh.flush()


class _TooLarge(Exception):
    pass


def _read(fh: IO[bytes], limit: int) -> bytes | None:
    """One frame, or None at the end of the stream (the other side is gone)."""
    head = fh.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (n,) = _FRAME.unpack(head)
    if n > limit:
        raise _TooLarge(f"{n} bytes")
    body = fh.read(n)
    return body if len(body) == n else None


def _encode(got: Extracted) -> dict[str, Any]:
    return {"title": got.title, "pages": got.pages,
            "blocks": [[b.text, b.kind, b.page, list(b.section), b.header] for b in got.blocks]}


def _decode(obj: dict[str, Any]) -> Extracted:
    """The reply's blocks, their types checked (a child is not trusted to send what it should)."""
    blocks = []
    paths: dict[tuple[Any, ...], tuple[str, ...]] = {(): ()}
    for text, kind, page, section, header in obj["blocks"]:
        path = paths.get(key := tuple(section))
        if path is None:
            path = paths[key] = tuple(str(t) for t in key)
        if type(text) is not str or type(header) is not str or kind not in _KINDS or not (page is None or type(page) is int):
            raise ValueError("a block of the wrong shape")
        blocks.append(Block(text, kind, page, path, header))
    return Extracted(tuple(blocks), str(obj["title"]), int(obj["pages"]))


# -- the child --------------------------------------------------------------------------------------------
def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _vm_peak() -> int:
    """The most address space this process has held (bytes; 0 where /proc does not say)."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _one(extractors: Mapping[str, Any], req: dict[str, Any], data: bytes, limit: int) -> dict[str, Any]:
    ctype = str(req["type"])
    try:
        return {"ok": _encode(extractors[ctype].extract(data))}
    except MemoryError:
        return {"memory": True}
    except Exception as exc:  # a library's error on these bytes is a property of this file alone
        if _vm_peak() >= 0.9 * limit:  # a C library (libxml2) that could not allocate says so in its own words
            return {"memory": True}
        if isinstance(exc, ExtractionFailed):
            return {"failed": str(exc)}
        return {"failed": f"unreadable {FORMAT_NAMES.get(ctype, ctype)}: {type(exc).__name__}: {exc}"[:2_000]}


def serve(specs: Mapping[str, str], memory_mb: int, timeout_s: float) -> None:
    """The child's loop: extract each file sent on stdin, reply on stdout; return at the end of stdin."""
    stdin = sys.stdin.buffer
    stdout = os.fdopen(os.dup(1), "wb")  # the replies' own descriptor; whatever a library prints goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    extractors = {t: import_named(spec)() for t, spec in specs.items()}
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    _write(stdout, b'{"ready": true}')
    while True:
        head = _read(stdin, 1 << 16)
        data = _read(stdin, 1 << 34) if head is not None else None
        if head is None or data is None:
            return
        soft = math.ceil(_cpu_s() + timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (soft if cpu_hard == resource.RLIM_INFINITY else min(soft, cpu_hard),
                                                 cpu_hard))
        reply = _one(extractors, json.loads(head), data, limit)
        del data
        # a child that ran out of memory, or came close, is not trusted with the next file: it says so and ends
        last = "memory" in reply or _vm_peak() >= 0.9 * limit
        _write(stdout, orjson.dumps({**reply, "last": last}))
        if last:
            return


# -- the parent -------------------------------------------------------------------------------------------
class _Child:
    """One warm child process and its pipes."""

    def __init__(self, specs: Mapping[str, str], memory_mb: int, timeout_s: float, start_timeout_s: float) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the child imports this same streamrag
        env = {k: v for k, v in os.environ.items() if k in _ENV}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps({"specs": dict(specs), "memory_mb": memory_mb,
                                                         "timeout_s": timeout_s})],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        self.killed = False
        ready = self._exchange(None, b"", start_timeout_s)
        if ready is None or not ready.get("ready"):
            self.close()
            raise ExtractionFailed(f"the extraction process did not start ({self._death()})")

    def _kill(self) -> None:
        self.killed = True
        self.proc.kill()

    def _exchange(self, req: dict[str, Any] | None, data: bytes, timeout_s: float) -> dict[str, Any] | None:
        """Send a file (None: only wait for the greeting) and read the reply; None if the child died or was
        killed at the deadline."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        watchdog = threading.Timer(timeout_s, self._kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            if req is not None:
                _write(self.proc.stdin, json.dumps(req).encode())
                _write(self.proc.stdin, data)
            raw = _read(self.proc.stdout, _MAX_REPLY)
            return orjson.loads(raw) if raw is not None else None
        except _TooLarge as exc:  # the rest of it is still in the pipe: this child is done
            self._kill()
            return {"failed": f"extracted text too large: {exc} of it (at most {_MAX_REPLY})", "last": True}
        except (OSError, ValueError):  # a broken pipe, a malformed reply: the child is gone or not to be trusted
            self._kill()
            return None
        finally:
            watchdog.cancel()

    def extract(self, ctype: str, data: bytes, timeout_s: float, memory_mb: int) -> Extracted:
        reply = self._exchange({"type": ctype}, data, timeout_s)
        if reply is None:
            self.close()
            if self.killed:
                raise ExtractionFailed(f"over the {timeout_s:g} s extraction time limit (STREAMRAG_EXTRACT_TIMEOUT_S)")
            if self.proc.returncode == -signal.SIGXCPU:
                raise ExtractionFailed(f"over the {timeout_s:g} s extraction CPU time limit (STREAMRAG_EXTRACT_TIMEOUT_S)")
            raise ExtractionFailed(f"the extraction process died reading this file ({self._death()}; "
                                   f"memory limit {memory_mb} MB)")
        if reply.get("last"):
            self.close()
        if "memory" in reply:
            raise ExtractionFailed(f"over the {memory_mb} MB extraction memory limit (STREAMRAG_EXTRACT_MEMORY_MB)")
        if "failed" in reply:
            raise ExtractionFailed(str(reply["failed"]))
        try:
            return _decode(reply["ok"])
        except (KeyError, TypeError, ValueError) as exc:
            self.close()
            raise ExtractionFailed(f"the extraction process sent a malformed reply: {exc}") from exc

    def _death(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        for fh in (self.proc.stdin, self.proc.stdout):
            if fh is not None:
                with contextlib.suppress(OSError):
                    fh.close()
        self.proc.wait()


class ExtractionSandbox:
    """Up to ``processes`` warm children; each file is read by an idle one (or one started for it). A child
    past a limit is killed and dropped: the next file gets a new one."""

    def __init__(self, specs: Mapping[str, str], *, timeout_s: float, memory_mb: int, processes: int = 1,
                 start_timeout_s: float = 120.0) -> None:
        self.specs = dict(specs)  # content type -> "module:Extractor" (imported in the child)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.start_timeout_s = start_timeout_s
        self._slots = threading.BoundedSemaphore(processes)
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self.started = 0  # children started (the first and every replacement)
        weakref.finalize(self, ExtractionSandbox._close_all, self._idle, self._lock)

    def extractors(self) -> dict[str, SandboxedExtractor]:
        return {t: SandboxedExtractor(self, t) for t in self.specs}

    def extract(self, ctype: str, data: bytes) -> Extracted:
        with self._slots:
            with self._lock:
                child = self._idle.pop() if self._idle else None
            if child is None or not child.alive:
                if child is not None:
                    child.close()
                t0 = time.monotonic()
                child = _Child(self.specs, self.memory_mb, self.timeout_s, self.start_timeout_s)
                self.started += 1
                log.info("extraction process %d started in %.2f s", child.proc.pid, time.monotonic() - t0)
            try:
                got = child.extract(ctype, data, self.timeout_s, self.memory_mb)
            finally:
                if child.alive and not child.killed:  # a child the watchdog fired at is not used again
                    with self._lock:
                        self._idle.append(child)
                else:
                    child.close()
            return got

    @staticmethod
    def _close_all(idle: list[_Child], lock: threading.Lock) -> None:
        with lock:
            children, idle[:] = list(idle), []
        for c in children:
            c.close()

    def close(self) -> None:
        ExtractionSandbox._close_all(self._idle, self._lock)


class SandboxedExtractor:
    """The ``Extractor`` of one content type, read in the sandbox's children."""

    def __init__(self, sandbox: ExtractionSandbox, content_type: str) -> None:
        self.sandbox = sandbox
        self.content_type = content_type

    def extract(self, data: bytes) -> Extracted:
        return self.sandbox.extract(self.content_type, data)


if __name__ == "__main__":
    _conf = json.loads(sys.argv[1])
    serve(_conf["specs"], int(_conf["memory_mb"]), float(_conf["timeout_s"]))
