"""Offset commits for a consumer group without joining it.

bytewax's Kafka source keeps its offsets only in recovery state. So that a restarted query worker
resumes after what it answered, and so that ordinary tools (and ``streamrag status``) see lag,
the flows commit the offsets of records whose outputs have been flushed to Kafka (see kafka_sink).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streamrag.connectors.kafka_admin import client_config
from streamrag.core.config import KafkaConfig

log = logging.getLogger(__name__)
Position = tuple[str, int, int]  # topic, partition, offset of the last done record


def newest(positions: Iterable[Position]) -> dict[tuple[str, int], int]:
    best: dict[tuple[str, int], int] = {}
    for topic, part, off in positions:
        best[(topic, part)] = max(best.get((topic, part), -1), off)
    return best


class OffsetCommitter:
    """Commits synchronously: when ``commit`` returns, the group resumes after those records."""

    def __init__(self, k: KafkaConfig, group: str) -> None:
        self.k = k
        self.group = group
        self._c: Consumer | None = None
        self._lock = threading.Lock()

    def commit(self, positions: Iterable[Position]) -> None:
        best = newest(positions)
        if not best:
            return
        with self._lock:
            if self._c is None:
                self._c = Consumer(client_config(self.k, **{"group.id": self.group, "enable.auto.commit": False}))
            self._c.commit(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in best.items()], asynchronous=False)

    def __call__(self, positions: Iterable[Position]) -> None:
        self.commit(positions)


class BackgroundCommitter:
    """Commits off the hot path: positions handed in (already flushed) are committed by a daemon
    thread every ``every_s``; a restart re-reads at most that interval (at-least-once)."""

    def __init__(self, k: KafkaConfig, group: str, every_s: float = 5.0) -> None:
        self._inner = OffsetCommitter(k, group)
        self.every_s = every_s
        self._pending: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __call__(self, positions: Iterable[Position]) -> None:
        with self._lock:
            for key, off in newest(positions).items():
                if off > self._pending.get(key, -1):
                    self._pending[key] = off
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="offset-committer", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        """Commit what is pending now (tests, shutdown)."""
        with self._lock:
            ready, self._pending = self._pending, {}
        if ready:
            self._commit(ready)

    def _commit(self, ready: dict[tuple[str, int], int]) -> None:
        try:
            self._inner.commit((t, p, o) for (t, p), o in ready.items())
        except KafkaException as exc:
            log.warning("offset commit failed (will retry): %s", exc)
            with self._lock:  # keep them, unless newer ones arrived meanwhile
                for k, o in ready.items():
                    if o > self._pending.get(k, -1):
                        self._pending[k] = o

    def _run(self) -> None:
        while True:
            time.sleep(self.every_s)
            self.flush()
