"""The crash ledger as a small JSON file per flow and process (STREAMRAG_STATE_DIR).

Before each step call the worker writes the positions it is about to process, and clears them after.
A file that still holds positions when the worker starts means it died with them in hand: those
records become suspects (each is then processed alone), and a suspect that was in hand again at the
next crash is convicted (dead-lettered at the restart after, see core.step_guard). Restarts after a
crash are counted in the file, shown by ``streamrag status`` and the ``streamrag_worker_crash_restarts``
gauge. Writes are atomic (a temporary file renamed over the ledger); a process crash keeps them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from streamrag.core import telemetry
from streamrag.core.ports import Position
from streamrag.schemas.vocabulary import WorkerKind

log = logging.getLogger(__name__)

KEEP = 10_000  # suspects and convicts remembered (oldest forgotten first)
LEDGER_SUFFIX = ".crash-ledger.json"


def ledger_path(state_dir: str, flow: WorkerKind, process_id: int) -> Path:
    return Path(state_dir).expanduser() / f"{flow}-{process_id}{LEDGER_SUFFIX}"


def replay_ledger_path(state_dir: str, index: str) -> Path:
    """The ledger of replays into index version ``index`` (their positions are its replay group's)."""
    return Path(state_dir).expanduser() / f"replay-{index}{LEDGER_SUFFIX}"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def in_hand_path(path: Path) -> Path:
    """What is in hand lives beside the ledger, rewritten in place at every step call (the ledger itself only
    changes at a crash, a suspect cleared or a record dead-lettered)."""
    return path.with_name(path.name + ".in-hand")


def read_ledger(path: Path) -> dict[str, Any]:
    """The ledger's contents with what was in hand ({} when there is none or it cannot be read)."""
    data = _read_json(path)
    data = data if isinstance(data, dict) else {}
    in_hand = _read_json(in_hand_path(path))
    return {**data, "in_hand": in_hand if isinstance(in_hand, list) else []}


def _count(raw: Any) -> int:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0 else 0


def _positions(raw: Any) -> list[Position]:
    out: list[Position] = []
    for p in raw if isinstance(raw, list) else []:
        if isinstance(p, list) and len(p) == 3 and isinstance(p[0], str) and isinstance(p[1], int) \
                and isinstance(p[2], int):
            out.append((p[0], p[1], p[2]))
    return out


class FileCrashLedger:
    def __init__(self, path: Path, flow: WorkerKind) -> None:
        self.path = path
        self.flow = flow
        self._lock = threading.Lock()
        self._in_hand: dict[int, tuple[str, list[Position]]] = {}  # worker thread -> (stage, positions)
        data = read_ledger(path)
        self.suspects: dict[Position, None] = dict.fromkeys(_positions(data.get("suspects")))
        self.convicts: dict[Position, None] = dict.fromkeys(_positions(data.get("convicted")))
        self.crash_restarts = _count(data.get("crash_restarts"))
        self.dead_lettered = _count(data.get("dead_lettered"))  # records dead-lettered for killing it
        last = data.get("last_crash")
        self.last_crash: dict[str, Any] | None = last if isinstance(last, dict) else None
        in_hand = data.get("in_hand")
        died_with = [(str(h.get("stage")), _positions(h.get("positions")))
                     for h in (in_hand if isinstance(in_hand, list) else []) if isinstance(h, dict)]
        self.write_failures = 0
        self._fd: int | None = None
        if any(ps for _, ps in died_with):
            self._after_crash(died_with)  # the ledger holds them now: nothing is in hand any more
            self._save_in_hand()
        telemetry.CRASH_RESTARTS.labels(flow).set(self.crash_restarts)

    def _after_crash(self, died_with: list[tuple[str, list[Position]]]) -> None:
        self.crash_restarts += 1
        self.last_crash = {"at": time.time(), "stage": died_with[0][0],
                           "positions": [list(p) for _, ps in died_with for p in ps][:20]}
        alone = sum(len(ps) for _, ps in died_with) == 1  # with others in hand (generation slots), it may be theirs
        for _, ps in died_with:
            for p in ps:
                if p in self.suspects and alone:
                    self.convicts[p] = None
                else:
                    self.suspects[p] = None
        log.error("%s worker restarted after dying with %d record(s) in hand (step %s): suspects are processed "
                  "alone, a record that kills it twice is dead-lettered", self.flow,
                  sum(len(ps) for _, ps in died_with), died_with[0][0])
        self._save()

    # -- CrashLedger -----------------------------------------------------------------------------
    def convicted(self, pos: Position) -> bool:
        return pos in self.convicts

    def suspect(self, pos: Position) -> bool:
        return pos in self.suspects

    def cleared(self, pos: Position) -> None:
        """A suspect went through the whole flow alone, or a convict was dead-lettered: forget it."""
        with self._lock:
            was_suspect = self.suspects.pop(pos, 0) is None
            was_convict = self.convicts.pop(pos, 0) is None
            self.dead_lettered += int(was_convict)
            if was_suspect or was_convict:
                self._save()

    @contextlib.contextmanager
    def holding(self, stage: str, positions: Sequence[Position]) -> Iterator[None]:
        if not positions:
            yield
            return
        me = threading.get_ident()
        with self._lock:
            self._in_hand[me] = (stage, list(positions))
            self._save_in_hand()
        try:
            yield
        except Exception:  # the step raised (its guard deals with it): the process lives on
            self._release(me)
            raise
        except BaseException:  # a native panic or an exit: the process is going down with these in hand
            raise
        self._release(me)

    def _release(self, me: int) -> None:
        with self._lock:
            self._in_hand.pop(me, None)
            self._save_in_hand()

    # -- the file --------------------------------------------------------------------------------
    def _save(self) -> None:
        for d in (self.suspects, self.convicts):
            while len(d) > KEEP:
                del d[next(iter(d))]
        data = {
            "flow": self.flow, "crash_restarts": self.crash_restarts, "dead_lettered": self.dead_lettered,
            "last_crash": self.last_crash,
            "suspects": [list(p) for p in self.suspects], "convicted": [list(p) for p in self.convicts],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        """A full or read-only disk costs the crash protection, never the worker."""
        self.write_failures += 1
        telemetry.CRASH_LEDGER_WRITE_FAILURES.labels(self.flow).inc()
        if self.write_failures == 1:
            log.error("the %s crash ledger %s cannot be written (%s): going on without it", self.flow, self.path, exc)

    def _save_in_hand(self) -> None:
        """One write into a file kept open (no rename, no directory operation): the hot path's only cost."""
        data = json.dumps([{"stage": st, "positions": [list(p) for p in ps]} for st, ps in self._in_hand.values()])
        try:
            if self._fd is None:
                path = in_hand_path(self.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            raw = data.encode()
            os.pwrite(self._fd, raw, 0)
            os.ftruncate(self._fd, len(raw))
        except OSError as exc:
            self._write_failed(exc)
