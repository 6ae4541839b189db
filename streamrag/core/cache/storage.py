"""Cache entry payloads: an in-process LRU in front of a shared payload store (Redis) with TTLs."""

from __future__ import annotations

import logging
import threading

from cachetools import LRUCache

from streamrag.core.json_limits import JsonLimits, Reason, read_model
from streamrag.core.ports import PayloadStore
from streamrag.schemas.models import CacheEntry

log = logging.getLogger(__name__)


class EntryStorage:
    def __init__(self, payloads: PayloadStore | None, lru_size: int = 10_000,
                 limits: JsonLimits = JsonLimits()) -> None:
        self.payloads = payloads
        self.limits = limits
        self.lru: LRUCache[str, CacheEntry] = LRUCache(maxsize=max(lru_size, 1))
        self.lru_size = lru_size
        self._lock = threading.Lock()

    def cached(self, key: str) -> CacheEntry | None:
        """From the LRU only."""
        with self._lock:
            return self.lru.get(key)

    def fetch(self, tenant: str, key: str) -> CacheEntry | None:
        """From the shared store (a miss when it is down or the payload is unreadable)."""
        if self.payloads is None:
            return None
        raw = self.payloads.get(tenant, key)
        if raw is None:
            return None
        entry = read_model(raw, CacheEntry, self.limits)
        if isinstance(entry, Reason):
            log.warning("unreadable cache payload %s ignored: %s", key, entry)
            return None
        return entry

    def keep(self, e: CacheEntry) -> None:
        """Into the LRU (evicting the least recently used)."""
        if self.lru_size == 0:
            return
        with self._lock:
            self.lru[e.cache_key] = e

    def save(self, e: CacheEntry, ttl_s: float) -> None:
        if self.payloads is not None:
            self.payloads.put(e.tenant, e.cache_key, e.model_dump_json().encode(), ttl_s)

    def drop_local(self, key: str) -> None:
        with self._lock:
            self.lru.pop(key, None)

    def delete(self, tenant: str, keys: list[str]) -> None:
        with self._lock:
            for k in keys:
                self.lru.pop(k, None)
        if self.payloads is not None and keys:
            self.payloads.delete(tenant, keys)
