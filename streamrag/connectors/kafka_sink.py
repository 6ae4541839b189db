"""A bytewax sink that produces each message to its own topic, flushes, and only then commits the
offsets of the input records those messages answer (flush, then commit).

What is kept at rest leaves encrypted when the deployment has keys (core.sealing): dead letters' originals,
cache entries.

Delivery failures are retried with backoff (core.retry); past the budget the sink raises
``TemporaryFailure``: the worker stops and its offsets stay before the undelivered records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Producer

from streamrag.connectors.kafka_admin import DURABLE, client_config, producer_limits
from streamrag.connectors.kafka_offsets import Position
from streamrag.core.config import KafkaConfig, WorkerConfig
from streamrag.core.errors import ServiceUnavailable, TemporaryFailure, TransientError
from streamrag.core.records import Outgoing
from streamrag.core.retry import RetryPolicy
from streamrag.core.sealing import TopicSealer

log = logging.getLogger(__name__)
Commit = Callable[[Iterable[Position]], None]


def positions(items: Iterable[Outgoing]) -> list[Position]:
    out = []
    for m in items:
        r = m.source
        if r is not None and r.topic is not None and r.partition is not None and r.offset is not None:
            out.append((r.topic, r.partition, r.offset))
    return out


class _Partition(StatelessSinkPartition[Outgoing]):
    def __init__(self, producer: Any, commit: Commit | None, policy: RetryPolicy, timeout_s: float,
                 sealer: TopicSealer | None = None) -> None:
        self.producer = producer
        self.sealer = sealer
        self.commit = commit
        self.policy = policy
        self.timeout_s = timeout_s

    def _send(self, items: list[Outgoing]) -> list[Outgoing]:
        """Produce and flush; returns the messages that were not delivered."""
        failed: list[Outgoing] = []

        def delivered(item: Outgoing) -> Callable[[KafkaError | None, Any], None]:
            def cb(err: KafkaError | None, _msg: Any) -> None:
                if err is not None:
                    failed.append(item)
            return cb

        for m in items:
            while True:
                try:
                    self.producer.produce(m.topic, key=m.key, value=m.value, on_delivery=delivered(m))
                    break
                except BufferError:  # local queue full: back-pressure until it drains
                    self.producer.poll(0.1)
        left = self.producer.flush(self.timeout_s)
        if left:
            raise ServiceUnavailable(f"{left} messages not delivered within {self.timeout_s:g} s")
        return failed

    def write_batch(self, items: list[Outgoing]) -> None:
        todo = list(items) if self.sealer is None else [self.sealer.outgoing(m) for m in items]

        def attempt() -> None:
            nonlocal todo
            try:
                todo = self._send(todo)
            except KafkaException as exc:  # librdkafka says whether a retry can succeed
                err = exc.args[0] if exc.args else None
                if err is not None and callable(getattr(err, "retriable", None)) and err.retriable():
                    raise TransientError(f"Kafka produce: {err}") from exc
                raise
            if todo:
                raise ServiceUnavailable(f"{len(todo)} messages failed delivery")

        try:
            self.policy.call("producing to Kafka", attempt)
        except (ServiceUnavailable, KafkaException) as exc:
            raise TemporaryFailure(f"Kafka produce kept failing for {self.policy.max_s:g} s: {exc}") from exc
        if self.commit is not None:
            pos = positions(items)
            if pos:
                self.commit(pos)

    def close(self) -> None:
        self.producer.flush(self.timeout_s)


class FlushThenCommitSink(DynamicSink[Outgoing]):
    """``commit`` receives the positions of records whose outputs were all delivered."""

    def __init__(self, k: KafkaConfig, w: WorkerConfig, sealer: TopicSealer, commit: Commit | None = None) -> None:
        """``k``: the cluster; ``w``: the largest message and how long a failed delivery is retried; ``sealer``:
        encrypts dead letters' originals and cache entries when the deployment has keys (core/sealing.py)."""
        self.k = k
        self.w = w
        self.commit = commit
        self.sealer = sealer

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition:
        producer = Producer(client_config(self.k, **{"linger.ms": 0, **DURABLE}, **producer_limits(self.w)))
        return _Partition(producer, self.commit, RetryPolicy(max_s=self.w.retry_max_s), self.k.timeout_s, self.sealer)
