"""Many requests waiting on one process's reply topic: queries go out on the queries topic, their deltas and
answers come back keyed by query_id and are handed to whoever waits for that id.

One consumer (no group: assigned at the topics' ends when started) reads this process's reply topic and the
answers topic (where a worker answers a query it refused before trusting its reply_to: a bad token, a reply
topic it does not know yet). One producer's delivery reports are served by the same thread.

Query ids are namespaced by tenant: a request registered with its tenant is handed only deltas and answers of
that tenant, so another tenant's query under the same id can neither answer nor fail it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streamrag.connectors.kafka_admin import client_config
from streamrag.connectors.kafka_reply_topics import HEARTBEAT_KEY, HEARTBEAT_S
from streamrag.core.config import KafkaConfig
from streamrag.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)
# what a waiter receives: a decoded delta or answer (a dict), or an error text when its query was not delivered
Delivery = Callable[[dict[str, Any] | str], None]


class ReplyRouter:
    """Routes messages keyed by query_id to registered waiters; sends queries and other events."""

    def __init__(self, k: KafkaConfig, topics: list[str], heartbeat_topic: str | None = None) -> None:
        """``heartbeat_topic``: this replica's reply topic, written every HEARTBEAT_S seconds so that other
        gateways see it alive (connectors/kafka_reply_topics.py)."""
        self.k = k
        self.topics = topics
        self.heartbeat_topic = heartbeat_topic
        self._waiters: dict[str, tuple[Delivery, str | None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_reply_at = 0.0  # time.monotonic() of the last message for a waiter (readiness)
        self._consumer: Any = None
        self.producer: Any = Producer(client_config(k, **{"linger.ms": 0, "enable.idempotence": True}))

    def start(self) -> None:
        """Assign the consumer at the current end of every partition, then start reading."""
        c = Consumer(client_config(self.k, **{"group.id": "streamrag-gateway", "enable.auto.commit": False}))
        tps = []
        for topic in self.topics:
            md = c.list_topics(topic, timeout=self.k.timeout_s)
            if topic not in md.topics or md.topics[topic].error is not None:
                c.close()
                raise ServiceUnavailable(f"topic {topic} does not exist (run: streamrag topics create)")
            for p in md.topics[topic].partitions:
                _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=self.k.timeout_s)
                tps.append(TopicPartition(topic, p, hi))
        c.assign(tps)
        self._consumer = c
        self._thread = threading.Thread(target=self._run, name="gateway-replies", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.producer.flush(2)

    # -- waiting ------------------------------------------------------------------------------
    def register(self, query_id: str, deliver: Delivery, tenant: str | None = None) -> bool:
        """False when a request with this query_id is already waiting here. With ``tenant``, only messages of that
        tenant reach ``deliver`` (None: any, for callers that do not know it)."""
        with self._lock:
            if query_id in self._waiters:
                return False
            self._waiters[query_id] = (deliver, tenant)
            return True

    def unregister(self, query_id: str) -> None:
        with self._lock:
            self._waiters.pop(query_id, None)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- sending ------------------------------------------------------------------------------
    def send(self, topic: str, key: str, value: bytes, query_id: str | None = None) -> None:
        """Produce without blocking; a failed delivery is reported to the waiter of ``query_id``."""

        def report(err: Any, _msg: Any) -> None:
            if err is not None:
                log.warning("message to %s not delivered: %s", topic, err)
                waiter = self._waiters.get(query_id or "")
                if waiter is not None:
                    waiter[0](f"not delivered to Kafka: {err}")

        try:
            self.producer.produce(topic, key=key.encode(), value=value, on_delivery=report)
        except (BufferError, KafkaException) as exc:
            raise ServiceUnavailable(f"Kafka did not take the message: {exc}") from exc

    def send_and_flush(self, topic: str, items: list[tuple[str, bytes]],
                       headers: list[tuple[str, bytes]] | None = None) -> None:
        """Produce and wait until every message is delivered (document changes, feedback)."""
        errors: list[str] = []
        for key, value in items:
            self.producer.produce(topic, key=key.encode(), value=value, headers=headers,
                                  on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
        left = self.producer.flush(self.k.timeout_s)
        if left or errors:
            raise ServiceUnavailable(f"Kafka at {self.k.bootstrap} did not take the messages: "
                                     f"{errors[0] if errors else f'{left} undelivered'}")

    # -- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        c = self._consumer
        beat = -HEARTBEAT_S
        try:
            while not self._stop.is_set():
                if self.heartbeat_topic and time.monotonic() - beat >= HEARTBEAT_S:
                    beat = time.monotonic()
                    try:
                        self.producer.produce(self.heartbeat_topic, key=HEARTBEAT_KEY, value=b"{}")
                    except (BufferError, KafkaException) as exc:
                        log.warning("reply topic heartbeat not sent: %s", exc)
                self.producer.poll(0)
                try:
                    msgs = c.consume(500, 0.05)
                except KafkaException as exc:
                    log.warning("reading replies failed: %s", exc)
                    time.sleep(0.5)
                    continue
                for m in msgs:
                    self._route(m)
        finally:
            c.close()

    def _route(self, m: Any) -> None:
        """One message to the request waiting for its key, when it is of that request's tenant."""
        if m.error() is not None or not m.value() or m.key() is None or m.key() == HEARTBEAT_KEY:
            return
        waiter = self._waiters.get(m.key().decode("utf-8", "replace"))
        if waiter is None:
            return
        try:
            data = json.loads(m.value())
        except (ValueError, RecursionError):
            return
        deliver, tenant = waiter
        if not isinstance(data, dict) or (tenant is not None and data.get("tenant") != tenant):
            return  # another tenant's query under the same id (or no tenant at all): not this request's
        self.last_reply_at = time.monotonic()
        deliver(data)
