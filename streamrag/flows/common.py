"""Small wiring helpers shared by the flows: Kafka messages in, dead letters of consume errors."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage

from streamrag.core.records import PUBLISHER_HEADER, REPLAYED_HEADER, RawRecord
from streamrag.schemas.models import DeadLetter


def from_kafka(msg: KafkaSourceMessage[Any, Any]) -> RawRecord:
    ts = msg.timestamp[1] if msg.timestamp and msg.timestamp[0] != 0 else None
    return RawRecord(
        value=msg.value, key=msg.key, topic=msg.topic, partition=msg.partition, offset=msg.offset, timestamp_ms=ts,
        replayed=any(k == REPLAYED_HEADER for k, _ in (msg.headers or ())),
        publisher=next((bytes(v or b"")[:200].decode("utf-8", "replace") for k, v in (msg.headers or ())
                        if k == PUBLISHER_HEADER), ""),
    )


def kafka_error_to_dead(err: Any) -> DeadLetter:
    msg = err.msg
    return DeadLetter.make(
        stage="consume", code="consume_failed", error=str(err.err), value=getattr(msg, "value", None), key=getattr(msg, "key", None)
    )
