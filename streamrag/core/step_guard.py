"""No exception leaves a step that handles outside data.

``StepGuard.wrap(stage, fn)`` runs a batch step; an unexpected exception (a bug, or input no check
foresaw) is logged with its traceback, counted (``streamrag_step_failures_total``) and isolated: the
batch is split in halves until the failing items are alone, and each of those becomes its record's
dead letter (stage, exception type and message, original bytes) while every other item goes on.
``TemporaryFailure`` is not caught: it stops the worker on purpose, with its offsets unmoved.

With a ``CrashLedger`` the guard also survives what no ``except`` can catch (a native crash, an
out-of-memory kill): the positions in hand are written down before each step call, so a restart
knows them. A record in hand at a crash becomes a suspect and is processed alone; a suspect in hand
at a second crash is dead-lettered at the restart after it (stage ``crash``) instead of processed again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from streamrag.core import telemetry
from streamrag.core.errors import TemporaryFailure
from streamrag.core.ports import CrashLedger, Position
from streamrag.core.records import RawRecord
from streamrag.schemas.vocabulary import DeadLetterStage, ErrorCode

log = logging.getLogger(__name__)
T = TypeVar("T")
U = TypeVar("U")

CRASH_STAGE: DeadLetterStage = "crash"


def failure_code(stage: DeadLetterStage) -> ErrorCode:
    """The code of a record the guard failed at ``stage``: the worker died twice on it, or a step raised."""
    return "crashed" if stage == CRASH_STAGE else "internal"


def position(rec: RawRecord | None) -> Position | None:
    if rec is None or rec.topic is None or rec.partition is None or rec.offset is None:
        return None
    return (rec.topic, rec.partition, rec.offset)


@dataclass(frozen=True)
class StepGuard(Generic[T, U]):
    """How one flow's items fail: ``record_of`` gives the input record of an item still being worked on
    (None once it is finished); ``fail(item, stage, reason)`` gives what replaces an item that failed."""

    flow: str
    record_of: Callable[[T], RawRecord | None]
    fail: Callable[[T, DeadLetterStage, str], list[U]]
    ledger: CrashLedger | None = None
    final_stage: DeadLetterStage | None = None  # a suspect through this step alone is cleared

    def wrap(self, stage: DeadLetterStage, fn: Callable[[Sequence[T]], list[U]]) -> Callable[[Sequence[T]], list[U]]:
        def run(batch: Sequence[T]) -> list[U]:
            return self.run(stage, fn, batch)

        return run

    def run(self, stage: DeadLetterStage, fn: Callable[[Sequence[T]], list[U]], batch: Sequence[T]) -> list[U]:
        ledger = self.ledger
        if ledger is None:
            return self._isolating(stage, fn, list(batch))
        out: list[U] = []
        together: list[T] = []
        for item in batch:  # in input order: runs of ordinary items together, suspects alone
            pos = position(self.record_of(item))
            if pos is not None and (ledger.convicted(pos) or ledger.suspect(pos)):
                out.extend(self._together(stage, fn, together, ledger))
                together = []
                out.extend(self._alone(stage, fn, item, pos, ledger))
            else:
                together.append(item)
        out.extend(self._together(stage, fn, together, ledger))
        return out

    def _together(self, stage: DeadLetterStage, fn: Callable[[Sequence[T]], list[U]], items: list[T],
                  ledger: CrashLedger) -> list[U]:
        if not items:
            return []
        held = [p for p in (position(self.record_of(i)) for i in items) if p is not None]
        with ledger.holding(stage, held):
            return self._isolating(stage, fn, items)

    def _alone(self, stage: DeadLetterStage, fn: Callable[[Sequence[T]], list[U]], item: T, pos: Position,
               ledger: CrashLedger) -> list[U]:
        if ledger.convicted(pos):
            telemetry.CRASH_DEAD_LETTERS.labels(self.flow).inc()
            log.error("dead-lettering %s: the worker died twice with it in hand", pos)
            ledger.cleared(pos)
            return self.fail(item, CRASH_STAGE, "the worker died twice with this record in hand (last in step "
                             f"{stage!r} or before); dead-lettered instead of processed again")
        with ledger.holding(stage, [pos]):  # one at a time: a crash now names the record
            out = self._isolating(stage, fn, [item])
        if stage == self.final_stage:
            ledger.cleared(pos)  # it went through every step alone: no longer a suspect
        return out

    def _isolating(self, stage: DeadLetterStage, fn: Callable[[Sequence[T]], list[U]], batch: list[T]) -> list[U]:
        if not batch:
            return []
        try:
            return fn(batch)
        except (TemporaryFailure, KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # BaseException too: a native library's panic (pyo3) is one
            telemetry.STEP_FAILURES.labels(self.flow, stage, type(exc).__name__).inc()
            if len(batch) > 1:
                log.warning("step %s.%s failed for a batch of %d (%s); isolating", self.flow, stage, len(batch),
                            _describe(exc))
                mid = len(batch) // 2
                return self._isolating(stage, fn, batch[:mid]) + self._isolating(stage, fn, batch[mid:])
            log.exception("step %s.%s failed for one record; dead-lettered", self.flow, stage)
            return self.fail(batch[0], stage, _describe(exc))

    def each(self, stage: DeadLetterStage, fn: Callable[[T], list[U]]) -> Callable[[T], list[U]]:
        """The same for a step that takes one item at a time."""

        def run(item: T) -> list[U]:  # conversion steps: isolated, not written to the ledger
            return self._isolating(stage, lambda batch: [o for i in batch for o in fn(i)], [item])

        return run


def _describe(exc: BaseException) -> str:
    """``Type: message`` (an exception whose message itself fails is still described)."""
    try:
        text = str(exc)
    except Exception:
        text = "(the exception's message could not be read)"
    return f"{type(exc).__name__}: {text[:1000]}"
