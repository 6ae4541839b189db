"""Drift watch: rolling statistics of query and document embeddings per tenant, against a reference
window: the first vectors seen for an index version (after its promote). With a ``BaselineStore`` the
reference is kept once full and read back by every later process (a restart, another replica), so drift
is measured against the same baseline until the next promote. Exposed as gauges: the cosine distance
between the reference and current centroids, and the spread of vector norms (std / mean) in each window."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from streamrag.core import telemetry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    """A full reference window: the sum of its vectors (its centroid's direction) and how many."""

    ref_sum: list[float]
    size: int


class BaselineStore(Protocol):
    """Where references outlive the process, one per index version, kind and tenant (the first kept wins)."""

    def load(self, index: str, kind: str, tenant: str) -> Baseline | None: ...

    def save(self, index: str, kind: str, tenant: str, baseline: Baseline) -> None: ...


@dataclass
class _Window:
    dim: int
    size: int
    ref_sum: np.ndarray
    ref_norms: list[float] = field(default_factory=list)
    recent: deque[np.ndarray] = field(default_factory=deque)
    recent_sum: np.ndarray | None = None


class DriftMonitor:
    def __init__(self, reference_size: int = 500, window_size: int = 200, store: BaselineStore | None = None) -> None:
        self.reference_size = reference_size
        self.window_size = window_size
        self.store = store
        self._w: dict[tuple[str, str, str], _Window] = {}
        self._lock = threading.Lock()

    def observe(self, kind: str, tenant: str, vectors: np.ndarray, index: str = "") -> None:
        """``index``: the index version the vectors were searched in or written to (its own reference)."""
        vecs = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if not vecs.size:
            return
        key = (index, kind, tenant)
        with self._lock:
            w = self._w.get(key)
        if w is None or w.dim != vecs.shape[1]:
            fresh = self._window(key, vecs.shape[1])
            with self._lock:
                w = self._w.get(key)
                if w is None or w.dim != vecs.shape[1]:
                    w = self._w[key] = fresh
        full = None
        with self._lock:
            for v in vecs:
                if w.size < self.reference_size:
                    w.ref_sum += v
                    w.ref_norms.append(float(np.linalg.norm(v)))
                    w.size += 1
                    if w.size == self.reference_size:
                        full = Baseline(w.ref_sum.tolist(), w.size)
                    continue
                assert w.recent_sum is not None
                w.recent.append(v)
                w.recent_sum += v
                if len(w.recent) > self.window_size:
                    w.recent_sum -= w.recent.popleft()
            shift, spread = self._stats(w)
        if full is not None and self.store is not None:
            try:
                self.store.save(index, kind, tenant, full)
            except Exception:  # the watch never fails a query: the reference stays in memory
                log.warning("drift baseline for %s/%s/%s not kept", index, kind, tenant, exc_info=True)
        if shift is not None:
            telemetry.EMBEDDING_DRIFT.labels(kind, tenant).set(shift)
        if spread is not None:
            telemetry.EMBEDDING_NORM_SPREAD.labels(kind, tenant).set(spread)

    def _window(self, key: tuple[str, str, str], dim: int) -> _Window:
        """A new window: with the kept reference of its index version where there is one (of this dimension)."""
        w = _Window(dim, 0, np.zeros(dim), recent=deque(), recent_sum=np.zeros(dim))
        if self.store is None:
            return w
        try:
            kept = self.store.load(*key)
        except Exception:
            log.warning("drift baseline for %s/%s/%s not read", *key, exc_info=True)
            return w
        if kept is not None and len(kept.ref_sum) == dim:
            w.ref_sum = np.asarray(kept.ref_sum, dtype=np.float64)
            w.size = max(kept.size, self.reference_size)
        return w

    def _stats(self, w: _Window) -> tuple[float | None, float | None]:
        if not w.recent or w.recent_sum is None:
            return None, None
        a, b = w.ref_sum, w.recent_sum
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        shift = None if not na or not nb else max(0.0, 1.0 - float(a @ b) / (na * nb))
        norms = np.linalg.norm(np.stack(list(w.recent)), axis=1)
        spread = float(norms.std() / norms.mean()) if norms.mean() else None
        return shift, spread

    def shift(self, kind: str, tenant: str, index: str = "") -> float | None:
        with self._lock:
            w = self._w.get((index, kind, tenant))
            return None if w is None else self._stats(w)[0]
