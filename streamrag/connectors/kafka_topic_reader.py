"""Reading a whole topic as a resumable job (replays): a consumer group's committed offsets say
where a job stands; it commits only after the records it read have been applied.

Start points: ``resume`` (the group's offsets, the beginning when it has none), ``beginning``, or
a time (the first offset at or after it, per partition). ``behind()`` compares the position with
the partitions' ends, so a job knows when it has caught up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from streamrag.connectors.kafka_admin import client_config
from streamrag.core.config import KafkaConfig
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.records import REPLAYED_HEADER, RawRecord

Start = str | datetime  # "resume" | "beginning" | a time


class TopicReader:
    def __init__(self, k: KafkaConfig, topic: str, group: str, start: Start = "resume") -> None:
        self.k = k
        self.topic = topic
        self.group = group
        self.c = Consumer(client_config(k, **{
            "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }))
        try:
            md = self.c.list_topics(topic, timeout=k.timeout_s)
        except KafkaException as exc:
            raise ServiceUnavailable(f"Kafka at {k.bootstrap}: {exc}") from exc
        if topic not in md.topics or md.topics[topic].error is not None:
            raise ServiceUnavailable(f"topic {topic!r} does not exist (streamrag topics create)")
        self.partitions = sorted(md.topics[topic].partitions)
        self.position = self._starts(start)
        self.c.assign([TopicPartition(topic, p, off) for p, off in self.position.items()])

    def _starts(self, start: Start) -> dict[int, int]:
        lows = {p: self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.k.timeout_s)[0]
                for p in self.partitions}
        if isinstance(start, datetime):
            ms = int(start.timestamp() * 1000)
            found = self.c.offsets_for_times([TopicPartition(self.topic, p, ms) for p in self.partitions],
                                             timeout=self.k.timeout_s)
            ends = self.ends()
            return {tp.partition: ends[tp.partition] if tp.offset in (OFFSET_END, -1) else max(tp.offset, lows[tp.partition])
                    for tp in found}
        if start == "beginning":
            return dict(lows)
        return {p: off if off >= 0 else lows[p] for p, off in self.committed().items()}

    def committed(self) -> dict[int, int]:
        """The group's committed offsets (-1: none)."""
        got = self.c.committed([TopicPartition(self.topic, p) for p in self.partitions], timeout=self.k.timeout_s)
        return {tp.partition: tp.offset for tp in got}

    def reassign(self) -> None:
        """Read from ``position`` (after a caller moved it)."""
        self.c.assign([TopicPartition(self.topic, p, off) for p, off in self.position.items()])

    def ends(self) -> dict[int, int]:
        return {p: self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.k.timeout_s)[1]
                for p in self.partitions}

    def behind(self, ends: Mapping[int, int] | None = None) -> int:
        """Records between the position and the partitions' ends (the ends read now unless given)."""
        ends = ends or self.ends()
        return sum(max(0, ends[p] - self.position.get(p, 0)) for p in self.partitions)

    def read(self, max_records: int, timeout_s: float) -> list[RawRecord]:
        out: list[RawRecord] = []
        for m in self.c.consume(max_records, timeout_s):
            if m.error() is not None:
                continue  # partition EOF and transient fetch errors: the next read goes on
            part, off = int(m.partition() or 0), int(m.offset() or 0)
            self.position[part] = off + 1
            ts_type, ts = m.timestamp()
            out.append(RawRecord(
                value=m.value(), key=m.key(), topic=m.topic(), partition=m.partition(), offset=m.offset(),
                timestamp_ms=ts if ts_type != 0 else None,
                replayed=any(h[0] == REPLAYED_HEADER for h in (m.headers() or ())),
            ))
        return out

    def commit(self) -> None:
        """The group resumes at the current position (call once what was read has been applied)."""
        offsets = [TopicPartition(self.topic, p, off) for p, off in self.position.items() if off >= 0]
        try:
            self.c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            raise ServiceUnavailable(f"committing replay offsets of {self.group!r} failed: {exc}") from exc

    def close(self) -> None:
        self.c.close()
