"""Request / reply over Kafka: publish a query and wait for its answer."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import Consumer, TopicPartition

from streamrag.connectors.kafka_admin import check_reachable, client_config
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.config import KafkaConfig, TopicsConfig, WorkerConfig
from streamrag.core.errors import ServiceUnavailable
from streamrag.schemas.models import Answer, AnswerDelta, AnswerSources, Query


class DeltaPrinter(Protocol):
    def delta(self, text: str, generator: str) -> None: ...

    def reset(self, generator: str) -> None: ...


def request_answer(k: KafkaConfig, topics: TopicsConfig, w: WorkerConfig, query: Query, timeout: float,
                   on_delta: DeltaPrinter | None = None,
                   on_sources: Callable[[AnswerSources], None] | None = None) -> Answer:
    """Publish a query and wait for its final answer on the answers topic (or its reply_to topic);
    answer deltas on the way go to ``on_delta``, its sources (sent first when it streams) to ``on_sources`` (or
    are skipped). ``w``: the producer's message limit."""
    check_reachable(k)
    topic = query.reply_to or topics.answers
    c = Consumer(client_config(k, **{"group.id": "streamrag-ask", "enable.auto.commit": False}))
    try:
        md = c.list_topics(topic, timeout=k.timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ServiceUnavailable(f"topic {topic} does not exist (run: streamrag topics create)")
        tps = []
        for p in md.topics[topic].partitions:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=k.timeout_s)
            tps.append(TopicPartition(topic, p, hi))
        c.assign(tps)
        prod = JsonProducer(k, w)
        prod.send(topics.queries, query.query_id, query.model_dump_json(exclude_none=True))
        prod.flush()
        deadline = time.monotonic() + timeout
        want = query.query_id.encode()
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is None or m.error() is not None or m.key() != want or not m.value():
                continue
            data = json.loads(m.value() or b"{}")
            if data.get("kind") == "delta":
                if on_delta is not None:
                    d = AnswerDelta.model_validate(data)
                    (on_delta.reset if d.reset else lambda g, d=d: on_delta.delta(d.delta, g))(d.generator)
                continue
            if data.get("kind") == "sources":
                if on_sources is not None:
                    on_sources(AnswerSources.model_validate(data))
                continue
            return Answer.model_validate(data)
        raise ServiceUnavailable(
            f"no answer within {timeout:g} s (is a query worker running? streamrag worker query)"
        )
    finally:
        c.close()
