"""Kafka adapter: reachability with a timeout, topic creation, a JSON producer, progress and lag.

bytewax's Kafka source keeps its offsets only in recovery state; so that ordinary tools
(and ``streamrag status``) can see how far a worker is, the ingest flow also commits the
offsets it has applied to a consumer group, outside any group membership.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from streamrag.core.errors import ServiceUnavailable
from streamrag.core.settings import Settings

# Small request/response messages: disable Nagle so a lone message is not held back waiting for
# the previous one's ACK (a delayed-ACK stall shows up as ~40 ms tails on loopback).
LOW_LATENCY = {"socket.nagle.disable": "true"}


def client_config(s: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for every client the project makes."""
    return {"bootstrap.servers": s.kafka_bootstrap, **LOW_LATENCY, **extra}


def source_config(s: Settings) -> dict[str, str]:
    """Extra configuration for bytewax's Kafka source. Its librdkafka statistics callback (for
    bytewax's consumer-lag gauge) runs in Python every interval and stalls the worker: it is off
    unless STREAMRAG_KAFKA_STATS_INTERVAL_MS is set."""
    return {**LOW_LATENCY, "statistics.interval.ms": str(s.kafka_stats_interval_ms)}


COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "600000"}


def topic_specs(s: Settings) -> dict[str, dict[str, str]]:
    return {
        s.topic_documents: COMPACTED,
        s.topic_queries: {"retention.ms": str(24 * 3600 * 1000)},
        s.topic_answers: {"retention.ms": str(24 * 3600 * 1000)},
        s.topic_cache: COMPACTED,
        s.topic_index_events: {"retention.ms": str(7 * 24 * 3600 * 1000)},
        s.topic_dead_letters: {"retention.ms": str(30 * 24 * 3600 * 1000)},
    }


