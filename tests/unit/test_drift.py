"""Drift watch: a shift in the query distribution moves the gauge; a stable one keeps it near zero."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from streamrag.core.drift import Baseline, DriftMonitor


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


# -- the baseline per index version, kept beside the index ----------------------------------------------
QUESTIONS = ["hotel night in Berlin reimbursed", "how much for a hotel room", "is breakfast included at the hotel",
             "receipts for hotel nights", "hotel costs per night in Berlin"]
LATER = ["business class flight approval", "who approves a business class flight", "economy class flights"]


def answer(qp: object, texts: list[str], prefix: str) -> None:
    from streamrag.schemas.models import Query
    qp.answer_many([Query(query_id=f"{prefix}{i}", tenant="acme", text=t) for i, t in enumerate(texts)])  # type: ignore[attr-defined]


def test_a_restarted_query_processor_keeps_its_index_version_s_baseline(settings: object, store: object) -> None:
    """The reference (the first questions after a promote) is kept in LanceDB: a worker that restarts measures
    drift against it, exactly as if it had never stopped, instead of taking its first new questions as the
    reference."""
    from streamrag.connectors.lancedb_drift_baselines import LanceDriftBaselines
    from streamrag.core.index_versions import DEFAULT_INDEX
    from tests.conftest import Indexer, change, query_processor, rec
    from tests.fakes import HashEmbedder

    emb = HashEmbedder()
    Indexer(settings, store, emb).process_batch([rec(change("travel", 1, "Hotels get 180 euros a night."))])  # type: ignore[arg-type]
    kept = LanceDriftBaselines(settings.lancedb_path())  # type: ignore[attr-defined]

    def processor(monitor: DriftMonitor) -> object:
        return query_processor(settings, store, emb, drift=monitor)  # type: ignore[arg-type]

    never_stopped = DriftMonitor(reference_size=5, window_size=3)
    answer(processor(never_stopped), QUESTIONS + LATER, "a")
    expected = never_stopped.shift("query", "acme", DEFAULT_INDEX)
    assert expected is not None and expected > 0.05

    before = DriftMonitor(reference_size=5, window_size=3, store=kept)
    answer(processor(before), QUESTIONS, "b")  # the reference window fills: kept
    after = DriftMonitor(reference_size=5, window_size=3, store=kept)  # the worker restarted
    answer(processor(after), LATER, "c")
    assert after.shift("query", "acme", DEFAULT_INDEX) == pytest.approx(expected)

    forgetful = DriftMonitor(reference_size=5, window_size=3)  # the old behaviour: no kept reference
    answer(processor(forgetful), LATER, "d")
    assert forgetful.shift("query", "acme", DEFAULT_INDEX) is None


def test_each_index_version_has_its_own_baseline_and_the_first_kept_wins(tmp_path: object) -> None:
    from streamrag.connectors.lancedb_drift_baselines import LanceDriftBaselines

    rng = np.random.default_rng(1)
    a, b = np.eye(16)[0], np.eye(16)[1]
    kept = LanceDriftBaselines(str(tmp_path))
    DriftMonitor(reference_size=20, window_size=10, store=kept).observe("query", "t", around(a, 20, rng), index="blue")
    kept.save("blue", "query", "t", Baseline(list(b * 20), 20))  # a replica that filled its own at the same time
    blue = kept.load("blue", "query", "t")
    assert blue is not None and blue.size == 20 and int(np.argmax(blue.ref_sum)) == 0  # the first one stays
    assert kept.load("green", "query", "t") is None  # promoted: green builds its own from its first questions
    d = DriftMonitor(reference_size=20, window_size=10, store=kept)
    d.observe("query", "t", around(b, 10, rng), index="blue")
    d.observe("query", "t", around(b, 10, rng), index="green")
    shifted, fresh = d.shift("query", "t", "blue"), d.shift("query", "t", "green")
    assert shifted is not None and shifted > 0.5 and fresh is None


def test_a_baseline_store_that_fails_never_fails_the_watch() -> None:
    class Broken:
        def load(self, index: str, kind: str, tenant: str) -> None:
            raise OSError("disk gone")

        def save(self, *a: object) -> None:
            raise OSError("disk gone")

    rng = np.random.default_rng(2)
    d = DriftMonitor(reference_size=10, window_size=5, store=Broken())
    d.observe("query", "t", around(np.eye(8)[0], 15, rng), index="blue")
    assert d.shift("query", "t", "blue") is not None
