"""Follow the compacted cache topic (rebuild at start, then tail) and the index-events topic
(invalidate within a second) in a supervised background thread of every query worker process.

Supervision: if the thread dies, the cache stops serving at once (lookups miss, answers keep
flowing uncached), ``state`` says so (``streamrag status`` shows it), and the thread is started
again after a pause. A restart cannot know which index events it missed, so every entry becomes
unverified and is checked against the index in bulk before the cache serves again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from streamrag.connectors.kafka_admin import client_config
from streamrag.core import telemetry
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.config import KafkaConfig, TopicsConfig
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.json_limits import JsonLimits, Reason, read_model
from streamrag.core.retry import is_transient
from streamrag.core.sealing import TopicSealer
from streamrag.schemas.models import CacheEntry, IndexEvent

log = logging.getLogger(__name__)
StatsSink = Callable[[dict[str, Any]], None]


class CacheFollower:
    def __init__(self, k: KafkaConfig, topics: TopicsConfig, limits: JsonLimits, cache: SemanticCache,
                 sealer: TopicSealer, publish_stats: StatsSink | None = None, restart_after_s: float = 2.0,
                 report_every_s: float = 10.0) -> None:
        """``k``: the cluster; ``topics``: the cache and index-events topics; ``limits``: the bounds of a record;
        ``sealer``: opens the cache topic's entries (encrypted when the deployment has keys)."""
        self.k = k
        self.topics = topics
        self.limits = limits
        self.cache = cache
        self.sealer = sealer
        self.publish_stats = publish_stats
        self.restart_after_s = restart_after_s
        self.report_every_s = report_every_s
        self.state = "starting"
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- start and supervise --------------------------------------------------------------------
    def start(self, rebuild_timeout_s: float = 60.0) -> None:
        """Rebuild the in-process index from the cache topic, then follow both topics."""
        c = self._consumer(rebuild=True, rebuild_timeout_s=rebuild_timeout_s)
        self.state = "following"
        self._thread = threading.Thread(target=self._supervise, args=(c,), name="cache-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _supervise(self, c: Consumer) -> None:
        while not self._stop.is_set():
            try:
                self._follow(c)
                return
            except Exception:  # the follower must never die silently: stop serving, restart
                log.exception("cache follower died; cache hits are off until it is back")
                self.cache.serving = False
                self.state = "restarting"
                self.restarts += 1
                self._report()
                self._close(c)
            while not self._stop.wait(self.restart_after_s):
                try:
                    c = self._consumer(rebuild=False)
                    self.cache.tracker.verified.clear()  # events may have been missed: check all
                    self.cache.tracker.pending.update(self.cache.index.meta)
                    while self.cache.pending() and not self._stop.is_set():
                        if not self.cache.verify_pending(limit=5000):
                            break  # no way to check here: each entry is checked on its first hit
                    self.cache.serving = True
                    self.state = "following"
                    log.info("cache follower restarted (%d restarts)", self.restarts)
                    break
                except Exception:  # Kafka or the index still unavailable: try again later
                    log.warning("cache follower restart failed; retrying", exc_info=True)

    @staticmethod
    def _close(c: Consumer) -> None:
        with contextlib.suppress(RuntimeError):  # already closed
            c.close()

    # -- the consumer -----------------------------------------------------------------------------
    def _consumer(self, rebuild: bool, rebuild_timeout_s: float = 60.0) -> Consumer:
        c = Consumer(client_config(self.k, **{"group.id": "streamrag-cache-follower", "enable.auto.commit": False}))
        md = c.list_topics(timeout=self.k.timeout_s)
        cache_t, ev_t = self.topics.cache, self.topics.index_events
        if cache_t not in md.topics or ev_t not in md.topics:
            c.close()
            raise ServiceUnavailable(f"topics {cache_t} / {ev_t} missing (run: streamrag topics create)")
        ends, pos = {}, {}
        assign = []
        for p in md.topics[cache_t].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(cache_t, p), timeout=self.k.timeout_s)
            ends[p], pos[p] = hi, lo
            assign.append(TopicPartition(cache_t, p, OFFSET_BEGINNING if rebuild else hi))
        for p in md.topics[ev_t].partitions:
            _, hi = c.get_watermark_offsets(TopicPartition(ev_t, p), timeout=self.k.timeout_s)
            assign.append(TopicPartition(ev_t, p, hi))
        c.assign(assign)
        if rebuild:  # read the cache topic up to the end offsets seen at start
            deadline = time.monotonic() + rebuild_timeout_s
            while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
                for m in c.consume(1000, 0.2):
                    self.handle(m)
                    part, off = m.partition(), m.offset()
                    if m.error() is None and m.topic() == cache_t and part is not None and off is not None:
                        pos[part] = off + 1
            log.info("semantic cache rebuilt from %s: %d entries", cache_t, self.cache.size())
        return c

    def _follow(self, c: Consumer) -> None:
        last_report = 0.0
        try:
            while not self._stop.is_set():
                for m in c.consume(500, 0.1):
                    self.handle(m)
                if self.cache.pending():
                    self.cache.verify_pending()
                if time.monotonic() - last_report >= self.report_every_s:
                    last_report = time.monotonic()
                    self._report()
        finally:
            self._close(c)

    def handle(self, m: Message) -> None:
        """One record of the cache or index-events topic. An unreadable one is logged, counted and skipped;
        a cache entry that fails to apply is skipped too (a missing entry is only a miss). A failure to
        invalidate is raised to the supervisor: serving a stale entry is worse than serving none."""
        if m.error() is not None:
            return
        value = m.value()
        if m.topic() == self.topics.cache:
            raw_key = m.key()
            key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
            if value:
                value = self.sealer.cache_value(raw_key, value)
                if value is None:
                    return self._skip(m, "the entry does not decrypt with the keys set")
            entry = read_model(value, CacheEntry, self.limits) if value else None
            if isinstance(entry, Reason):
                return self._skip(m, entry)
            try:
                self.cache.apply_topic_record(entry, key)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.exception("cache entry %s could not be applied", key)
                self._skip(m, f"{type(exc).__name__}: {exc}")
        elif value:
            ev = read_model(value, IndexEvent, self.limits)
            if isinstance(ev, Reason):
                return self._skip(m, ev)
            if ev.status in ("indexed", "deleted"):
                self.cache.invalidate(ev.tenant, ev.doc_id, ev.version)
        return None

    def _skip(self, m: Message, why: str) -> None:
        log.warning("ignoring unreadable record on %s/%s/%s: %s", m.topic(), m.partition(), m.offset(), why)
        telemetry.FOLLOWER_SKIPPED.labels(m.topic() or "").inc()

    def _report(self) -> None:
        """Hit rates, lookup latency and follower state: logged, and handed to ``publish_stats``."""
        stats = {**self.cache.stats.as_dict(), "entries": self.cache.size(), "follower": self.state,
                 "follower_restarts": self.restarts, "serving": self.cache.serving, "at": time.time()}
        log.info("cache stats: %s", stats)
        if self.publish_stats is not None:
            self.publish_stats(stats)
