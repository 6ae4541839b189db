"""Small wiring helpers shared by the flows."""

from __future__ import annotations

from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from pydantic import BaseModel

from streamrag.schemas.models import DeadLetter
from streamrag.core.ingest.processor import RawRecord


def from_kafka(msg: KafkaSourceMessage[Any, Any]) -> RawRecord:
    ts = msg.timestamp[1] if msg.timestamp and msg.timestamp[0] != 0 else None
    return RawRecord(
        value=msg.value, key=msg.key, topic=msg.topic, partition=msg.partition, offset=msg.offset, timestamp_ms=ts
    )


def kafka_error_to_dead(err: Any) -> DeadLetter:
    msg = err.msg
    return DeadLetter.make(
        stage="consume", error=str(err.err), value=getattr(msg, "value", None), key=getattr(msg, "key", None)
    )


def to_sink(key: str | None, model: BaseModel) -> KafkaSinkMessage[bytes | None, bytes]:
    return KafkaSinkMessage(
        key=None if key is None else key.encode("utf-8"), value=model.model_dump_json().encode("utf-8")
    )


def dead_to_sink(d: DeadLetter) -> KafkaSinkMessage[bytes | None, bytes]:
    key = None
    if d.original_key_b64:
        import base64

        key = base64.b64decode(d.original_key_b64)
    return KafkaSinkMessage(key=key, value=d.model_dump_json().encode("utf-8"))
