"""Corpus-level, label-free evidence of how well each retriever works on a tenant's own chunks.

Self-retrieval by the inverse cloze task (Lee et al., 2019): a sentence taken out of a chunk is a pseudo-query and
the rest of that chunk its one relevant context, among the contexts of the other sampled chunks. Each retriever ranks
the contexts for each pseudo-query; its evidence is the mean reciprocal rank of the right context (top 10). No label,
no model beyond the index's own embedder: it is measured on any corpus, in any language, per index version.

Pseudo-queries share words with their contexts, so BM25 scores high on every corpus; what the measure tells apart is
an embedding model that does not know the corpus's language or domain (an English model on Japanese text ranks the
right context far below BM25) from one that does (within a few points of BM25 on English corpora). Fusion uses it to
choose which retriever anchors the per-query agreement rule (core/retrieval.py; docs/retrieval.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from streamrag.core.analysis import STOP, split_sentences, tokens

log = logging.getLogger(__name__)

SAMPLE = 200  # pseudo-queries per measurement (a context pool of the same size)
MIN_SAMPLE = 20  # fewer usable chunks: no evidence (the default rule applies)
K = 10


@dataclass(frozen=True, slots=True)
class Evidence:
    dense: float  # MRR@10 of the dense retriever on the pseudo-queries
    bm25: float  # MRR@10 of BM25 on the same pseudo-queries
    samples: int


class EvidenceStore(Protocol):
    """Each tenant's evidence per index version, kept beside the index so that every process (a worker that
    restarts, a one-off ``ask``) reads what one of them measured."""

    def load(self, index: str, tenant: str) -> tuple[float, Evidence] | None:
        """(when it was measured, as time.time(); the evidence), or None when it never was."""
        ...

    def save(self, index: str, tenant: str, measured_at: float, evidence: Evidence) -> None: ...


def pseudo_queries(texts: Sequence[str], n: int = SAMPLE, seed: int = 0) -> list[tuple[str, str]]:
    """(query, context) pairs: a middle sentence of a chunk, and the chunk without it (chunks of 2+ sentences)."""
    pairs = []
    for text in texts:
        sents = split_sentences(text)
        if len(sents) < 2:
            continue
        i = len(sents) // 2
        pairs.append((sents[i], " ".join(sents[:i] + sents[i + 1:])))
    random.Random(seed).shuffle(pairs)
    return pairs[:n]


def _terms(text: str) -> list[str]:
    return [t for t, no_space in tokens(text) if no_space or t not in STOP]


def bm25_matrix(queries: Sequence[str], contexts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 scores (queries x contexts) over the contexts as a collection, with the index's terms."""
    docs = [Counter(_terms(c)) for c in contexts]
    avg = sum(sum(d.values()) for d in docs) / max(len(docs), 1) or 1.0
    df: Counter[str] = Counter(t for d in docs for t in d)
    n = len(docs)
    out = np.zeros((len(queries), n), dtype=np.float32)
    for qi, q in enumerate(queries):
        for t in set(_terms(q)):
            if t not in df:
                continue
            idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
            for di, d in enumerate(docs):
                tf = d.get(t, 0)
                if tf:
                    length = sum(d.values())
                    out[qi, di] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
    return out


def mrr(scores: np.ndarray, k: int = K) -> float:
    """Mean reciprocal rank (cut at k) of the diagonal: query i's own context is context i."""
    if not len(scores):
        return 0.0
    own = np.diag(scores)[:, None]
    ranks = 1 + (scores > own).sum(axis=1)  # ties count in the query's favour
    return float(np.where(ranks <= k, 1.0 / ranks, 0.0).mean())


def measure(texts: Sequence[str], embed: Callable[[list[str]], np.ndarray], n: int = SAMPLE, seed: int = 0,
            embed_queries: Callable[[list[str]], np.ndarray] | None = None) -> Evidence | None:
    """Both retrievers' self-retrieval on pseudo-queries from ``texts`` (None: too few usable chunks). The
    pseudo-queries are embedded as questions (``embed_queries``, default ``embed``), the contexts as passages."""
    pairs = pseudo_queries(texts, n, seed)
    if len(pairs) < MIN_SAMPLE:
        return None
    queries, contexts = [q for q, _ in pairs], [c for _, c in pairs]
    qv, cv = (np.asarray(f(x), dtype=np.float32) for f, x in ((embed_queries or embed, queries), (embed, contexts)))
    qv /= np.maximum(np.linalg.norm(qv, axis=1, keepdims=True), 1e-12)
    cv /= np.maximum(np.linalg.norm(cv, axis=1, keepdims=True), 1e-12)
    dense = qv @ cv.T
    return Evidence(round(mrr(dense), 4), round(mrr(bm25_matrix(queries, contexts)), 4), len(pairs))


