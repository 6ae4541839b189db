"""The semantic answer cache: exact and semantic lookups over entries kept in small parts.

- exact: normalised text + tenant + the asker's ACL scope + options -> one key (policy.py).
- semantic: cosine of query embeddings >= the tenant's threshold among entries of the same tenant
  and options (vector_index.py), refused across a polarity conflict (policy.py).
- safety: an entry is served only within its tenant and only to a principal allowed to see every
  chunk it cites (checked on every hit), and only while it is current (invalidation.py).
- storage: payloads in an LRU in front of Redis (storage.py); metadata, per-document citations,
  vectors and aliases in the in-process index (entry_index.py).
- supervision: ``serving`` is false while the follower that applies index events is down; then
  lookups miss and nothing is stored, so no entry can be served past an invalidation it missed.

Nothing here raises into a query: failures are logged, counted in ``stats.errors`` and become misses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from streamrag.core.cache.entry_index import EntryIndex, EntryMeta
from streamrag.core.cache.invalidation import InvalidationTracker
from streamrag.core.cache.policy import (
    TenantPolicy,
    exact_key,
    normalize,
    options_hash,
    polarity_conflict,
    scope_of,
    tenant_policy,
)
from streamrag.core.cache.stats import CacheStats
from streamrag.core.cache.storage import EntryStorage
from streamrag.core.config import CacheTenantSettings
from streamrag.core.ports import EntryPublisher, PayloadStore
from streamrag.core.scope import scope_for
from streamrag.schemas.models import Answer, CacheEntry, CitedDoc, Query

log = logging.getLogger(__name__)
IsCurrent = Callable[[str, list[tuple[str, int]]], bool]
LiveVersions = Callable[[str, list[str]], dict[str, int]]


class SemanticCache:
    def __init__(
        self,
        payloads: PayloadStore | None,
        *,
        default_policy: TenantPolicy | None = None,
        tenant_overrides: Mapping[str, CacheTenantSettings] | None = None,
        lru_size: int = 10_000,
        defaults: tuple[str, float, str] = ("auto", 0.5, "none"),
        publish: EntryPublisher | None = None,
        is_current: IsCurrent | None = None,
        live_versions: LiveVersions | None = None,
        answerer: str = "",
    ) -> None:
        self.storage = EntryStorage(payloads, lru_size)
        self.index = EntryIndex(alias_max=lru_size)
        self.tracker = InvalidationTracker()
        self.default_policy = default_policy or TenantPolicy()
        self.overrides = dict(tenant_overrides or {})
        self.defaults = defaults
        self.answerer = answerer  # what writes the answers (answerer_tag): part of every key
        self.publish = publish
        self.is_current = is_current
        self.live_versions = live_versions
        self.stats = CacheStats()
        self.serving = True
        self._lock = threading.RLock()

    # -- keys ---------------------------------------------------------------------------------
    def policy(self, tenant: str) -> TenantPolicy:
        return tenant_policy(tenant, self.default_policy, self.overrides)

    def keys_for(self, q: Query, index: str = "") -> tuple[str, str, str, str]:
        """``index``: the index version's cache tag (entries of another version never match)."""
        norm = normalize(q.text)
        scope = scope_of(scope_for(q))
        opts = options_hash(q, *self.defaults, index=index, answerer=self.answerer)
        return norm, scope, opts, exact_key(q.tenant, norm, scope, opts)

    def _usable(self, q: Query) -> bool:
        if not q.options.use_cache or not self.policy(q.tenant).enabled:
            return False
        if not self.serving:
            with self._lock:
                self.stats.bypassed += 1
            return False
        return True

    # -- lookups ------------------------------------------------------------------------------
    def lookup_exact(self, q: Query, index: str = "") -> Answer | None:
        if not self._usable(q):
            return None
        t = time.perf_counter()
        try:
            _, _, _, key = self.keys_for(q, index)
            entry = self._get(q.tenant, key)
            if entry is None:
                with self._lock:
                    target = self.index.alias_target(key)
                entry = self._get(q.tenant, target) if target is not None else None
            ans = self._serve(q, entry, "exact") if entry is not None else None
        except Exception:
            self._failed("exact lookup")
            return None
        self._record(t, ans, count=False)
        return ans

    def lookup_semantic(self, q: Query, vector: np.ndarray, index: str = "") -> Answer | None:
        """Call after lookup_exact missed; counts one lookup for the pair."""
        if not self._usable(q):
            return None
        pol = self.policy(q.tenant)
        t = time.perf_counter()
        ans = None
        try:
            norm, _, opts, own = self.keys_for(q, index)
            with self._lock:
                cands = self.index.search(q.tenant, opts, vector, pol.threshold)
            for key, _sim in cands:
                entry = self._get(q.tenant, key)
                if entry is None:
                    continue
                if pol.guard and polarity_conflict(norm, entry.normalized_text):
                    with self._lock:
                        self.stats.guarded += 1
                    continue
                ans = self._serve(q, entry, "semantic")
                if ans is not None:
                    with self._lock:
                        self.index.add_alias(own, key)
                    break
        except Exception:
            self._failed("semantic lookup")
            return None
        self._record(t, ans, count=True)
        return ans

    def _failed(self, what: str) -> None:
        log.warning("cache %s failed; treated as a miss", what, exc_info=True)
        with self._lock:
            self.stats.errors += 1

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
            self.stats.record_latency(ms)

    def _serve(self, q: Query, entry: CacheEntry, kind: str) -> Answer | None:
        scope = scope_for(q)  # the same scope the query's searches have (core/scope.py)
        if entry.tenant != scope.tenant:
            return None
        if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
            return None
        if len(entry.acl_tokens) != len(entry.answer.citations) or not all(
            scope.sees(entry.tenant, acl) for acl in entry.acl_tokens
        ):
            with self._lock:
                self.stats.unsafe_skips += 1
            return None
        if self.is_current is not None and entry.cache_key not in self.tracker.verified:
            # Checked once per entry and process: after that, index events invalidate it.
            cites = [(c.doc_id, c.version) for c in entry.cites]
            if not self.is_current(entry.tenant, cites):
                for d, _v in cites:  # a cited document changed while this worker was not following
                    self.invalidate(entry.tenant, d, 1 << 62, event=False)
                return None
            with self._lock:
                self.tracker.confirm(entry.cache_key)
        return entry.answer.model_copy(update={"query_id": q.query_id, "variant": q.variant, "cached": True, "cache_lookup": kind})

    def _get(self, tenant: str, key: str) -> CacheEntry | None:
        e = self.storage.cached(key)
        if e is not None:
            return e
        e = self.storage.fetch(tenant, key)
        if e is None:
            with self._lock:
                m = self.index.meta.get(key)
            if m is not None and m.expires <= time.time():
                self._forget(key)
            return None
        self._remember(e, lru=True)
        return e

    # -- writes -------------------------------------------------------------------------------
    def store_answer(
        self, q: Query, vector: Sequence[float], answer: Answer, acl: list[list[str]], started: float, index: str = "",
        publish: bool = True,
    ) -> CacheEntry | None:
        """A new answer into the cache, when the policy allows; never raises into the query. The entry kept
        (None: none), for the caller to put on the cache topic itself when ``publish`` is off."""
        if not self.serving:
            return None
        try:
            pol = self.policy(q.tenant)
            usable = pol.enabled and q.options.use_cache and answer.status == "ok" and not answer.cached
            entry = new_entry(q, vector, answer, acl, self.keys_for(q, index), pol) if usable else None
            if entry is not None and self.put(entry, started, publish):
                return entry
        except Exception:
            self._failed("write")
        return None

    def put(self, entry: CacheEntry, started: float | None = None, publish: bool = True) -> bool:
        """A new answer: Redis (payload + TTL), the in-process index, and (``publish``) the cache topic.

        ``started`` is the wall-clock time its retrieval started. When given, the entry counts
        as current unless an index event newer than a cited version has been seen (then it was
        built from a superseded version and is not stored). Without it, the first hit checks."""
        ttl = (entry.expires_at - datetime.now(UTC)).total_seconds() if entry.expires_at else self.policy(entry.tenant).ttl_s
        if ttl <= 0:
            return False
        with self._lock:
            if self.tracker.overtaken(entry.tenant, ((c.doc_id, c.version) for c in entry.cites)):
                return False
            self._remember(entry, lru=True, verified=self.tracker.built_current(started))
        self.storage.save(entry, ttl)
        if publish and self.publish is not None:
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
        with self._lock:
            self.tracker.mark(e.cache_key, verified, checkable=self.is_current is not None)
            if lru:
                self.storage.keep(e)
            self.index.add(e)

    def _forget(self, key: str) -> EntryMeta | None:
        with self._lock:
            self.storage.drop_local(key)
            self.tracker.forget(key)
            return self.index.remove(key)

    # -- invalidation -------------------------------------------------------------------------
    def invalidate(self, tenant: str, doc_id: str, version: int, publish: bool = True, event: bool = True) -> list[str]:
        """A newer version or a delete of doc_id (an index event unless ``event`` is false):
        drop every entry citing an older version."""
        with self._lock:
            if event:
                self.tracker.note_event(tenant, doc_id, version)
            keys = self.index.citing_older(tenant, doc_id, version)
        return self._drop(tenant, keys, publish)

    def verify_pending(self, limit: int = 1000) -> int:
        """Check up to ``limit`` unchecked entries (rebuilt from the topic, or written by other
        workers) against the index in bulk, so their first hit needs no index read. Call it from
        the thread that applies index events. Returns how many entries were checked."""
        if self.live_versions is None:
            return 0
        with self._lock:
            metas = [m for k in self.tracker.take_pending(limit) if (m := self.index.meta.get(k)) is not None]
        by_tenant: dict[str, list[EntryMeta]] = {}
        for m in metas:
            by_tenant.setdefault(m.tenant, []).append(m)
        for tenant, ms in by_tenant.items():
            try:
                live = self.live_versions(tenant, sorted({d for m in ms for d in m.cites}))
            except Exception:  # these entries stay unconfirmed: their first hit checks the index
                self._failed("bulk currency check")
                continue
            stale: list[str] = []
            with self._lock:
                for m in ms:
                    if self.index.meta.get(m.key) is not m:  # gone or replaced meanwhile
                        continue
                    if all(live.get(d) == v for d, v in m.cites.items()):
                        self.tracker.confirm(m.key)
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
            self.storage.delete(tenant, keys)
            if publish and self.publish is not None:
                for k in keys:
                    self.publish(f"{tenant}/{k}", None)
        return keys

    def pending(self) -> int:
        return len(self.tracker.pending)

    def size(self) -> int:
        return len(self.index)


def new_entry(q: Query, vector: Sequence[float], answer: Answer, acl_tokens: list[list[str]],
              keys: tuple[str, str, str, str], pol: TenantPolicy) -> CacheEntry:
    """The cache entry of an answer: its keys, embedding, cited versions, ACL tokens and TTL."""
    norm, scope, opts, key = keys
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
