"""Drift watch: a shift in the query distribution moves the gauge; a stable one keeps it near zero."""

from __future__ import annotations

import numpy as np
from prometheus_client import REGISTRY

from streamrag.core.drift import DriftMonitor


def around(direction: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    v = direction + 0.3 * rng.standard_normal((n, direction.size))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def gauge(kind: str, tenant: str) -> float | None:
    return REGISTRY.get_sample_value("streamrag_embedding_drift", {"kind": kind, "tenant": tenant})


def test_a_shifted_query_distribution_moves_the_gauge() -> None:
    rng = np.random.default_rng(0)
    a, b = np.eye(32)[0], np.eye(32)[1]
    d = DriftMonitor(reference_size=100, window_size=50)
    d.observe("query", "drift-t1", around(a, 100, rng))  # the reference window
    d.observe("query", "drift-t1", around(a, 50, rng))
    stable = gauge("query", "drift-t1")
    assert stable is not None and stable < 0.1
    d.observe("query", "drift-t1", around(b, 50, rng))  # the questions change
    shifted = gauge("query", "drift-t1")
    assert shifted is not None and shifted > 0.5 and shifted == d.shift("query", "drift-t1")
    assert gauge("query", "drift-other") is None  # per tenant
