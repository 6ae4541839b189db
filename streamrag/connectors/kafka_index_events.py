"""Waiting for documents to be applied: the index events of given (tenant/doc_id, version) pairs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping

from confluent_kafka import Consumer, TopicPartition

from streamrag.connectors.kafka_admin import client_config
from streamrag.core.config import KafkaConfig, TopicsConfig
from streamrag.core.errors import ApplyTimeout, ServiceUnavailable


class IndexEventWatcher:
    """Positioned at the index-events topic's end when made: only events after that count."""

    def __init__(self, k: KafkaConfig, topics: TopicsConfig) -> None:
        self.c = Consumer(client_config(k, **{"group.id": "streamrag-wait", "enable.auto.commit": False}))
        topic = topics.index_events
        md = self.c.list_topics(topic, timeout=k.timeout_s)
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ServiceUnavailable(f"topic {topic} does not exist (run: streamrag topics create)")
        tps = []
        for p in md.topics[topic].partitions:
            _, hi = self.c.get_watermark_offsets(TopicPartition(topic, p), timeout=k.timeout_s)
            tps.append(TopicPartition(topic, p, hi))
        self.c.assign(tps)

    def wait(self, expected: Mapping[str, int], timeout: float,
             applied: Callable[[int, int], None] | None = None) -> dict[str, str]:
        """key -> status of its event at or beyond the expected version; raises when time runs out.
        ``applied(done, total)`` is called as events arrive (a progress bar)."""
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(seen) < len(expected):
                if time.monotonic() > deadline:
                    missing = sorted(set(expected) - set(seen))
                    raise ApplyTimeout(
                        f"{len(missing)} document(s) not applied within {timeout:g} s (is an ingest worker "
                        f"running? streamrag worker ingest): {', '.join(missing[:3])}"
                    )
                for m in self.c.consume(200, 0.2):
                    if m.error() is not None or not m.value():
                        continue
                    ev = json.loads(m.value() or b"{}")
                    key = f"{ev.get('tenant')}/{ev.get('doc_id')}"
                    if key in expected and int(ev.get("version", -1)) >= expected[key]:
                        seen[key] = str(ev.get("status"))
                        if applied is not None:
                            applied(len(seen), len(expected))
            return seen
        finally:
            self.c.close()
