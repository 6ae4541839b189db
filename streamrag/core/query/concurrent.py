"""The query flow's answering steps around the generation slots.

``retrieve`` (a batch: cache, embed, retrieve, rerank) and ``generate`` (hands each retrieved query to a
generation slot; what is answered already passes on). A streaming query's sources leave first, the moment it is
retrieved (from ``retrieve`` ahead of a cached answer; from ``generate`` ahead of its job, which may wait for a
slot while the model is busy). A query's answer deltas and its final answer come
back from the slots the moment they are written (``drain``), so no answer waits for another; with
``wait=True`` (the embedded path, flows over a finite test source) ``generate`` returns them all itself.

With a crash ledger, a generation slot holds its query's position while the model runs, so a worker that
dies inside the model (a native crash, an out-of-memory kill) knows after its restart which queries were
in hand; those are answered without the model (extractively) instead of being handed to it again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamrag.core import telemetry
from streamrag.core.ports import CrashLedger
from streamrag.core.query.deltas import Delta, EmittedDeltas
from streamrag.core.query.processor import (
    Output,
    Parsed,
    Prepared,
    QueryProcessor,
    Reply,
    error_answer,
    expired,
)
from streamrag.core.query.slots import GenerationSlots
from streamrag.core.records import RawRecord
from streamrag.core.step_guard import position
from streamrag.schemas.models import Answer, Query

Emitted = tuple[RawRecord, Output | Delta]
Retrieved = tuple[RawRecord, Prepared | Output | Delta]
WAITED_TOO_LONG = "deadline: no generation slot came free before the query's deadline"
IN_HAND_AT_A_CRASH = "crash: the worker died while this query was being generated; answered without the model"


@dataclass(frozen=True, slots=True)
class Job:
    record: RawRecord
    prepared: Prepared


class ConcurrentAnswering:
    def __init__(self, processor: QueryProcessor, concurrency: int, *, wait: bool = False,
                 ledger: CrashLedger | None = None, queue: int = 0) -> None:
        self.processor = processor
        self.wait = wait
        self.ledger = ledger
        self.slots: GenerationSlots[Job, Emitted] = GenerationSlots(
            concurrency, self._run, deadline_of=lambda j: j.prepared.deadline, on_expired=self._expired,
            on_error=self._error, queue=queue,
        )

    def retrieve(self, items: Sequence[tuple[RawRecord, Parsed]]) -> list[Retrieved]:
        todo = [(rec, q) for rec, q in items if isinstance(q, Query)]
        out: list[Retrieved] = [(rec, o) for rec, o in items if not isinstance(o, Query)]
        ready = self.processor.prepare([q for _, q in todo])
        for (rec, q), r in zip(todo, ready, strict=True):
            if not isinstance(r, Prepared):
                out.extend(self._sources(rec, q, r))  # a cached answer's: ahead of it
            out.append((rec, r if isinstance(r, Prepared) else Reply(r, q.reply_to, q)))
        return out

    def generate(self, items: Sequence[Retrieved]) -> list[Emitted]:
        jobs = [Job(rec, p) for rec, p in items if isinstance(p, Prepared)]
        out: list[Emitted] = [(rec, o) for rec, o in items if not isinstance(o, Prepared)]
        if self.ledger is not None:
            for j in [j for j in jobs if self._in_hand_at_a_crash(j)]:
                out.extend([*self._sources(j.record, j.prepared.query, j.prepared), self._without_model(j)])
            jobs = [j for j in jobs if not self._in_hand_at_a_crash(j)]
        # each streaming query's sources leave now, not when a slot comes free for it
        ahead = [s for j in jobs for s in self._sources(j.record, j.prepared.query, j.prepared)]
        if self.wait:
            out.extend([*ahead, *self.slots.run_all(jobs)])
        else:
            self.slots.submit(jobs, ahead=ahead)
        return out

    def _sources(self, rec: RawRecord, q: Query, r: Prepared | Answer) -> list[Emitted]:
        """A streaming query's sources message (none when it does not stream, or for an error answer)."""
        sources = self.processor.sources(q, r) if q.options.stream else None
        topic = q.reply_to or self.processor.s.topics.answers
        return [] if sources is None else [(rec, Delta(sources, topic))]

    def drain(self) -> list[Emitted]:
        return self.slots.drain()

    def has_room(self) -> bool:
        telemetry.GENERATION_SLOTS_BUSY.set(self.slots.busy)
        return self.slots.has_room()

    def _in_hand_at_a_crash(self, job: Job) -> bool:
        pos = position(job.record)
        return self.ledger is not None and pos is not None and (self.ledger.suspect(pos) or self.ledger.convicted(pos))

    def _without_model(self, job: Job) -> Emitted:
        q = job.prepared.query
        return job.record, Reply(self.processor.extractive(job.prepared, IN_HAND_AT_A_CRASH), q.reply_to, q)

    # -- in a generation slot ----------------------------------------------------------------------
    def _run(self, job: Job, emit: Callable[[Emitted], None]) -> list[Emitted]:
        p = job.prepared
        q = p.query
        stream = None
        if self.processor.s.generation.stream_deltas or q.options.stream:
            stream = EmittedDeltas(q.query_id, q.reply_to or self.processor.s.topics.answers,
                                   lambda d: emit((job.record, d)), tenant=q.tenant)
        pos = position(job.record)
        if self.ledger is None or pos is None:
            return [(job.record, self.processor.reply(p, stream))]
        with self.ledger.holding("generate", [pos]):  # on file while the model runs: a crash here is known
            return [(job.record, self.processor.reply(p, stream))]

    def _expired(self, job: Job) -> list[Emitted]:
        q = job.prepared.query
        ans = error_answer(q, "deadline_exceeded", "deadline exceeded") if expired(q) else self.processor.extractive(job.prepared, WAITED_TOO_LONG)
        return [(job.record, Reply(ans, q.reply_to, q))]

    def _error(self, job: Job, exc: Exception) -> list[Emitted]:
        q = job.prepared.query
        why = f"{type(exc).__name__}: {exc}"
        return [(job.record, job.record.dead("generate", "generation_failed", why)),
                (job.record, Reply(error_answer(q, "generation_failed", f"internal error: {why}"), q.reply_to, q))]
