"""Corpus-level evidence for fusion: self-retrieval on pseudo-queries, and the anchor it chooses."""

from __future__ import annotations

import os
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from streamrag.core.evidence import Evidence, EvidenceCache, EvidenceSharing, measure, pseudo_queries
from streamrag.core.ports import Hit
from streamrag.core.retrieval import auto_alpha, fuse
from tests.fakes import HashEmbedder

TOPICS = ["volcano lava eruption magma crater", "violin orchestra concerto melody", "glacier ice snow polar",
          "bacteria infection antibiotic immune", "railway locomotive station track", "tomato garden soil seeds"]


def _corpus(n: int = 60) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        words = [*TOPICS[i % len(TOPICS)].split(), f"name{i}", f"place{i}"]
        out.append(" ".join(" ".join(rng.choice(words, 6)) + "." for _ in range(3)))
    return out


def _junk(texts: list[str]) -> np.ndarray:  # an embedding model that knows nothing of the language
    return np.random.default_rng(zlib.crc32("\n".join(texts).encode())).normal(size=(len(texts), 16))


def test_pseudo_queries_take_a_sentence_out_of_its_chunk() -> None:
    (q, ctx), = pseudo_queries(["First one. Second one. Third one.", "single sentence only"])
    assert q == "Second one." and ctx == "First one. Third one."


def test_a_model_that_does_not_know_the_language_measures_far_below_bm25() -> None:
    texts = _corpus()
    good, junk = measure(texts, HashEmbedder().embed), measure(texts, _junk)
    assert good is not None and junk is not None
    assert good.dense >= 0.5 * good.bm25 and good.bm25 > 0.5, good
    assert junk.dense < 0.5 * junk.bm25, junk
    assert measure(texts[:10], HashEmbedder().embed) is None  # too few chunks: no evidence


def _hits(prefix: str, n: int = 10) -> list[Hit]:
    return [Hit(f"{prefix}{i}", f"t/{prefix}{i}", f"{prefix}{i}", 0, 1, "", "", 1.0 - i / 20) for i in range(n)]


def test_bm25_anchors_when_the_evidence_says_dense_is_weak_and_dense_otherwise() -> None:
    dense, bm25 = _hits("d"), _hits("b")  # lists that share nothing
    assert auto_alpha(dense, bm25) == 1.0  # no evidence: dense anchors (the default rule)
    assert auto_alpha(dense, bm25, evidence=Evidence(0.84, 0.88, 200)) == 1.0
    assert auto_alpha(dense, bm25, evidence=Evidence(0.23, 0.59, 200)) == 0.0  # BM25 anchors
    ranked = fuse([dense], [bm25], "auto", 0.5, evidence=Evidence(0.23, 0.59, 200))
    assert [r.hit.id for r in ranked[:3]] == ["b0", "b1", "b2"]
    shared = _hits("d", 2) + _hits("b", 8)  # 2 of 10 shared: the weak one counts by its relative evidence
    assert abs(auto_alpha(dense, shared, evidence=Evidence(0.2, 0.6, 200)) - 0.5 / 3) < 1e-9
    assert auto_alpha(dense, shared, evidence=Evidence(0.8, 0.4, 200)) == 0.75  # BM25 weaker: half its share


def test_evidence_is_measured_in_the_background_once_and_again_after_its_ttl() -> None:
    now = [0.0]
    calls: list[str] = []
    done = threading.Event()

    def sample(tenant: str, limit: int) -> list[str]:
        calls.append(tenant)
        return _corpus()

    def embed(texts: list[str]) -> np.ndarray:
        out = HashEmbedder().embed(texts)
        done.set()
        return out

    cache = EvidenceCache(sample, embed, ttl_s=60, clock=lambda: now[0])
    assert cache.get("acme") is None  # not known yet: the default rule for this query
    assert done.wait(10)
    deadline = time.monotonic() + 10
    while cache.get("acme") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(cache.get("acme"), Evidence) and calls == ["acme"]
    now[0] = 61.0
    cache.get("acme")
    deadline = time.monotonic() + 10
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["acme", "acme"]


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_evidence_is_measured_in_a_thread_that_yields_the_cpu_to_questions() -> None:
    """A measurement embeds hundreds of texts: it must not hold a core at the query path's priority."""
    seen: list[int] = []

    def sample(tenant: str, limit: int) -> list[str]:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return _corpus()

    cache = EvidenceCache(sample, HashEmbedder().embed)
    cache.get("acme")
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [19]  # (the process itself keeps its own: os.nice(0))


