"""Which topics exist (for reply_to): the broker's topic list, refreshed at most every few seconds."""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaException

from streamrag.connectors.kafka_admin import admin
from streamrag.core.config import KafkaConfig

log = logging.getLogger(__name__)


class TopicDirectory:
    def __init__(self, k: KafkaConfig, refresh_s: float = 5.0) -> None:
        self.k = k
        self.refresh_s = refresh_s
        self._known: set[str] = set()
        self._at = 0.0
        self._lock = threading.Lock()

    def exists(self, topic: str) -> bool:
        if topic in self._known:
            return True
        with self._lock:
            if time.monotonic() - self._at >= self.refresh_s:
                try:
                    self._known = set(admin(self.k).list_topics(timeout=self.k.timeout_s).topics)
                except KafkaException as exc:  # unknown: refuse now, ask again at the next refresh
                    log.warning("listing topics failed: %s", exc)
                self._at = time.monotonic()
        return topic in self._known
