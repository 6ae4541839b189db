"""The semantic answer cache: exact and semantic lookups, an in-process LRU in front of Redis.

- exact: normalised text + tenant + the asker's ACL scope + options -> one key.
- semantic: cosine similarity of query embeddings >= the tenant's threshold, among entries
  of the same tenant and options (a matrix product over normalised vectors; fast at 100k).
- safety: an entry is served only within its tenant and only to a principal allowed to see
  every chunk it cites (checked on every hit, exact or semantic).
- invalidation: entries record the doc ids and versions they cite; a newer version or a
  delete of any of them removes the entry (``invalidate``), here and in Redis.
- currency: an entry this process builds is current when it is stored, unless an index event
  for a cited document arrived while it was being built (then it is not stored at all); an
  entry rebuilt from the topic or read from Redis is checked against the index once (the
  follower thread does that in bulk after a rebuild), and index events keep it current after.
- aliases: a question answered by a semantic hit remembers its own exact key -> the entry it
  hit, so asking it again is an exact hit (no embedding); aliases go with their entry.
- Redis holds payloads and TTLs; the compacted cache topic is the source of truth from which
  a starting worker rebuilds its semantic index (see connectors/cache_topic.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from streamrag.connectors.redis_cache import RedisCache
from streamrag.schemas.models import Answer, CacheEntry, CitedDoc, Query
from streamrag.core.cache.policy import (
    TenantPolicy,
    exact_key,
    normalize,
    options_hash,
    polarity_conflict,
    scope_of,
    tenant_policy,
)
from streamrag.core.security import principal_may_see, principal_tokens

log = logging.getLogger(__name__)


@dataclass
class _Meta:
    """What the in-process index keeps per entry (the payload lives in the LRU and Redis)."""

    key: str
    tenant: str
    opts: str
    scope: str
    expires: float
    cites: dict[str, int]
    acl_tokens: list[list[str]]


class _Matrix:
    """Normalised embeddings of one (tenant, options) group, grown in blocks."""

    def __init__(self, dim: int) -> None:
        self.vecs = np.zeros((0, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.pos: dict[str, int] = {}

    def add(self, key: str, v: np.ndarray) -> None:
        if key in self.pos:
            self.vecs[self.pos[key]] = v
            return
        n = len(self.keys)
        if n == self.vecs.shape[0]:
            grown = np.zeros((max(64, n * 2), self.vecs.shape[1]), dtype=np.float32)
            grown[:n] = self.vecs[:n]
            self.vecs = grown
        self.vecs[n] = v
        self.keys.append(key)
        self.pos[key] = n

    def remove(self, key: str) -> None:
        i = self.pos.pop(key, None)
        if i is None:
            return
        last = len(self.keys) - 1
        if i != last:
            self.keys[i] = self.keys[last]
            self.vecs[i] = self.vecs[last]
            self.pos[self.keys[i]] = i
        self.keys.pop()

    def search(self, q: np.ndarray, threshold: float, limit: int = 8) -> list[tuple[str, float]]:
        n = len(self.keys)
        if n == 0:
            return []
        sims = self.vecs[:n] @ q
        idx = np.argpartition(-sims, limit)[:limit] if n > limit else np.arange(n)
        idx = idx[np.argsort(-sims[idx])]
        return [(self.keys[i], float(sims[i])) for i in idx if sims[i] >= threshold]


@dataclass
class CacheStats:
    lookups: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    unsafe_skips: int = 0
    guarded: int = 0
    invalidated: int = 0
    lookup_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lat = np.array(self.lookup_ms[-10_000:]) if self.lookup_ms else np.zeros(1)
        hits = self.exact_hits + self.semantic_hits
        return {
            "lookups": self.lookups, "exact_hits": self.exact_hits, "semantic_hits": self.semantic_hits,
            "hit_rate": round(hits / self.lookups, 4) if self.lookups else 0.0, "unsafe_skips": self.unsafe_skips,
            "guarded": self.guarded,
            "invalidated": self.invalidated, "lookup_ms_p50": round(float(np.percentile(lat, 50)), 3),
            "lookup_ms_p95": round(float(np.percentile(lat, 95)), 3),
        }


class SemanticCache:
    def __init__(
        self,
        redis: RedisCache | None,
        *,
        default_policy: TenantPolicy = TenantPolicy(),
        tenant_overrides: dict[str, dict[str, object]] | None = None,
        lru_size: int = 10_000,
        defaults: tuple[str, float, str] = ("rrf", 0.5, "none"),
        publish: Callable[[str, CacheEntry | None], None] | None = None,
        is_current: Callable[[str, list[tuple[str, int]]], bool] | None = None,
        live_versions: Callable[[str, list[str]], dict[str, int]] | None = None,
    ) -> None:
        self.is_current = is_current
        self.live_versions = live_versions
        self._verified: set[str] = set()
        self._pending: set[str] = set()  # in the index, not yet checked against it (verify_pending)
        # (tenant, doc_id) -> (newest version seen in index events, when): entries built from a
        # retrieval that started before such an event must not be stored (see put)
        self._seen: dict[tuple[str, str], tuple[int, float]] = {}
        self.race_window_s = 300.0
        self.seen_max = 200_000
        self._seen_pruned = 0.0
        self._seen_lost_at = 0.0  # when _seen last overflowed: puts that started before are unverified
        self.alias: OrderedDict[str, str] = OrderedDict()
        self._aliases_of: dict[str, set[str]] = {}
        self.redis = redis
        self.default_policy = default_policy
        self.overrides = tenant_overrides or {}
        self.lru: OrderedDict[str, CacheEntry] = OrderedDict()
        self.lru_size = lru_size
        self.defaults = defaults
        self.publish = publish
        self.meta: dict[str, _Meta] = {}
        self.by_doc: dict[tuple[str, str], set[str]] = {}
        self.groups: dict[tuple[str, str], _Matrix] = {}
        self.stats = CacheStats()
        self._lock = threading.RLock()

    # -- keys ---------------------------------------------------------------------------------
    def policy(self, tenant: str) -> TenantPolicy:
        return tenant_policy(tenant, self.default_policy, self.overrides)

    def keys_for(self, q: Query) -> tuple[str, str, str, str]:
        norm = normalize(q.text)
        scope = scope_of(q)
        opts = options_hash(q, *self.defaults)
        return norm, scope, opts, exact_key(q.tenant, norm, scope, opts)

    # -- lookups ------------------------------------------------------------------------------
    def lookup_exact(self, q: Query) -> Answer | None:
        if not q.options.use_cache or not self.policy(q.tenant).enabled:
            return None
        t = time.perf_counter()
        _, _, _, key = self.keys_for(q)
        entry = self._get(q.tenant, key)
        if entry is None:
            with self._lock:
                target = self.alias.get(key)
                if target is not None:
                    self.alias.move_to_end(key)
            if target is not None:
                entry = self._get(q.tenant, target)
        ans = self._serve(q, entry, "exact") if entry is not None else None
        self._record(t, ans, count=False)
        return ans

    def lookup_semantic(self, q: Query, vector: np.ndarray) -> Answer | None:
        """Call after lookup_exact missed; counts one lookup for the pair."""
        pol = self.policy(q.tenant)
        if not q.options.use_cache or not pol.enabled:
            return None
        t = time.perf_counter()
        norm, _, opts, own = self.keys_for(q)
        ans = None
        with self._lock:
            group = self.groups.get((q.tenant, opts))
            cands = group.search(np.asarray(vector, dtype=np.float32), pol.threshold) if group else []
        for key, _sim in cands:
            entry = self._get(q.tenant, key)
            if entry is not None:
                if pol.guard and polarity_conflict(norm, entry.normalized_text):
                    with self._lock:
                        self.stats.guarded += 1
                    continue
                ans = self._serve(q, entry, "semantic")
                if ans is not None:
                    self._add_alias(own, key)
                    break
        self._record(t, ans, count=True)
        return ans

    def _add_alias(self, own: str, target: str) -> None:
        if own == target:
            return
        with self._lock:
            if target not in self.meta:
                return
            old = self.alias.pop(own, None)
            if old is not None:
                self._aliases_of.get(old, set()).discard(own)
            self.alias[own] = target
            self._aliases_of.setdefault(target, set()).add(own)
            while len(self.alias) > self.lru_size:
                k, t = self.alias.popitem(last=False)
                s = self._aliases_of.get(t)
                if s is not None:
                    s.discard(k)
                    if not s:
                        del self._aliases_of[t]

    def _record(self, t: float, ans: Answer | None, count: bool) -> None:
        ms = (time.perf_counter() - t) * 1000
        with self._lock:
            if ans is not None or count:
                self.stats.lookups += 1
            if ans is not None:
                if ans.cache_lookup == "exact":
                    self.stats.exact_hits += 1
                else:
                    self.stats.semantic_hits += 1
            self.stats.lookup_ms.append(ms)
            if len(self.stats.lookup_ms) > 20_000:
                del self.stats.lookup_ms[:10_000]

    def _serve(self, q: Query, entry: CacheEntry, kind: str) -> Answer | None:
        if entry.tenant != q.tenant:
            return None
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            return None
        toks = principal_tokens(q.principal)
        if not all(principal_may_see(toks, acl) for acl in entry.acl_tokens) or len(entry.acl_tokens) != len(
            entry.answer.citations
        ):
            with self._lock:
                self.stats.unsafe_skips += 1
            return None
        if self.is_current is not None and entry.cache_key not in self._verified:
            # Checked once per entry and process: after that, index events invalidate it. This
            # catches entries rebuilt from the topic, or stored while their invalidation passed.
            cites = [(c.doc_id, c.version) for c in entry.cites]
            try:
                current = self.is_current(entry.tenant, cites)
            except Exception:
                log.warning("cache currency check failed; entry dropped", exc_info=True)
                current = False
            if not current:
                # a cited document changed while this worker was not following index events
                for d, _v in cites:
                    self.invalidate(entry.tenant, d, 1 << 62, event=False)
                return None
            with self._lock:
                self._verified.add(entry.cache_key)
                self._pending.discard(entry.cache_key)
        return entry.answer.model_copy(update={"query_id": q.query_id, "cached": True, "cache_lookup": kind})

    def _get(self, tenant: str, key: str) -> CacheEntry | None:
        with self._lock:
            e = self.lru.get(key)
            if e is not None:
                self.lru.move_to_end(key)
                return e
            m = self.meta.get(key)
        if self.redis is None:
            return None
        raw = self.redis.get(tenant, key)
        if raw is None:
            if m is not None and m.expires <= time.time():
                self._forget(key)
            return None
        try:
            e = CacheEntry.model_validate_json(raw)
        except Exception:
            return None
        self._remember(e, lru=True)
        return e

    # -- writes -------------------------------------------------------------------------------
    def make_entry(
        self, q: Query, vector: Sequence[float], answer: Answer, acl_tokens: list[list[str]]
    ) -> CacheEntry | None:
        pol = self.policy(q.tenant)
        if not pol.enabled or not q.options.use_cache or answer.status != "ok" or answer.cached:
            return None
        norm, scope, opts, key = self.keys_for(q)
        now = datetime.now(UTC)
        cites: dict[str, int] = {}
        doc_types = [str(c.metadata["type"]) for c in answer.citations if c.metadata.get("type") is not None]
        for c in answer.citations:
            cites[c.doc_id] = max(cites.get(c.doc_id, 0), c.version)
        return CacheEntry(
            tenant=q.tenant, cache_key=key, normalized_text=norm, scope=scope, options_hash=opts,
            embedding=[round(float(x), 6) for x in vector], answer=answer.model_copy(update={"timings_ms": {}}),
            cites=[CitedDoc(doc_id=d, version=v) for d, v in sorted(cites.items())], acl_tokens=acl_tokens,
            created_at=now, expires_at=now + timedelta(seconds=pol.ttl_for(doc_types)),
        )

    def put(self, entry: CacheEntry, started: float | None = None) -> bool:
        """A new answer: Redis (payload + TTL), the in-process index, and the cache topic.

        ``started`` is the wall-clock time its retrieval started. When given, the entry counts
        as verified current unless an index event newer than a cited version has been seen (then
        it was built from a superseded version and is not stored); events after this call
        invalidate it as usual. Without it, the first hit checks the index."""
        ttl = (entry.expires_at - datetime.now(UTC)).total_seconds() if entry.expires_at else self.policy(entry.tenant).ttl_s
        if ttl <= 0:
            return False
        with self._lock:
            for c in entry.cites:
                seen = self._seen.get((entry.tenant, c.doc_id))
                if seen is not None and seen[0] > c.version:
                    return False
            verified = (
                started is not None and time.time() - started < self.race_window_s and started > self._seen_lost_at
            )
            self._remember(entry, lru=True, verified=verified)
        if self.redis is not None:
            self.redis.put(entry.tenant, entry.cache_key, entry.model_dump_json().encode(), ttl)
        if self.publish is not None:
            self.publish(f"{entry.tenant}/{entry.cache_key}", entry)
        return True

    def apply_topic_record(self, entry: CacheEntry | None, key: str | None = None) -> None:
        """Rebuild / follow from the cache topic: an entry, or a tombstone for ``key`` (tenant/cache_key)."""
        if entry is None:
            if key:
                self._forget(key.split("/", 1)[-1])
            return
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            self._forget(entry.cache_key)
            return
        self._remember(entry, lru=False)

    def _remember(self, e: CacheEntry, lru: bool, verified: bool = False) -> None:
        exp = e.expires_at.timestamp() if e.expires_at else float("inf")
        with self._lock:
            if verified:
                self._verified.add(e.cache_key)
                self._pending.discard(e.cache_key)
            elif e.cache_key not in self._verified and self.is_current is not None:
                self._pending.add(e.cache_key)
            if lru:
                self.lru[e.cache_key] = e
                self.lru.move_to_end(e.cache_key)
                while len(self.lru) > self.lru_size:
                    self.lru.popitem(last=False)
            if e.cache_key not in self.meta and e.embedding:
                v = np.asarray(e.embedding, dtype=np.float32)
                n = float(np.linalg.norm(v))
                if n > 0:
                    g = self.groups.get((e.tenant, e.options_hash))
                    if g is None:
                        g = self.groups[(e.tenant, e.options_hash)] = _Matrix(v.shape[0])
                    g.add(e.cache_key, v / n)
            self.meta[e.cache_key] = _Meta(
                e.cache_key, e.tenant, e.options_hash, e.scope, exp, {c.doc_id: c.version for c in e.cites}, e.acl_tokens
            )
            for c in e.cites:
                self.by_doc.setdefault((e.tenant, c.doc_id), set()).add(e.cache_key)

    def _forget(self, key: str) -> _Meta | None:
        with self._lock:
            self.lru.pop(key, None)
            self._verified.discard(key)
            self._pending.discard(key)
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

    # -- invalidation -------------------------------------------------------------------------
    def invalidate(
        self, tenant: str, doc_id: str, version: int, publish: bool = True, event: bool = True
    ) -> list[str]:
        """A newer version or a delete of doc_id (an index event unless ``event`` is false):
        drop every entry citing an older version."""
        with self._lock:
            if event:
                self._note_event(tenant, doc_id, version)
            keys = [k for k in self.by_doc.get((tenant, doc_id), set()) if self.meta[k].cites.get(doc_id, -1) < version]
        return self._drop(tenant, keys, publish)

    def verify_pending(self, limit: int = 1000) -> int:
        """Check up to ``limit`` unchecked entries (rebuilt from the topic, or written by other
        workers) against the index in bulk, so their first hit needs no index read. Call it from
        the thread that applies index events: an event newer than the read is applied after it.
        Returns how many entries were checked."""
        if self.live_versions is None:
            return 0
        with self._lock:
            keys = [k for _, k in zip(range(limit), self._pending, strict=False)]
            metas = [m for k in keys if (m := self.meta.get(k)) is not None]
            self._pending.difference_update(keys)
        by_tenant: dict[str, list[_Meta]] = {}
        for m in metas:
            by_tenant.setdefault(m.tenant, []).append(m)
        for tenant, ms in by_tenant.items():
            try:
                live = self.live_versions(tenant, sorted({d for m in ms for d in m.cites}))
            except Exception:
                log.warning("cache currency check failed; entries checked on their first hit", exc_info=True)
                continue
            stale: list[str] = []
            with self._lock:
                for m in ms:
                    if self.meta.get(m.key) is not m:  # gone or replaced meanwhile
                        continue
                    if all(live.get(d) == v for d, v in m.cites.items()):
                        self._verified.add(m.key)
                    else:
                        stale.append(m.key)
            self._drop(tenant, stale)
        return len(metas)

    def _drop(self, tenant: str, keys: list[str], publish: bool = True) -> list[str]:
        """Remove entries here, in Redis and (tombstones) on the topic; returns those removed."""
        with self._lock:
            keys = [k for k in keys if self._forget(k) is not None]
            self.stats.invalidated += len(keys)
        if keys:
            if self.redis is not None:
                self.redis.delete(tenant, keys)
            if publish and self.publish is not None:
                for k in keys:
                    self.publish(f"{tenant}/{k}", None)
        return keys

    def pending(self) -> int:
        return len(self._pending)

    def _note_event(self, tenant: str, doc_id: str, version: int) -> None:
        now = time.time()
        prev = self._seen.get((tenant, doc_id))
        self._seen[(tenant, doc_id)] = (max(version, prev[0]) if prev else version, now)
        if len(self._seen) > 10_000 and now - self._seen_pruned > 10:
            self._seen_pruned = now
            self._seen = {k: v for k, v in self._seen.items() if now - v[1] < self.race_window_s}
        if len(self._seen) > self.seen_max:
            # A reindex storm: forget, and let entries built meanwhile be checked on their first hit.
            self._seen.clear()
            self._seen_lost_at = now

    def size(self) -> int:
        return len(self.meta)
