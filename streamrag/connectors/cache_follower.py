"""Follow the compacted cache topic (rebuild at start, then tail) and the index-events topic
(invalidate within a second) in a background thread of every query worker process."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import Any

from streamrag.connectors.kafka import client_config
from streamrag.schemas.models import CacheEntry
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.settings import Settings

log = logging.getLogger(__name__)


class CacheFollower:
    def __init__(self, s: Settings, cache: SemanticCache) -> None:
        self.s = s
        self.cache = cache
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rebuilt = 0
        self.report_every_s = 10.0

    def _consumer(self) -> Any:
        from confluent_kafka import Consumer

        return Consumer(client_config(self.s, **{"group.id": "streamrag-cache-follower", "enable.auto.commit": False}))

    def start(self, rebuild_timeout_s: float = 60.0) -> None:
        """Rebuild the in-process index from the cache topic, then follow both topics."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        c = self._consumer()
        md = c.list_topics(timeout=self.s.kafka_timeout_s)
        cache_t, ev_t = self.s.topic_cache, self.s.topic_index_events
        if cache_t not in md.topics or ev_t not in md.topics:
            c.close()
            raise ServiceUnavailable(f"topics {cache_t} / {ev_t} missing (run: streamrag topics create)")
        ends, pos = {}, {}
        assign = []
        for p in md.topics[cache_t].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(cache_t, p), timeout=self.s.kafka_timeout_s)
            ends[p], pos[p] = hi, lo
            assign.append(TopicPartition(cache_t, p, OFFSET_BEGINNING))
        for p in md.topics[ev_t].partitions:
            _, hi = c.get_watermark_offsets(TopicPartition(ev_t, p), timeout=self.s.kafka_timeout_s)
            assign.append(TopicPartition(ev_t, p, hi))
        c.assign(assign)
        # Rebuild: read the cache topic up to the end offsets seen at start.
        deadline = time.monotonic() + rebuild_timeout_s
        while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            for m in c.consume(1000, 0.2):
                self._handle(m)
                if m.error() is None and m.topic() == cache_t:
                    pos[m.partition()] = m.offset() + 1
        log.info("semantic cache rebuilt from %s: %d entries", cache_t, self.cache.size())
        self._thread = threading.Thread(target=self._run, args=(c,), name="cache-follower", daemon=True)
        self._thread.start()

    def _run(self, c: Any) -> None:
        last_report = 0.0
        try:
            while not self._stop.is_set():
                for m in c.consume(500, 0.1):
                    self._handle(m)
                if self.cache.pending():
                    self.cache.verify_pending()
                if time.monotonic() - last_report >= self.report_every_s:
                    last_report = time.monotonic()
                    self.report()
        except Exception:  # pragma: no cover - keep the worker answering without the follower
            log.exception("cache follower stopped")
        finally:
            c.close()

    def _handle(self, m: Any) -> None:
        if m.error() is not None:
            return
        try:
            if m.topic() == self.s.topic_cache:
                key = m.key().decode() if m.key() else None
                entry = CacheEntry.model_validate_json(m.value()) if m.value() else None
                self.cache.apply_topic_record(entry, key)
                self.rebuilt += 1
            elif m.value():
                ev = json.loads(m.value())
                if ev.get("status") in ("indexed", "deleted"):
                    self.cache.invalidate(ev["tenant"], ev["doc_id"], int(ev["version"]))
        except Exception as exc:
            log.warning("ignoring unreadable record on %s: %s", m.topic(), exc)

    def report(self) -> None:
        """Hit rates and lookup latency: logged, and published to Redis for ``streamrag status``."""
        stats = {**self.cache.stats.as_dict(), "entries": self.cache.size(), "at": time.time()}
        log.info("cache stats: %s", stats)
        r = self.cache.redis
        if r is not None:
            key = f"streamrag:stats:cache:{socket.gethostname()}:{os.getpid()}"
            r._call(lambda cl: cl.set(key, json.dumps(stats), ex=int(self.report_every_s * 3) + 1), None)

    def stop(self) -> None:
        self._stop.set()
