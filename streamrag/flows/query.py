"""Query dataflow: queries topic -> validate -> embed -> retrieve -> rerank -> answer -> answers topic.

Run as a long-lived worker:  python -m bytewax.run "streamrag.flows.query:main()"   or   streamrag worker query
"""

from __future__ import annotations

import gc
from typing import Any

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow
from confluent_kafka import OFFSET_STORED

from streamrag.connectors.cache_follower import CacheFollower
from streamrag.connectors.kafka import LOW_LATENCY, BackgroundCommitter, check_reachable, ensure_topics, source_config
from streamrag.flows.common import dead_to_sink, from_kafka, kafka_error_to_dead
from streamrag.flows.components import embedder_for, make_query_processor, make_store
from streamrag.core.ingest.processor import RawRecord
from streamrag.core.query.processor import QueryProcessor, Reply
from streamrag.core.settings import Settings, load_settings


def build_flow(settings: Settings, *, processor: QueryProcessor | None = None) -> Dataflow:
    flow = Dataflow("query")
    if processor is None:
        processor = QueryProcessor(settings, make_store(settings), embedder_for(settings))
    # Resume from the query group's committed offsets: a restarted worker answers what arrived while
    # it was down, not the whole retained topic again (a new group starts at the beginning).
    cfg = {**source_config(settings), "group.id": settings.query_group, "auto.offset.reset": "earliest"}
    kin = kop.input(
        "in", flow, brokers=settings.brokers, topics=[settings.topic_queries],
        tail=True, batch_size=settings.source_batch_size, add_config=cfg, starting_offset=OFFSET_STORED,
    )
    raw = op.map("raw", kin.oks, from_kafka)
    committer = BackgroundCommitter(settings, settings.query_group)

    def answer(records: list[RawRecord]) -> list[Any]:
        out = processor.process_batch(records)
        committer.add(
            (r.topic, r.partition, r.offset) for r in records
            if r.topic is not None and r.partition is not None and r.offset is not None
        )
        return out

    results = op.flat_map_batch("answer", raw, answer)
    b = op.branch("split", results, lambda x: isinstance(x, Reply))
    dead = op.merge("all_dead", b.falses, op.map("consume_err", kin.errs, kafka_error_to_dead))
    kop.output("answers_out", op.map("ans_msg", b.trues, _answer_msg), brokers=settings.brokers,
               topic=settings.topic_answers, add_config=dict(LOW_LATENCY))
    kop.output("dlq_out", op.map("dl_msg", dead, _dead_msg), brokers=settings.brokers,
               topic=settings.topic_dead_letters, add_config=dict(LOW_LATENCY))
    return flow


def _answer_msg(r: Any) -> Any:
    return KafkaSinkMessage(
        key=r.answer.query_id.encode("utf-8"), value=r.answer.model_dump_json().encode("utf-8"), topic=r.topic
    )


def _dead_msg(d: Any) -> Any:
    return dead_to_sink(d)


def main() -> Dataflow:
    """Entry point for ``python -m bytewax.run "streamrag.flows.query:main()"``."""
    settings = load_settings()
    check_reachable(settings)
    ensure_topics(settings)
    embedder_for(settings).embed(["warm up"])  # load the model before the first record arrives
    processor = make_query_processor(settings, with_cache=True)
    if processor.cache is not None:
        CacheFollower(settings, processor.cache).start()
    flow = build_flow(settings, processor=processor)
    gc.collect()
    gc.freeze()  # start-up objects (model, clients) leave the GC's generations: shorter pauses
    return flow
