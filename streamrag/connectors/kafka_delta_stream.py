"""Answer sources and deltas onto the answers topic (key = query_id: one partition, so order holds with the final)."""

from __future__ import annotations

import logging
from collections import Counter

from confluent_kafka import KafkaException

from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.errors import ServiceUnavailable
from streamrag.schemas.models import AnswerDelta, AnswerSources

log = logging.getLogger(__name__)


class KafkaDeltaStream:
    """One query's deltas. Best effort: a delta that cannot be sent never fails the answer (the final
    message, produced by the flow's sink after ``close()`` flushed these, is the durable one)."""

    stats: Counter[str] = Counter()

    def __init__(self, producer: JsonProducer, topic: str, query_id: str, tenant: str = "") -> None:
        self.producer = producer
        self.topic = topic
        self.query_id = query_id
        self.tenant = tenant
        self.seq = 0
        self.sent = 0

    def _send(self, d: AnswerDelta | AnswerSources) -> None:
        try:
            self.producer.send(self.topic, self.query_id, d.model_dump_json())
            self.sent += 1
            self.seq += isinstance(d, AnswerDelta)
        except (KafkaException, BufferError) as exc:
            self.stats["delta_send_errors"] += 1
            log.warning("answer delta for %s not sent: %s", self.query_id, exc)

    def sources(self, s: AnswerSources) -> None:
        self._send(s)

    def delta(self, text: str, generator: str) -> None:
        self._send(AnswerDelta(query_id=self.query_id, tenant=self.tenant, seq=self.seq, delta=text, generator=generator))

    def reset(self, generator: str) -> None:
        self._send(AnswerDelta(query_id=self.query_id, tenant=self.tenant, seq=self.seq, generator=generator, reset=True))

    def close(self) -> None:
        """Deliver the deltas before the final answer is produced (so they precede it in the partition)."""
        if not self.sent:
            return
        try:
            self.producer.flush()
        except ServiceUnavailable as exc:
            self.stats["delta_flush_errors"] += 1
            log.warning("answer deltas for %s not flushed: %s", self.query_id, exc)