def admin(s: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": s.kafka_bootstrap, "socket.timeout.ms": 5000})


def check_reachable(s: Settings, timeout: float | None = None) -> None:
    """Fail fast (ServiceUnavailable) when the broker does not answer in time."""
    t = s.kafka_timeout_s if timeout is None else timeout
    try:
        admin(s).list_topics(timeout=t)
    except Exception as exc:
        raise ServiceUnavailable(
            f"Kafka at {s.kafka_bootstrap} did not answer within {t:g} s "
            "(start one with scripts/kafka-up or set STREAMRAG_KAFKA_BOOTSTRAP)"
        ) from exc


def ensure_topics(s: Settings, partitions: int | None = None) -> dict[str, str]:
    """Create the project's topics when missing. Returns topic -> 'created' | 'exists'."""
    from confluent_kafka.admin import NewTopic

    check_reachable(s)
    a = admin(s)
    existing = set(a.list_topics(timeout=s.kafka_timeout_s).topics)
    n = partitions or s.kafka_partitions
    result: dict[str, str] = {}
    new = []
    for name, cfg in topic_specs(s).items():
        if name in existing:
            result[name] = "exists"
        else:
            new.append(NewTopic(name, num_partitions=n, replication_factor=1, config=cfg))
    if new:
        for name, fut in a.create_topics(new, operation_timeout=s.kafka_timeout_s).items():
            try:
                fut.result(timeout=s.kafka_timeout_s)
                result[name] = "created"
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" in str(exc):
                    result[name] = "exists"
                else:
                    raise ServiceUnavailable(f"could not create topic {name}: {exc}") from exc
    return result


class JsonProducer:
    """A thin, lazily-connected producer for JSON events keyed by string."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self._p: Any = None
        self._errors: list[str] = []

    @property
    def producer(self) -> Any:
        if self._p is None:
            from confluent_kafka import Producer

            self._p = Producer(client_config(self.s, **{"linger.ms": 0, "enable.idempotence": True}))
        return self._p

    def _cb(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(self, topic: str, key: str | None, value: bytes | str | dict[str, Any] | None) -> None:
        if isinstance(value, dict):
            value = json.dumps(value)
        self.producer.produce(
            topic,
            key=None if key is None else key.encode("utf-8"),
            value=value.encode("utf-8") if isinstance(value, str) else value,
            on_delivery=self._cb,
        )
        self.producer.poll(0)

    def flush(self, timeout: float | None = None) -> None:
        left = self.producer.flush(self.s.kafka_timeout_s if timeout is None else timeout)
        if left:
            raise ServiceUnavailable(f"{left} messages not delivered to Kafka at {self.s.kafka_bootstrap}")
        if self._errors:
            errs, self._errors = self._errors, []
            raise ServiceUnavailable(f"Kafka delivery failed: {errs[0]}")


class OffsetCommitter:
    """Commits applied offsets for a group without joining it (for lag reporting)."""

    def __init__(self, s: Settings, group: str) -> None:
        self.s = s
        self.group = group
        self._c: Any = None
        self._lock = threading.Lock()

    def commit(self, positions: Iterable[tuple[str, int, int]]) -> None:
        """positions: (topic, partition, offset of the last applied record)."""
        from confluent_kafka import Consumer, TopicPartition

        best: dict[tuple[str, int], int] = {}
        for topic, part, off in positions:
            best[(topic, part)] = max(best.get((topic, part), -1), off)
        if not best:
            return
        with self._lock:
            if self._c is None:
                self._c = Consumer(client_config(self.s, **{"group.id": self.group, "enable.auto.commit": False}))
            tps = [TopicPartition(t, p, o + 1) for (t, p), o in best.items()]
            self._c.commit(offsets=tps, asynchronous=False)


class BackgroundCommitter:
    """Commits offsets off the hot path: positions handed in are committed by a daemon thread
    one to two intervals later (by then their results have left through the sink), so a restart
    resumes after them and re-reads at most the last two intervals (at-least-once). Each commit
    costs the hot path a little CPU on a small machine: keep the interval at seconds."""

    def __init__(self, s: Settings, group: str, every_s: float = 5.0) -> None:
        self._inner = OffsetCommitter(s, group)
        self.every_s = every_s
        self._pending: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, positions: Iterable[tuple[str, int, int]]) -> None:
        with self._lock:
            for topic, part, off in positions:
                if off > self._pending.get((topic, part), -1):
                    self._pending[(topic, part)] = off
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="offset-committer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        import logging
        import time

        ready: dict[tuple[str, int], int] = {}
        while True:
            time.sleep(self.every_s)
            if ready:
                try:
                    self._inner.commit((t, p, o) for (t, p), o in ready.items())
                except Exception as exc:
                    logging.getLogger(__name__).warning("offset commit failed (will retry): %s", exc)
                    with self._lock:  # keep them, unless newer ones arrived meanwhile
                        for k, o in ready.items():
                            if o > self._pending.get(k, -1):
                                self._pending[k] = o
            with self._lock:
                ready, self._pending = self._pending, {}


def topic_offsets(s: Settings, topics: Sequence[str], group: str | None = None) -> dict[str, Any]:
    """End offsets per topic and partition, and a group's committed offsets and lag."""
    from confluent_kafka import Consumer, TopicPartition

    check_reachable(s, timeout=min(s.kafka_timeout_s, 5.0))
    c = Consumer(client_config(s, **{"group.id": group or "streamrag-status", "enable.auto.commit": False}))
    try:
        md = c.list_topics(timeout=s.kafka_timeout_s)
        out: dict[str, Any] = {}
        for t in topics:
            if t not in md.topics:
                out[t] = {"exists": False}
                continue
            parts = sorted(md.topics[t].partitions)
            ends = {p: c.get_watermark_offsets(TopicPartition(t, p), timeout=s.kafka_timeout_s)[1] for p in parts}
            info: dict[str, Any] = {"exists": True, "end_offsets": ends, "messages": sum(ends.values())}
            if group:
                committed = c.committed([TopicPartition(t, p) for p in parts], timeout=s.kafka_timeout_s)
                done = {tp.partition: max(tp.offset, 0) for tp in committed}
                info["committed"] = done
                info["lag"] = sum(max(ends[p] - done.get(p, 0), 0) for p in parts)
            out[t] = info
        return out
    finally:
        c.close()


def request_answer(s: Settings, query: Any, timeout: float) -> Any:
    """Publish a query and wait for its answer on the answers topic (or its reply_to topic)."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    from streamrag.schemas.models import Answer

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
