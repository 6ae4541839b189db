"""Query dataflow, named steps:

    queries topic -> parse -> retrieve -> generate ─ ─ (generation slots) ─ ─ answered ─┐
                                            └──────── (answered already) ───────────────┴─> messages -> Kafka

``retrieve`` works a batch at once (cache, one embedding call, searches, rerank); ``generate`` hands each
query to one of STREAMRAG_GENERATION_CONCURRENCY slots, and its deltas and final answer leave through the
``answered`` input the moment they are written: no answer waits for another. While every slot is busy
the source reads nothing (back-pressure). The sink produces, flushes, and only then marks the records
done; the background committer (STREAMRAG_QUERY_GROUP, every few seconds) commits only past the
contiguous prefix of answered records, so a restart answers every query that was in flight.

Run as a long-lived worker:  streamrag worker query   or   python -m bytewax.run "streamrag.flows.query:main()"
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from streamrag.connectors.crash_ledger import FileCrashLedger, ledger_path
from streamrag.connectors.kafka_admin import check_reachable, client_config, ensure_topics, source_config
from streamrag.connectors.kafka_gated_source import ConsumeError, GatedKafkaSource
from streamrag.connectors.kafka_offsets import BackgroundCommitter
from streamrag.connectors.kafka_sink import FlushThenCommitSink
from streamrag.connectors.lancedb_connect import use_object_store
from streamrag.connectors.metrics_server import observe_worker
from streamrag.core import telemetry
from streamrag.core.crypto import payload_cipher
from streamrag.core.inflight import InFlightOffsets
from streamrag.core.pii import TenantRedactors
from streamrag.core.ports import CrashLedger
from streamrag.core.query.audit import DEV_HASH_KEY, audit_record, hash_key
from streamrag.core.query.concurrent import ConcurrentAnswering, Emitted
from streamrag.core.query.deltas import Delta
from streamrag.core.query.parse import failed, without_token
from streamrag.core.query.processor import Output, Parsed, Prepared, QueryProcessor, Reply, error_answer
from streamrag.core.records import Outgoing, RawRecord
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings, load_settings
from streamrag.core.step_guard import StepGuard, failure_code
from streamrag.core.timing import StageTimer
from streamrag.flows.components import make_cache_follower, make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.flows.query_slots import SlotResults
from streamrag.schemas.models import Query
from streamrag.schemas.vocabulary import DeadLetterStage


def audit_redactors(s: Settings) -> TenantRedactors | None:
    return TenantRedactors(s.pii.redaction, s.pii.tenants) if s.pii.redaction or s.pii.tenants else None


def audit_key(s: Settings) -> bytes:
    """The audit hash key from the variable STREAMRAG_AUDIT_HASH_KEY_ENV names (ConfigError in production without)."""
    return hash_key(s, os.environ.get(s.audit.hash_key_env, "") if s.audit.hash_key_env else "")


def to_messages(s: Settings, item: Emitted, redactors: TenantRedactors | None = None,
                key: bytes = DEV_HASH_KEY) -> list[Outgoing]:
    """An answer (and its audit record, its question hashed with ``key``), an answer delta, or a dead letter
    (without the query's bearer token). Only final outputs carry their record (its offset may be committed once
    they are flushed)."""
    rec, out = item
    if isinstance(out, Delta):
        return [Outgoing.of(out.topic, out.delta.query_id, out.delta)]
    if isinstance(out, Reply):
        telemetry.RECORDS.labels("query", out.answer.status).inc()
        msgs = [Outgoing.of(out.topic or s.topics.answers, out.answer.query_id, out.answer, rec)]
        if s.audit.enabled:
            msgs.append(Outgoing.of(s.topics.audit, out.answer.query_id, audit_record(s, out, redactors, key), rec))
        if out.cache_entry is not None:
            e = out.cache_entry
            msgs.append(Outgoing.of(s.topics.cache, f"{e.tenant}/{e.cache_key}", e, rec))
        return msgs
    telemetry.DEAD_LETTERS.labels("query", out.stage, out.code or "internal").inc()
    return [Outgoing.of(s.topics.dead_letters, rec.key, without_token(out), rec)]


def query_guard(ledger: CrashLedger | None) -> StepGuard[Any, Any]:
    return StepGuard("query", record_of=_in_progress, fail=_failed, ledger=ledger, final_stage="answer")


Step = RawRecord | tuple[RawRecord, Parsed | Prepared | Output]


def _in_progress(item: Step) -> RawRecord | None:
    if isinstance(item, RawRecord):
        return item
    return item[0] if isinstance(item[1], Query | Prepared) else None


def _failed(item: Step, stage: DeadLetterStage, reason: str) -> list[tuple[RawRecord, Output]]:
    """The record's dead letter and an error answer to whoever waits for it."""
    if isinstance(item, RawRecord):
        dead, ans = failed(item, stage, reason, code=failure_code(stage))
        return [(item, dead)] + ([(item, Reply(ans))] if ans is not None else [])
    rec, q = item
    if isinstance(q, Prepared):
        q = q.query
    if not isinstance(q, Query):
        return [(rec, q)]
    code = failure_code(stage)
    return [(rec, rec.dead(stage, code, reason)),
            (rec, Reply(error_answer(q, code, f"internal error: {reason}"), q.reply_to, q))]


def _consumed(item: RawRecord | ConsumeError) -> RawRecord | tuple[RawRecord, Output]:
    """A consume error becomes its record's dead letter (stage consume) here, at the flow's door."""
    return item if isinstance(item, RawRecord) else (item.record, item.record.dead("consume", "consume_failed", item.reason))


