"""A JSON event producer keyed by string (acks=all, idempotent, Nagle off)."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Producer

from streamrag.connectors.kafka_admin import DURABLE, client_config, producer_limits
from streamrag.core.config import KafkaConfig, WorkerConfig
from streamrag.core.errors import ServiceUnavailable


class JsonProducer:
    """A thin, lazily-connected producer for JSON events keyed by string."""

    def __init__(self, k: KafkaConfig, w: WorkerConfig) -> None:
        """``k``: the cluster; ``w``: the largest message (STREAMRAG_MAX_MESSAGE_BYTES) it lets through."""
        self.k = k
        self.limits = producer_limits(w)
        self._p: Any = None
        self._errors: list[str] = []

    @property
    def producer(self) -> Any:
        if self._p is None:
            self._p = Producer(client_config(self.k, **{"linger.ms": 0, **DURABLE}, **self.limits))
        return self._p

    def _cb(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def send(
        self, topic: str, key: str | bytes | None, value: bytes | str | dict[str, Any] | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        if isinstance(value, dict):
            value = json.dumps(value)
        self.producer.produce(
            topic,
            key=key.encode("utf-8") if isinstance(key, str) else key,
            value=value.encode("utf-8") if isinstance(value, str) else value,
            on_delivery=self._cb,
            headers=headers,
        )
        self.producer.poll(0)

    def flush(self, timeout: float | None = None) -> None:
        left = self.producer.flush(self.k.timeout_s if timeout is None else timeout)
        if left:
            raise ServiceUnavailable(f"{left} messages not delivered to Kafka at {self.k.bootstrap}")
        if self._errors:
            errs, self._errors = self._errors, []
            raise ServiceUnavailable(f"Kafka delivery failed: {errs[0]}")
