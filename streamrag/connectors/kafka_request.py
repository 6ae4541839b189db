"""Request / reply over Kafka: publish a query and wait for its answer."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from streamrag.connectors.kafka_admin import check_reachable, client_config
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.settings import Settings
from streamrag.schemas.models import Answer, Query


def request_answer(s: Settings, query: Query, timeout: float) -> Answer:
    """Publish a query and wait for its answer on the answers topic (or its reply_to topic)."""
    check_reachable(s)
    topic = query.reply_to or s.topic_answers
    c = Consumer(client_config(s, **{"group.id": "streamrag-ask", "enable.auto.commit": False}))
    try:
        md = c.list_topics(topic, timeout=s.kafka_timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ServiceUnavailable(f"topic {topic} does not exist (run: streamrag topics create)")
        tps = []
        for p in md.topics[topic].partitions:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=s.kafka_timeout_s)
            tps.append(TopicPartition(topic, p, hi))
        c.assign(tps)
        prod = JsonProducer(s)
        prod.send(s.topic_queries, query.query_id, query.model_dump_json(exclude_none=True))
        prod.flush()
        deadline = time.monotonic() + timeout
        want = query.query_id.encode()
        while time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and m.error() is None and m.key() == want and m.value():
                return Answer.model_validate_json(m.value() or b"")
        raise ServiceUnavailable(
            f"no answer within {timeout:g} s (is a query worker running? streamrag worker query)"
        )
    finally:
        c.close()
