"""The in-process index of cache entries: per-entry metadata, which entries cite which document,
the vectors of each (tenant, options) group, and exact-key aliases left by semantic hits.

Not thread-safe by itself: SemanticCache holds one lock around it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from cachetools import LRUCache

from streamrag.core.cache.vector_index import VectorIndex
from streamrag.schemas.models import CacheEntry


@dataclass
class EntryMeta:
    key: str
    tenant: str
    opts: str
    expires: float
    cites: dict[str, int]


class EntryIndex:
    def __init__(self, alias_max: int = 10_000) -> None:
        self.meta: dict[str, EntryMeta] = {}
        self.by_doc: dict[tuple[str, str], set[str]] = {}
        self.groups: dict[tuple[str, str], VectorIndex] = {}
        self._aliases_of: dict[str, set[str]] = {}
        self.alias: _Aliases = _Aliases(max(alias_max, 1), self._forget_alias)
        self.alias_max = alias_max

    def __len__(self) -> int:
        return len(self.meta)

    def add(self, e: CacheEntry) -> None:
        exp = e.expires_at.timestamp() if e.expires_at else float("inf")
        if e.cache_key not in self.meta and e.embedding:
            v = np.asarray(e.embedding, dtype=np.float32)
            n = float(np.linalg.norm(v))
            if n > 0:
                g = self.groups.get((e.tenant, e.options_hash))
                if g is None:
                    g = self.groups[(e.tenant, e.options_hash)] = VectorIndex(v.shape[0])
                g.add(e.cache_key, v / n)
        self.meta[e.cache_key] = EntryMeta(
            e.cache_key, e.tenant, e.options_hash, exp, {c.doc_id: c.version for c in e.cites}
        )
        for c in e.cites:
            self.by_doc.setdefault((e.tenant, c.doc_id), set()).add(e.cache_key)

    def remove(self, key: str) -> EntryMeta | None:
        for a in self._aliases_of.pop(key, ()):
            self.alias.pop(a, None)
        m = self.meta.pop(key, None)
        if m is None:
            return None
        g = self.groups.get((m.tenant, m.opts))
        if g is not None:
            g.remove(key)
        for d in m.cites:
            s = self.by_doc.get((m.tenant, d))
            if s is not None:
                s.discard(key)
                if not s:
                    self.by_doc.pop((m.tenant, d), None)
        return m

    def citing_older(self, tenant: str, doc_id: str, version: int) -> list[str]:
        """Keys of entries citing ``doc_id`` at a version older than ``version``."""
        return [k for k in self.by_doc.get((tenant, doc_id), set()) if self.meta[k].cites.get(doc_id, -1) < version]

    def search(self, tenant: str, opts: str, vector: np.ndarray, threshold: float) -> list[tuple[str, float]]:
        g = self.groups.get((tenant, opts))
        return g.search(np.asarray(vector, dtype=np.float32), threshold) if g else []

    # -- aliases: a question answered by a semantic hit -> the entry it hit ------------------------
    def alias_target(self, key: str) -> str | None:
        return self.alias.get(key)

    def add_alias(self, own: str, target: str) -> None:
        if own == target or target not in self.meta:
            return
        old = self.alias.pop(own, None)
        if old is not None:
            self._aliases_of.get(old, set()).discard(own)
        self._aliases_of.setdefault(target, set()).add(own)
        self.alias[own] = target  # may evict the least recently used alias (_forget_alias)

    def _forget_alias(self, own: str, target: str) -> None:
        s = self._aliases_of.get(target)
        if s is not None:
            s.discard(own)
            if not s:
                del self._aliases_of[target]


class _Aliases(LRUCache[str, str]):
    """Exact-key aliases, least recently used evicted first; each eviction is reported to ``on_evict``."""

    def __init__(self, maxsize: int, on_evict: Callable[[str, str], None]) -> None:
        super().__init__(maxsize)
        self.on_evict = on_evict

    def popitem(self) -> tuple[str, str]:
        own, target = super().popitem()
        self.on_evict(own, target)
        return own, target
