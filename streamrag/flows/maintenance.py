"""Index maintenance off the hot path: FTS upkeep, ANN builds and ``optimize()`` on a schedule,
in a thread of the ingest worker (STREAMRAG_MAINTENANCE=thread) or as ``streamrag worker maintain``.

It uses a store of its own (its own LanceDB handles and lock), so a long optimize never blocks a
write. Concurrent ``optimize()`` calls conflict and redo their work: with STREAMRAG_MAINTENANCE_LEASE=redis only
the holder of a lease in Redis maintains (renewed while it runs), the others skip their runs. A commit conflict costs a write a retry (core.retry); a maintenance task that fails is logged, counted
(``maintenance_failures``, in ``streamrag status``) and tried again at the next run, ``every_s`` later.
"""

from __future__ import annotations

import logging
import threading
import time

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.redis_cache import redis_for
from streamrag.connectors.redis_lease import RedisLease
from streamrag.core import telemetry
from streamrag.core.lease import AlwaysHeld, Lease, kept
from streamrag.core.settings import Settings
from streamrag.flows.components import make_store
from streamrag.flows.index_views import IndexViews

log = logging.getLogger(__name__)


def maintenance_lease(s: Settings) -> Lease:
    """The lease that makes one process at a time maintain the index at STREAMRAG_LANCEDB_URI."""
    if s.worker.maintenance_lease == "none":
        return AlwaysHeld()
    return RedisLease(redis_for(s.redis, s.cache.redis_prefix, timeout_s=2.0), f"maintenance:{s.lancedb_path()}",
                      s.worker.maintenance_lease_ttl_s)


class Maintainer:
    """Maintains the active index version (``views`` given: followed as it changes), else the default one."""

    def __init__(
        self, s: Settings, every_s: float = 1.0, sizes_every_s: float = 60.0, views: IndexViews | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.s = s
        self.lease = lease if lease is not None else maintenance_lease(s)
        self.skipped = 0  # runs left to the lease's holder
        self.views = views
        self._stores: dict[str, LanceStore] = {}
        self._store = make_store(s)
        self.sizes_every_s = sizes_every_s
        self._sizes_at = 0.0
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    @property
    def store(self) -> LanceStore:
        """A store of its own per version (its own handles and lock): never the one writes go through."""
        if self.views is None:
            return self._store
        v = self.views.current()
        st = self._stores.get(v.name)
        if st is None:
            st = self._stores[v.name] = make_store(v.settings, v.store.chunks_name, v.store.docs_name)
        return st

    def run_once(self, force: bool = False) -> bool:
        """One maintenance pass; False when another process holds the lease (nothing done)."""
        if not self.lease.acquire():
            self.skipped += 1
            return False
        with kept(self.lease):  # renewed while a long optimize runs
            self.store.maintain(force=force)
            self.runs += 1
            if force or time.monotonic() - self._sizes_at >= self.sizes_every_s:
                self._sizes_at = time.monotonic()
                for tenant, v in self.store.stats()["tenants"].items():  # index size per tenant, for /metrics
                    telemetry.INDEX_CHUNKS.labels(tenant).set(v["chunks"])
        return True

    def run_forever(self) -> None:
        try:
            while not self._stop.wait(self.every_s):
                try:
                    self.run_once()
                except Exception:  # the thread must outlive one bad run: the next one tries again
                    log.exception("index maintenance run failed (next run in %g s)", self.every_s)
        finally:
            self.lease.release()  # another process takes over at its next run, not at the lease's expiry

    def start(self) -> Maintainer:
        self._thread = threading.Thread(target=self.run_forever, name="index-maintenance", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
