"""A Kafka source that reads only while its gate is open: the query worker's back-pressure.

Like bytewax's ``KafkaSource`` (one input partition per Kafka partition, assigned without joining a
consumer group, starting at the group's committed offset), but before each read it asks ``gate()``;
while the gate is closed (every generation slot busy) it reads nothing, so the consumer's position
stops and memory stays bounded, and it looks again shortly after. Each record read is reported to
``taken`` (its position), so offsets are committed only past answered records (core/inflight.py).
Records come out as ``RawRecord``; a consume error as ``ConsumeError`` with its record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_STORED, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from streamrag.core import telemetry
from streamrag.core.ports import Position
from streamrag.core.records import REPLAYED_HEADER, RawRecord

_CLOSED_RECHECK = timedelta(milliseconds=5)


@dataclass(frozen=True, slots=True)
class ConsumeError:
    """The consumer reported an error for this record (it becomes a ``consume`` dead letter)."""

    record: RawRecord
    reason: str


SourceItem = RawRecord | ConsumeError


def _record(msg: object) -> RawRecord:
    ts_type, ts = msg.timestamp()  # type: ignore[attr-defined]
    return RawRecord(
        value=msg.value(), key=msg.key(), topic=msg.topic(), partition=msg.partition(),  # type: ignore[attr-defined]
        offset=msg.offset(), timestamp_ms=ts if ts_type != 0 else None,  # type: ignore[attr-defined]
        replayed=any(k == REPLAYED_HEADER for k, _ in (msg.headers() or ())),  # type: ignore[attr-defined]
    )


class _GatedPartition(StatefulSourcePartition[SourceItem, int]):
    def __init__(self, config: dict[str, str], topic: str, part: int, offset: int, batch_size: int,
                 gate: Callable[[], bool], taken: Callable[[Iterable[Position]], None]) -> None:
        self._consumer = Consumer(config)
        self._consumer.assign([TopicPartition(topic, part, offset)])
        self._offset = offset
        self._batch_size = batch_size
        self._gate = gate
        self._taken = taken
        self._closed = False
        self._read_offset = telemetry.QUERY_READ_OFFSET.labels(topic, str(part))

    def next_batch(self) -> list[SourceItem]:
        self._closed = not self._gate()
        if self._closed:
            return []
        out: list[SourceItem] = []
        for msg in self._consumer.consume(self._batch_size, 0.001):
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                continue
            rec = _record(msg)
            out.append(rec if err is None else ConsumeError(rec, str(err)))
            off = msg.offset()
            if off is not None and off >= 0:
                self._offset = off + 1
                self._read_offset.set(self._offset)
        self._taken([(r.topic, r.partition, r.offset) for r in (i if isinstance(i, RawRecord) else i.record for i in out)
                     if r.topic is not None and r.partition is not None and r.offset is not None and r.offset >= 0])
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + _CLOSED_RECHECK if self._closed else None

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        self._consumer.close()


class GatedKafkaSource(FixedPartitionedSource[SourceItem, int]):
    def __init__(self, config: dict[str, str], topics: list[str], *, batch_size: int, gate: Callable[[], bool],
                 taken: Callable[[Iterable[Position]], None], starting_offset: int = OFFSET_STORED) -> None:
        """``config``: librdkafka settings with ``bootstrap.servers`` and the ``group.id`` whose committed
        offsets it starts from (``auto.offset.reset`` where it has none)."""
        self._config = {"enable.auto.commit": "false", "enable.partition.eof": "false", **config}
        self._topics = topics
        self._batch_size = batch_size
        self._gate = gate
        self._taken = taken
        self._start = starting_offset

    def list_parts(self) -> list[str]:
        admin = AdminClient({k: v for k, v in self._config.items() if k not in ("group.id", "auto.offset.reset",
                                                                              "enable.auto.commit", "enable.partition.eof")})
        meta = admin.list_topics(timeout=10)
        parts: list[str] = []
        for topic in self._topics:
            t = meta.topics.get(topic)
            if t is None or t.error is not None:
                raise RuntimeError(f"topic {topic!r} is not readable: {None if t is None else t.error}")
            parts.extend(f"{p}-{topic}" for p in sorted(t.partitions))
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _GatedPartition:
        idx, topic = for_part.split("-", 1)
        offset = self._start if resume_state is None else resume_state
        return _GatedPartition(dict(self._config), topic, int(idx), offset, self._batch_size, self._gate, self._taken)