def test_wait_returns_the_measured_evidence_and_does_not_wait_out_a_failed_measurement() -> None:
    """``eval answers`` times its questions after the evidence a worker would have (cold: the default rule)."""
    cache = EvidenceCache(lambda tenant, limit: _corpus(), HashEmbedder().embed)
    assert cache.get("acme") is None  # the first question: not measured yet
    ev = cache.wait("acme", timeout_s=30)
    assert ev is not None and cache.get("acme") == ev

    def broken(tenant: str, limit: int) -> list[str]:
        raise OSError("store unreachable")

    t0 = time.monotonic()
    assert EvidenceCache(broken, HashEmbedder().embed).wait("acme", timeout_s=30) is None
    assert time.monotonic() - t0 < 5


class MemoryEvidence:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[float, Evidence]] = {}

    def load(self, index: str, tenant: str) -> tuple[float, Evidence] | None:
        return self.rows.get((index, tenant))

    def save(self, index: str, tenant: str, measured_at: float, evidence: Evidence) -> None:
        self.rows[(index, tenant)] = (measured_at, evidence)


def test_evidence_is_shared_through_the_store_of_its_index_version() -> None:
    """One process measures and saves; another (a restarted worker, a one-off ask) reads it without measuring."""
    store = MemoryEvidence()
    calls: list[str] = []

    def sample(tenant: str, limit: int) -> list[str]:
        calls.append(tenant)
        return _corpus()

    first = EvidenceCache(sample, HashEmbedder().embed, sharing=EvidenceSharing(store, "v2"))
    ev = first.wait("acme", timeout_s=30)
    assert ev is not None and store.load("v2", "acme") is not None and store.load("v2", "acme")[1] == ev
    assert store.load("default", "acme") is None  # another index version's evidence is its own
    ask = EvidenceCache(sample, HashEmbedder().embed, sharing=EvidenceSharing(store, "v2", measure=False))
    assert ask.get("acme") == ev and calls == ["acme"]  # read at once, not measured again
    worker = EvidenceCache(sample, HashEmbedder().embed, sharing=EvidenceSharing(store, "v2"))
    assert worker.get("acme") == ev
    time.sleep(0.2)
    assert calls == ["acme"]  # fresh: a restarted worker does not measure it again either


def test_a_one_off_process_never_measures_and_stale_evidence_is_measured_again() -> None:
    store = MemoryEvidence()
    calls: list[str] = []

    def sample(tenant: str, limit: int) -> list[str]:
        calls.append(tenant)
        return _corpus()

    ask = EvidenceCache(sample, HashEmbedder().embed, sharing=EvidenceSharing(store, "v1", measure=False))
    assert ask.get("acme") is None
    time.sleep(0.2)
    assert calls == [] and store.rows == {}  # nothing measured, nothing for the process to wait for at exit
    old = Evidence(0.1, 0.9, 200)
    store.save("v1", "acme", time.time() - 7200, old)  # two hours old, the ttl one hour
    worker = EvidenceCache(sample, HashEmbedder().embed, ttl_s=3600, sharing=EvidenceSharing(store, "v1"))
    assert worker.get("acme") == old  # used meanwhile
    deadline = time.monotonic() + 10
    while store.rows[("v1", "acme")][1] == old and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["acme"] and store.rows[("v1", "acme")][1] != old


def test_evidence_kept_in_lancedb_beside_the_index(tmp_path: Path) -> None:
    from streamrag.connectors.lancedb_evidence import LanceEvidenceStore

    s = LanceEvidenceStore(str(tmp_path / "db"))
    assert s.load("default", "acme") is None
    s.save("default", "acme", 100.0, Evidence(0.5, 0.7, 200))
    s.save("default", "acme", 200.0, Evidence(0.6, 0.8, 180))  # replaced
    s.save("v2", "acme", 300.0, Evidence(0.1, 0.2, 50))
    assert LanceEvidenceStore(str(tmp_path / "db")).load("default", "acme") == (200.0, Evidence(0.6, 0.8, 180))
    assert s.load("v2", "acme") == (300.0, Evidence(0.1, 0.2, 50)) and s.load("default", "other") is None
