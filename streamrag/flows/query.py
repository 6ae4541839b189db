"""Query dataflow, named steps:

    queries topic -> parse -> answer -> messages -> Kafka (answers or the query's reply_to, dead letters)

The sink produces, flushes, and only then hands the answered offsets to a background committer
(STREAMRAG_QUERY_GROUP, every few seconds): a restart resumes after what was answered.

Run as a long-lived worker:  streamrag worker query   or   python -m bytewax.run "streamrag.flows.query:main()"
"""

from __future__ import annotations

import gc
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink
from confluent_kafka import OFFSET_STORED

from streamrag.connectors.crash_ledger import FileCrashLedger, ledger_path
from streamrag.connectors.kafka_admin import check_reachable, ensure_topics, source_config
from streamrag.connectors.kafka_offsets import BackgroundCommitter
from streamrag.connectors.kafka_sink import FlushThenCommitSink
from streamrag.connectors.metrics_server import observe_worker
from streamrag.core import telemetry
from streamrag.core.pii import TenantRedactors
from streamrag.core.ports import CrashLedger
from streamrag.core.query.audit import audit_record
from streamrag.core.query.parse import failed
from streamrag.core.query.processor import Output, Parsed, QueryProcessor, Reply, error_answer
from streamrag.core.records import Outgoing, RawRecord
from streamrag.core.settings import Settings, load_settings
from streamrag.core.step_guard import StepGuard
from streamrag.flows.common import from_kafka, kafka_error_to_dead
from streamrag.flows.components import make_cache_follower, make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.schemas.models import Query
from streamrag.schemas.vocabulary import DeadLetterStage


def audit_redactors(s: Settings) -> TenantRedactors | None:
    return TenantRedactors(s.pii.redaction, s.pii.tenants) if s.pii.redaction or s.pii.tenants else None


def to_messages(s: Settings, item: tuple[RawRecord, Output], redactors: TenantRedactors | None = None) -> list[Outgoing]:
    """An answer (and its audit record), or a dead letter."""
    rec, out = item
    if isinstance(out, Reply):
        telemetry.RECORDS.labels("query", out.answer.status).inc()
        msgs = [Outgoing.of(out.topic or s.topics.answers, out.answer.query_id, out.answer, rec)]
        if s.audit.enabled:
            msgs.append(Outgoing.of(s.topics.audit, out.answer.query_id, audit_record(s, out, redactors), rec))
        return msgs
    telemetry.DEAD_LETTERS.labels("query", out.stage, telemetry.reason_category(out.error)).inc()
    return [Outgoing.of(s.topics.dead_letters, rec.key, out, rec)]


def query_guard(ledger: CrashLedger | None) -> StepGuard[Any, Any]:
    return StepGuard("query", record_of=_in_progress, fail=_failed, ledger=ledger, final_stage="answer")


def _in_progress(item: RawRecord | tuple[RawRecord, Parsed]) -> RawRecord | None:
    if isinstance(item, RawRecord):
        return item
    return item[0] if isinstance(item[1], Query) else None


def _failed(item: RawRecord | tuple[RawRecord, Parsed], stage: DeadLetterStage, reason: str) -> list[tuple[RawRecord, Output]]:
    """The record's dead letter and an error answer to whoever waits for it."""
    if isinstance(item, RawRecord):
        dead, ans = failed(item, stage, reason)
        return [(item, dead)] + ([(item, Reply(ans))] if ans is not None else [])
    rec, q = item
    if not isinstance(q, Query):
        return [(rec, q)]
    return [(rec, rec.dead(stage, reason)),
            (rec, Reply(error_answer(q, f"internal error: {reason}")))]


def build_flow(
    settings: Settings,
    *,
    processor: QueryProcessor | None = None,
    source: Source[RawRecord] | None = None,
    sink: Sink[Any] | None = None,
    ledger: CrashLedger | None = None,
) -> Dataflow:
    """Kafka in and out by default; with ``source``/``sink`` (tests) the sink gets Outgoing messages.
    No exception leaves a step: a record that raises is dead-lettered alone (and answered with an error)."""
    flow = Dataflow("query")
    processor = processor or make_query_processor(settings)
    errs: Stream[Outgoing] | None = None
    if source is None:
        # Resume from the query group's committed offsets: a restarted worker answers what arrived
        # while it was down, not the whole retained topic again (a new group starts at the beginning).
        cfg = {**source_config(settings.kafka), "group.id": settings.worker.query_group, "auto.offset.reset": "earliest"}
        kin = kop.input(
            "in", flow, brokers=settings.brokers, topics=[settings.topics.queries],
            tail=True, batch_size=settings.worker.source_batch_size, add_config=cfg, starting_offset=OFFSET_STORED,
        )
        raw = op.map("raw", kin.oks, from_kafka)
        dead = op.map("consume_err", kin.errs, kafka_error_to_dead)
        errs = op.map("consume_err_msg", dead, lambda d: Outgoing.of(settings.topics.dead_letters, None, d))
    else:
        raw = op.input("in", flow, source)
    guard = query_guard(ledger)
    parsed = op.flat_map_batch("parse", raw, guard.wrap("parse", processor.parse))
    answered = op.flat_map_batch("answer", parsed, guard.wrap("answer", processor.answer))
    redactors = audit_redactors(settings)
    out_guard: StepGuard[tuple[RawRecord, Output], Outgoing] = StepGuard(
        "query", record_of=lambda item: item[0],
        fail=lambda item, st, why: [Outgoing.of(settings.topics.dead_letters, item[0].key, item[0].dead(st, why), item[0])])
    msgs = op.flat_map("messages", answered, out_guard.each("messages", lambda item: to_messages(settings, item, redactors)))
    if errs is not None:
        msgs = op.merge("all_out", msgs, errs)
    if sink is None:
        sink = FlushThenCommitSink(settings, BackgroundCommitter(settings, settings.worker.query_group))
    op.output("kafka_out", msgs, sink)
    return flow


def main(settings: Settings | None = None, process_id: int = 0) -> Dataflow:
    """Entry point for ``python -m bytewax.run "streamrag.flows.query:main()"``."""
    settings = settings or load_settings()
    check_reachable(settings)
    ensure_topics(settings)
    views = IndexViews(settings).start(settings.worker.index_poll_s)  # promote / rollback followed without a restart
    views.current().embedder.embed(["warm up"])  # load the model before the first record arrives
    observe_worker(settings, "query", settings.worker.query_group, settings.topics.queries, process_id)
    processor = make_query_processor(settings, with_cache=True, with_kafka=True, views=views.current)
    if processor.cache is not None:
        make_cache_follower(settings, processor.cache).start()
    ledger = FileCrashLedger(ledger_path(settings.worker.state_dir, "query", process_id), "query")
    flow = build_flow(settings, processor=processor, ledger=ledger)
    gc.collect()
    gc.freeze()  # start-up objects (model, clients) leave the GC's generations: shorter pauses
    return flow
