"""Generation slots: up to ``concurrency`` jobs run at once, each one's results handed back the moment
it is done, to the worker thread that submitted it.

The query flow's source asks ``has_room()`` before it reads more records from Kafka, so a worker whose
slots are all busy and whose ``queue`` is full stops reading (bounded memory, no unbounded queue): what waits
is at most ``queue`` jobs and one source batch. A waiting job whose deadline passes gets ``on_expired``'s result at once instead of a slot.
Nothing raises out of a job: an exception becomes ``on_error``'s result.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
J = TypeVar("J")
O = TypeVar("O")  # noqa: E741


@dataclass(slots=True)
class _Waiting(Generic[J]):
    job: J
    owner: int
    deadline: float  # time.monotonic()


@dataclass
class SlotStats:
    submitted: int = 0
    finished: int = 0
    expired_waiting: int = 0
    errors: int = 0
    max_waiting: int = 0


class GenerationSlots(Generic[J, O]):
    """``run(job, emit)`` does the work in a pool thread; ``emit`` hands back results while it runs
    (answer deltas), its return value is the job's final results."""

    def __init__(
        self,
        concurrency: int,
        run: Callable[[J, Callable[[O], None]], list[O]],
        *,
        deadline_of: Callable[[J], float],
        on_expired: Callable[[J], list[O]],
        on_error: Callable[[J, Exception], list[O]],
        queue: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.queue = queue  # jobs that may wait for a slot beyond the concurrency
        self._run = run
        self._deadline_of = deadline_of
        self._on_expired = on_expired
        self._on_error = on_error
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="generate")
        self._lock = threading.Lock()
        self._waiting: deque[_Waiting[J]] = deque()
        self._running = 0
        self._done: dict[int, deque[O]] = {}
        self._wake: dict[int, threading.Event] = {}
        self._pending: dict[int, int] = {}  # jobs submitted by an owner whose final results are not back
        self.stats = SlotStats()

    # -- what the flow asks -----------------------------------------------------------------------
    def has_room(self) -> bool:
        """A free slot with nobody waiting for it, or room in the queue: the source may read more records."""
        with self._lock:
            return self._running + len(self._waiting) < self.concurrency + self.queue

    @property
    def busy(self) -> int:
        with self._lock:
            return self._running + len(self._waiting)

    def submit(self, jobs: list[J], owner: int | None = None, ahead: list[O] | None = None) -> None:
        """Queue jobs for the calling worker thread (``owner``); they start as slots free. ``ahead``: results
        handed back at once, before anything the jobs emit (a query's sources, while its job waits for a slot)."""
        if not jobs:
            return
        who = threading.get_ident() if owner is None else owner
        with self._lock:
            self._done.setdefault(who, deque()).extend(ahead or ())
            for j in jobs:
                self._waiting.append(_Waiting(j, who, self._deadline_of(j)))
            self._pending[who] = self._pending.get(who, 0) + len(jobs)
            self.stats.submitted += len(jobs)
            self.stats.max_waiting = max(self.stats.max_waiting, len(self._waiting))
        self._start_ready()

    def drain(self, owner: int | None = None) -> list[O]:
        """Results ready for this worker thread (jobs that expired while waiting answered first)."""
        who = threading.get_ident() if owner is None else owner
        self._expire_waiting()
        with self._lock:
            q = self._done.get(who)
            if not q:
                return []
            out = list(q)
            q.clear()
            return out

    def run_all(self, jobs: list[J]) -> list[O]:
        """Run jobs through the slots and return all their results once every one is done (the
        embedded path and flows over a finite test source, which end when their input ends)."""
        owner = id(object())  # a private owner: nobody else drains these results
        ev = threading.Event()
        with self._lock:
            self._wake[owner] = ev
        out: list[O] = []
        try:
            self.submit(jobs, owner)
            while True:
                out.extend(self.drain(owner))
                with self._lock:
                    if not self._pending.get(owner):
                        out.extend(self._done.pop(owner, ()))
                        return out
                    ev.clear()
                ev.wait(0.05)
        finally:
            with self._lock:
                self._wake.pop(owner, None)
                self._pending.pop(owner, None)
                self._done.pop(owner, None)


    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- inside ------------------------------------------------------------------------------------
    def _put(self, owner: int, items: list[O], final: bool = False) -> None:
        with self._lock:
            self._done.setdefault(owner, deque()).extend(items)
            if final:
                self._pending[owner] = self._pending.get(owner, 1) - 1
            ev = self._wake.get(owner)
        if ev is not None:
            ev.set()

    def _expire_waiting(self) -> None:
        now = time.monotonic()
        expired: list[_Waiting[J]] = []
        with self._lock:
            if self._waiting and any(w.deadline <= now for w in self._waiting):
                keep = deque(w for w in self._waiting if w.deadline > now)
                expired = [w for w in self._waiting if w.deadline <= now]
                self._waiting = keep
                self.stats.expired_waiting += len(expired)
        for w in expired:
            self._put(w.owner, self._safe(self._on_expired, w.job), final=True)

    def _start_ready(self) -> None:
        while True:
            with self._lock:
                if self._running >= self.concurrency or not self._waiting:
                    return
                w = self._waiting.popleft()
                if w.deadline <= time.monotonic():
                    self.stats.expired_waiting += 1
                    expired = True
                else:
                    self._running += 1
                    expired = False
            if expired:
                self._put(w.owner, self._safe(self._on_expired, w.job), final=True)
            else:
                self._pool.submit(self._work, w)

    def _safe(self, fn: Callable[[J], list[O]], job: J) -> list[O]:
        try:
            return fn(job)
        except Exception as exc:
            log.exception("a generation job's fallback failed")
            self.stats.errors += 1
            return self._on_error(job, exc)

    def _work(self, w: _Waiting[J]) -> None:
        try:
            out = self._run(w.job, lambda item: self._put(w.owner, [item]))
        except Exception as exc:  # nothing raises out of a job: its record gets an error result
            log.exception("a generation job failed")
            self.stats.errors += 1
            out = self._on_error(w.job, exc)
        finally:
            with self._lock:
                self._running -= 1
                self.stats.finished += 1
        self._put(w.owner, out, final=True)
        self._start_ready()
