"""Ingest dataflow: documents topic -> parse/validate -> stale check -> chunk -> embed -> LanceDB -> index events.

Run as a long-lived worker:  python -m bytewax.run "streamrag.flows.ingest:main()" [-r RECOVERY_DIR -s 5 -b 0]
or:                          streamrag worker ingest
"""

from __future__ import annotations

from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from streamrag.connectors.kafka import LOW_LATENCY, OffsetCommitter, check_reachable, ensure_topics, source_config
from streamrag.flows.common import dead_to_sink, from_kafka, kafka_error_to_dead, to_sink
from streamrag.schemas.models import IndexEvent
from streamrag.flows.components import embedder_for, make_store
from streamrag.core.ingest.processor import IngestProcessor, RawRecord
from streamrag.core.settings import Settings, load_settings


def build_flow(
    settings: Settings,
    *,
    source: Source[RawRecord] | None = None,
    sink: Sink[Any] | None = None,
    processor: IngestProcessor | None = None,
) -> Dataflow:
    """Kafka in and out by default; a bytewax Source/Sink instead for the embedded path."""
    flow = Dataflow("ingest")
    if processor is None:
        committer = OffsetCommitter(settings, settings.ingest_group) if source is None else None
        processor = IngestProcessor(
            settings,
            make_store(settings),
            embedder_for(settings),
            on_applied=_commit_with(committer) if committer else None,
        )

    if source is None:
        kin = kop.input(
            "in", flow, brokers=settings.brokers, topics=[settings.topic_documents],
            tail=True, batch_size=settings.source_batch_size, add_config=source_config(settings),
        )
        raw = op.map("raw", kin.oks, from_kafka)
        consume_errors = op.map("consume_err", kin.errs, kafka_error_to_dead)
    else:
        raw = op.input("in", flow, source)
        consume_errors = None

    results = op.flat_map_batch("index", raw, processor.process_batch)
    b = op.branch("split", results, lambda x: isinstance(x, IndexEvent))
    events, dead = b.trues, b.falses
    if consume_errors is not None:
        dead = op.merge("all_dead", dead, consume_errors)

    if sink is not None:
        op.output("out", op.merge("all_out", events, dead), sink)
        return flow
    ev_msgs = op.map("ev_msg", events, _event_msg)
    dl_msgs = op.map("dl_msg", dead, _dead_msg)
    kop.output("events_out", ev_msgs, brokers=settings.brokers, topic=settings.topic_index_events, add_config=dict(LOW_LATENCY))
    kop.output("dlq_out", dl_msgs, brokers=settings.brokers, topic=settings.topic_dead_letters, add_config=dict(LOW_LATENCY))
    return flow


def _event_msg(ev: Any) -> Any:
    return to_sink(f"{ev.tenant}/{ev.doc_id}", ev)


def _dead_msg(d: Any) -> Any:
    return dead_to_sink(d)


def _commit_with(committer: OffsetCommitter) -> Any:
    def commit(records: Any) -> None:
        committer.commit(
            (r.topic, r.partition, r.offset) for r in records if r.topic is not None and r.offset is not None
        )

    return commit


def main() -> Dataflow:
    """Entry point for ``python -m bytewax.run "streamrag.flows.ingest:main()"``: settings read once here."""
    settings = load_settings()
    check_reachable(settings)
    ensure_topics(settings)
    embedder_for(settings).embed(["warm up"])  # load the model before the first record arrives
    return build_flow(settings)