def lower_thread_priority() -> None:
    """The calling thread yields the CPU to the others of its process (Linux: a thread has a nice value of its
    own). A measurement embeds 400 texts, tens of seconds of CPU on 2 cores: at the same priority the questions
    that arrive meanwhile queue behind it."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):  # not permitted here: it runs as it is
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


@dataclass(frozen=True)
class EvidenceSharing:
    """Where a cache shares its measurements: ``store`` under the index version ``index``; ``measure``: False for a
    one-off process (``streamrag ask``) that reads what workers measured and never measures (nor waits) itself."""

    store: EvidenceStore | None = None
    index: str = ""
    measure: bool = True


class EvidenceCache:
    """Each tenant's evidence on one index version: read from the shared store, or measured in the background on
    first use (the query that asks gets None: the default rule) and saved there; measured again ``ttl_s`` after it
    was, so that it follows the corpus as it changes."""

    POOL = 2_000  # chunk texts read per measurement, of which SAMPLE with two sentences or more are used

    def __init__(self, sample: Callable[[str, int], list[str]], embed: Callable[[list[str]], np.ndarray],
                 ttl_s: float = 3600.0, clock: Callable[[], float] = time.monotonic,
                 embed_queries: Callable[[list[str]], np.ndarray] | None = None,
                 sharing: EvidenceSharing = EvidenceSharing(), wall: Callable[[], float] = time.time) -> None:
        self.sample = sample
        self.embed = embed
        self.embed_queries = embed_queries
        self.ttl_s = ttl_s
        self.clock = clock
        self.sharing = sharing
        self.wall = wall
        self._known: dict[str, tuple[float, Evidence | None]] = {}
        self._looked: set[str] = set()  # tenants read from the store (once per process)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence", initializer=lower_thread_priority)

    def get(self, tenant: str) -> Evidence | None:
        with self._lock:
            known = self._known.get(tenant)
            if known is None and tenant not in self._looked:
                self._looked.add(tenant)
                known = self._load(tenant)
            stale = known is None or self.clock() - known[0] >= self.ttl_s
            if stale and self.sharing.measure and tenant not in self._pending:
                self._pending.add(tenant)
                self._pool.submit(self._measure, tenant)
        return known[1] if known is not None else None

    def _load(self, tenant: str) -> tuple[float, Evidence | None] | None:
        """The stored evidence, dated on this process's clock (under the lock)."""
        if self.sharing.store is None:
            return None
        try:
            stored = self.sharing.store.load(self.sharing.index, tenant)
        except Exception as exc:  # measured here instead
            log.warning("fusion evidence for %s not read: %s", tenant, str(exc).splitlines()[0][:200])
            return None
        if stored is None:
            return None
        measured_at, ev = stored
        self._known[tenant] = (self.clock() - max(self.wall() - measured_at, 0.0), ev)
        return self._known[tenant]

    def wait(self, tenant: str, timeout_s: float = 300.0) -> Evidence | None:
        """The tenant's evidence once measured (started now if need be), or None at ``timeout_s`` or when it
        could not be measured: for a caller that must not time questions while the measurement runs (an eval)."""
        self.get(tenant)
        t0 = self.clock()
        while self.clock() - t0 < timeout_s:
            with self._lock:
                if tenant in self._known and tenant not in self._pending:
                    return self._known[tenant][1]
            time.sleep(0.2)
        return None

    def _measure(self, tenant: str) -> None:
        ev: Evidence | None = None
        try:
            texts = self.sample(tenant, self.POOL)
            ev = measure(texts, self.embed, seed=len(texts), embed_queries=self.embed_queries)
            log.info("fusion evidence for %s: %s", tenant, ev)
            if ev is not None and self.sharing.store is not None:
                self.sharing.store.save(self.sharing.index, tenant, self.wall(), ev)
        except Exception as exc:  # the default rule until the next try
            log.warning("fusion evidence for %s not measured: %s", tenant, str(exc).splitlines()[0][:200])
        with self._lock:
            self._known[tenant] = (self.clock(), ev)
            self._pending.discard(tenant)
