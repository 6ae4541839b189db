"""Drift watch: rolling statistics of query and document embeddings per tenant, against a reference
window (the first vectors this process saw). Exposed as gauges: the cosine distance between the
reference and current centroids, and the spread of vector norms (std / mean) in each window."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from streamrag.core import telemetry


@dataclass
class _Window:
    dim: int
    size: int
    ref_sum: np.ndarray
    ref_norms: list[float] = field(default_factory=list)
    recent: deque[np.ndarray] = field(default_factory=deque)
    recent_sum: np.ndarray | None = None


class DriftMonitor:
    def __init__(self, reference_size: int = 500, window_size: int = 200) -> None:
        self.reference_size = reference_size
        self.window_size = window_size
        self._w: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def observe(self, kind: str, tenant: str, vectors: np.ndarray) -> None:
        vecs = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if not vecs.size:
            return
        with self._lock:
            w = self._w.get((kind, tenant))
            if w is None or w.dim != vecs.shape[1]:
                w = _Window(vecs.shape[1], 0, np.zeros(vecs.shape[1]), recent=deque(), recent_sum=np.zeros(vecs.shape[1]))
                self._w[(kind, tenant)] = w
            for v in vecs:
                if w.size < self.reference_size:
                    w.ref_sum += v
                    w.ref_norms.append(float(np.linalg.norm(v)))
                    w.size += 1
                    continue
                assert w.recent_sum is not None
                w.recent.append(v)
                w.recent_sum += v
                if len(w.recent) > self.window_size:
                    w.recent_sum -= w.recent.popleft()
            shift, spread = self._stats(w)
        if shift is not None:
            telemetry.EMBEDDING_DRIFT.labels(kind, tenant).set(shift)
        if spread is not None:
            telemetry.EMBEDDING_NORM_SPREAD.labels(kind, tenant).set(spread)

    def _stats(self, w: _Window) -> tuple[float | None, float | None]:
        if not w.recent or w.recent_sum is None:
            return None, None
        a, b = w.ref_sum, w.recent_sum
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        shift = None if not na or not nb else max(0.0, 1.0 - float(a @ b) / (na * nb))
        norms = np.linalg.norm(np.stack(list(w.recent)), axis=1)
        spread = float(norms.std() / norms.mean()) if norms.mean() else None
        return shift, spread

    def shift(self, kind: str, tenant: str) -> float | None:
        with self._lock:
            w = self._w.get((kind, tenant))
            return None if w is None else self._stats(w)[0]
