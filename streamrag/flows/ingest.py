"""Ingest dataflow, one named step per stage (``INGEST_STAGES``):

    documents topic -> parse -> redact -> newest -> stale_check -> chunk -> embed -> write -> events -> Kafka
                                                                                 (index events, dead letters)

The sink produces the index events and dead letters, flushes, and only then commits the offsets of
the records they answer to STREAMRAG_INGEST_GROUP. Index maintenance runs in a thread of its own.
A replay (tools.replay) runs the same steps in-process: ``run_steps`` and ``messages_of``.

Run as a long-lived worker:  streamrag worker ingest [-r RECOVERY_DIR]
or:                          python -m bytewax.run "streamrag.flows.ingest:main()"
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka import KafkaException

from streamrag.connectors.crash_ledger import FileCrashLedger, ledger_path
from streamrag.connectors.kafka_admin import check_reachable, ensure_topics, source_config
from streamrag.connectors.kafka_offsets import OffsetCommitter
from streamrag.connectors.kafka_sink import FlushThenCommitSink
from streamrag.connectors.lancedb_connect import use_object_store
from streamrag.connectors.metrics_server import observe_worker
from streamrag.core import telemetry
from streamrag.core.crypto import payload_cipher
from streamrag.core.ingest.changes import Finished, Item, Pending
from streamrag.core.ingest.routing import RoutedStages
from streamrag.core.ingest.stages import IngestSteps
from streamrag.core.ports import CrashLedger
from streamrag.core.records import Outgoing, RawRecord
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings, load_settings
from streamrag.core.step_guard import StepGuard, failure_code
from streamrag.flows.common import from_kafka, kafka_error_to_dead
from streamrag.flows.components import make_ingest_stages
from streamrag.flows.index_views import IndexViews
from streamrag.flows.maintenance import Maintainer
from streamrag.schemas.models import DeadLetter, IndexEvent
from streamrag.schemas.vocabulary import INGEST_STAGES, DeadLetterStage

log = logging.getLogger(__name__)


def stage_steps(raw: Stream[RawRecord], stages: IngestSteps, ledger: CrashLedger | None = None) -> Stream[Finished]:
    """The named steps from raw records to finished ones (shared by every ingest flow); no exception
    leaves a step: a record that raises is dead-lettered alone (core.step_guard)."""
    guard = ingest_guard(ledger)
    items: Stream[Any] = raw
    for name in INGEST_STAGES:
        items = op.flat_map_batch(name, items, guard.wrap(name, timed(name, partial(stages.run, name))))
    return op.filter_map("finished", items, lambda i: counted(i) if isinstance(i, Finished) else None)


def run_steps(stages: IngestSteps, records: Sequence[RawRecord], ledger: CrashLedger | None = None) -> list[Finished]:
    """The steps of ``stage_steps`` in-process over one batch (a replay): the same stages in the same order
    through the same guard and crash ledger, timed and counted alike."""
    guard = ingest_guard(ledger)
    items: list[Any] = list(records)
    for name in INGEST_STAGES:
        items = guard.run(name, timed(name, partial(stages.run, name)), items)
    return [counted(i) for i in items if isinstance(i, Finished)]


def ingest_guard(ledger: CrashLedger | None) -> StepGuard[Any, Any]:
    return StepGuard("ingest", record_of=_in_progress, fail=_failed, ledger=ledger, final_stage=INGEST_STAGES[-1])


def _in_progress(item: RawRecord | Item) -> RawRecord | None:
    if isinstance(item, RawRecord):
        return item
    return item.rec if isinstance(item, Pending) else None


def _failed(item: RawRecord | Item, stage: DeadLetterStage, reason: str) -> list[Item]:
    if isinstance(item, Finished):
        return [item]
    rec = item if isinstance(item, RawRecord) else item.rec
    return [Finished(rec, rec.dead(stage, failure_code(stage), reason))]


def timed(stage: str, fn: Callable[[Sequence[Any]], list[Any]]) -> Callable[[Sequence[Any]], list[Any]]:
    """The stage, observed in streamrag_stage_seconds{flow="ingest"} per batch."""
    hist = telemetry.STAGE_SECONDS.labels("ingest", stage)

    def run(batch: Sequence[Any]) -> list[Any]:
        with hist.time():
            return fn(batch)

    return run


def counted(f: Finished) -> Finished:
    out = f.output
    if isinstance(out, IndexEvent):
        telemetry.RECORDS.labels("ingest", out.status).inc()
        for flag in out.flags:
            telemetry.INJECTION_FLAGS.labels(flag).inc()
    else:
        telemetry.RECORDS.labels("ingest", "dead").inc()
        telemetry.DEAD_LETTERS.labels("ingest", out.stage, out.code or "internal").inc()
    return f


def to_message(s: Settings, f: Finished) -> Outgoing:
    """An index event (key tenant/doc_id) or a dead letter (the original key), with its record."""
    out = f.output
    if isinstance(out, IndexEvent):
        return Outgoing.of(s.topics.index_events, f"{out.tenant}/{out.doc_id}", out, f.rec)
    return Outgoing.of(s.topics.dead_letters, f.rec.key, out, f.rec)


def messages_of(settings: Settings) -> Callable[[Finished], list[Outgoing]]:
    """The ``events`` step: a finished record as its message (``to_message``); a record whose message cannot
    be made is dead-lettered alone."""
    guard: StepGuard[Finished, Outgoing] = StepGuard("ingest", record_of=lambda f: f.rec, fail=lambda f, st, why: [
        Outgoing.of(settings.topics.dead_letters, f.rec.key, f.rec.dead(st, "internal", why), f.rec)])
    return guard.each("events", lambda f: [to_message(settings, f)])


def build_flow(
    settings: Settings,
    *,
    source: Source[RawRecord] | None = None,
    sink: Sink[Any] | None = None,
    stages: IngestSteps | None = None,
    ledger: CrashLedger | None = None,
) -> Dataflow:
    """Kafka in and out by default. With ``source``/``sink`` (the embedded path and tests) the
    sink receives the finished outputs (IndexEvent | DeadLetter) instead of Kafka messages."""
    flow = Dataflow("ingest")
    stages = stages or make_ingest_stages(settings)
    if source is None:
        kin = kop.input(
            "in", flow, brokers=settings.brokers, topics=[settings.topics.documents],
            tail=True, batch_size=settings.worker.source_batch_size, add_config=source_config(settings.kafka),
        )
        raw = op.map("raw", kin.oks, from_kafka)
        consume_errors: Stream[DeadLetter] | None = op.map("consume_err", kin.errs, kafka_error_to_dead)
    else:
        raw = op.input("in", flow, source)
        consume_errors = None
    finished = stage_steps(raw, stages, ledger)
    if sink is not None:
        op.output("out", op.map("outputs", finished, lambda f: f.output), sink)
        return flow
    msgs = op.flat_map("events", finished, messages_of(settings))
    if consume_errors is not None:
        errs = op.map("consume_err_msg", consume_errors, lambda d: Outgoing.of(settings.topics.dead_letters, None, d))
        msgs = op.merge("all_out", msgs, errs)
    committer = _logged(OffsetCommitter(settings.kafka, settings.worker.ingest_group))
    op.output("kafka_out", msgs, FlushThenCommitSink(settings.kafka, settings.worker, sealer_for(settings), committer))
    return flow


def _logged(committer: OffsetCommitter) -> Any:
    """A failed offset commit loses nothing (the next batch commits past it): log it and go on."""

    def commit(positions: Any) -> None:
        try:
            committer.commit(positions)
        except KafkaException as exc:
            log.warning("ingest offset commit failed (next batch retries): %s", exc)

    return commit


def main(settings: Settings | None = None, process_id: int = 0) -> Dataflow:
    """Entry point for ``python -m bytewax.run "streamrag.flows.ingest:main()"``: settings read once here."""
    settings = settings or load_settings()
    use_object_store(settings.encryption)
    payload_cipher(settings)  # a production worker without encryption keys stops here, before the model loads
    check_reachable(settings.kafka)
    ensure_topics(settings.kafka, settings.topic_layout)
    views = IndexViews(settings).start(settings.worker.index_poll_s)  # writes follow the active index version
    views.current().embedder.embed(["warm up"])  # load the model before the first record arrives
    observe_worker(settings.kafka, settings.worker, "ingest", settings.worker.ingest_group, settings.topics.documents,
                   process_id)
    if settings.worker.maintenance == "thread":
        Maintainer(settings, views=views).start()
    ledger = FileCrashLedger(ledger_path(settings.worker.state_dir, "ingest", process_id), "ingest")
    return build_flow(settings, stages=RoutedStages(views.target, views.ingest_stages), ledger=ledger)