def build_flow(
    settings: Settings,
    *,
    processor: QueryProcessor | None = None,
    source: Source[RawRecord] | None = None,
    sink: Sink[Any] | None = None,
    ledger: CrashLedger | None = None,
    answering: ConcurrentAnswering | None = None,
) -> Dataflow:
    """Kafka in and out by default; with ``source``/``sink`` (tests) the sink gets Outgoing messages and
    each batch's answers leave with it (the flow ends when the source does).
    No exception leaves a step: a record that raises is dead-lettered alone (and answered with an error).
    ``answering``: the generation slots whose room gates the Kafka source (by default made here from the settings).
    New cache entries leave through the flow's sink, after their answer (flushed before the offset is committed)."""
    flow = Dataflow("query")
    key = audit_key(settings)  # before anything starts: production without a key is a configuration error
    processor = processor or make_query_processor(settings)
    processor.entries_on_stream = True  # new cache entries leave through the sink that flushes before it commits
    answering = answering or ConcurrentAnswering(processor, settings.generation.generation_concurrency,
                                                 wait=source is not None, ledger=ledger,
                                                 queue=settings.generation.generation_queue)
    offsets = InFlightOffsets()
    if source is None:
        # Resume from the query group's committed offsets: a restarted worker answers what arrived
        # while it was down, not the whole retained topic again (a new group starts at the beginning).
        cfg = {**client_config(settings.kafka), **source_config(settings.kafka),
               "group.id": settings.worker.query_group, "auto.offset.reset": "earliest"}
        kafka = GatedKafkaSource(cfg, [settings.topics.queries], batch_size=settings.worker.source_batch_size,
                                 gate=answering.has_room, taken=offsets.taken)
        raw: Stream[Any] = op.map("consumed", op.input("in", flow, kafka), _consumed)
    else:
        raw = op.input("in", flow, source)
    guard = query_guard(ledger)
    parsed = op.flat_map_batch("parse", raw, guard.wrap("parse", lambda items: _parse(processor, items)))
    retrieved = op.flat_map_batch("retrieve", parsed, guard.wrap("retrieve", answering.retrieve))
    answered = op.flat_map_batch("generate", retrieved, guard.wrap("generate", answering.generate))
    if not answering.wait:
        answered = op.merge("answered", answered, op.input("slots", flow, SlotResults(answering.drain)))
    redactors = audit_redactors(settings)
    out_guard: StepGuard[Emitted, Outgoing] = StepGuard(
        "query", record_of=lambda item: item[0],
        fail=lambda item, st, why: [Outgoing.of(settings.topics.dead_letters, item[0].key,
                                                without_token(item[0].dead(st, "internal", why)), item[0])])
    msgs = op.flat_map("messages", answered,
                       out_guard.each("messages", lambda item: to_messages(settings, item, redactors, key)))
    if sink is None:
        committer = BackgroundCommitter(settings.kafka, settings.worker.query_group)
        sink = FlushThenCommitSink(settings.kafka, settings.worker, sealer_for(settings),
                                   lambda pos: committer(offsets.done(pos)))
    op.output("kafka_out", msgs, sink)
    return flow


def _parse(processor: QueryProcessor, items: Sequence[RawRecord | tuple[RawRecord, Output]]) -> list[tuple[RawRecord, Parsed]]:
    """Records parsed into queries; a consume error's dead letter passes on."""
    done = [it for it in items if not isinstance(it, RawRecord)]
    return [*done, *processor.parse([it for it in items if isinstance(it, RawRecord)])]


def query_worker_settings(s: Settings) -> Settings:
    """A query worker's encoder threads: STREAMRAG_TORCH_THREADS when set, else STREAMRAG_QUERY_TORCH_THREADS."""
    if s.index.torch_threads or not s.index.query_torch_threads:
        return s
    return s.model_copy(update={"torch_threads": s.index.query_torch_threads})


def main(settings: Settings | None = None, process_id: int = 0, timer: StageTimer | None = None) -> Dataflow:
    """Entry point for ``python -m bytewax.run "streamrag.flows.query:main()"``. ``timer``: the start-up's stages
    (ms), which ``streamrag worker query`` prints when the worker is ready."""
    timer = timer or StageTimer()
    settings = query_worker_settings(settings or load_settings())
    use_object_store(settings.encryption)
    payload_cipher(settings)  # a production worker without encryption keys stops here, before the model loads
    audit_key(settings)  # a production worker without its audit hash key stops here, before the model loads
    with timer.stage("kafka"):
        check_reachable(settings.kafka)
        ensure_topics(settings.kafka, settings.topic_layout)
    # promote / rollback followed without a restart; the views' embedders built (an ONNX Runtime session loaded,
    # where the model's export exists: no torch)
    with timer.stage("index+model"):
        views = IndexViews(settings, questions=True).start(settings.worker.index_poll_s)
    with timer.stage("warm-up"):
        views.current().embedder.embed(["warm up"])  # load the model before the first record arrives
        views.current().embedder.embed_queries(["warm up"])  # and its question encoder (exported once per machine)
    with timer.stage("wiring"):
        observe_worker(settings.kafka, settings.worker, "query", settings.worker.query_group, settings.topics.queries,
                       process_id)
        processor = make_query_processor(settings, with_cache=True, with_kafka=True, views=views)
        if processor.cache is not None:
            make_cache_follower(settings, processor.cache).start()
        ledger = FileCrashLedger(ledger_path(settings.worker.state_dir, "query", process_id), "query")
        flow = build_flow(settings, processor=processor, ledger=ledger)
        gc.collect()
        gc.freeze()  # start-up objects (model, clients) leave the GC's generations: shorter pauses
    return flow
