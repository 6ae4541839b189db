"""Hybrid retrieval: a fast candidate stage in the store (vector + BM25, each restricted to the
tenant and the principal's ACL and overfetched), fusion, then enrichment with document rows.

Fusion:
- ``auto`` (default): a weighted sum of min-max normalised scores whose BM25 weight is set per query
  by how much the two retrievers agree on their top documents. Where both carry signal they agree
  often and are combined about equally; where one of them fails on a query (BM25 on keyword queries
  over entity abstracts, a paraphrase with no shared words) its list has little in common with the
  other and it counts little, so fusion no longer pulls good results down. Dense is the anchor: it is
  the retriever that degrades most gracefully (see docs/retrieval.md for the method and evidence).
- ``rrf``: reciprocal rank fusion; ``weighted`` with ``alpha`` (1 = dense only); ``dense``; ``bm25``.

Documents are then ranked by more than their best chunk: each chunk gains a share of the evidence
of its document's other retrieved chunks (``doc_weight``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from streamrag.core import telemetry
from streamrag.core.config import RetrievalSettings
from streamrag.core.errors import SearchFailed
from streamrag.core.evidence import Evidence, EvidenceCache, EvidenceSharing
from streamrag.core.ports import Embedder, Hit, IndexReader
from streamrag.core.scope import scope_for
from streamrag.schemas.models import Query
from streamrag.schemas.vocabulary import Fusion

RRF_K = 60
AGREE_K = 10  # top documents compared between the two lists
AGREE_FULL = 0.2  # agreement at which BM25 gets an equal weight (2 of 10 top documents shared)
DENSE_WEAK = 0.5  # dense self-retrieval below this share of BM25's: BM25 anchors (core/evidence.py)


@dataclass(frozen=True, slots=True)
class Ranked:
    hit: Hit
    score: float
    dense: float | None = None
    bm25: float | None = None


@dataclass
class RetrievalResult:
    ranked: list[Ranked]
    best_dense: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)
    dense_lists: list[list[Hit]] = field(default_factory=list)
    bm25_lists: list[list[Hit]] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)  # retrievers whose search failed (answered without them)


def rrf(lists: Sequence[Sequence[Hit]], k: int = RRF_K, weights: Sequence[float] | None = None) -> dict[str, float]:
    scores: dict[str, float] = {}
    for li, hits in enumerate(lists):
        w = 1.0 if weights is None else weights[li]
        for rank, h in enumerate(hits):
            scores[h.id] = scores.get(h.id, 0.0) + w / (k + rank + 1)
    return scores


def _minmax(hits: Sequence[Hit]) -> dict[str, float]:
    if not hits:
        return {}
    lo, hi = min(h.score for h in hits), max(h.score for h in hits)
    span = hi - lo
    return {h.id: (h.score - lo) / span if span > 0 else 1.0 for h in hits}


def weighted(dense: Sequence[Hit], bm25: Sequence[Hit], alpha: float) -> dict[str, float]:
    d, b = _minmax(dense), _minmax(bm25)
    return {i: alpha * d.get(i, 0.0) + (1 - alpha) * b.get(i, 0.0) for i in set(d) | set(b)}


def top_docs(hits: Sequence[Hit], k: int = AGREE_K) -> list[str]:
    out: list[str] = []
    for h in hits:
        if h.doc_key not in out:
            out.append(h.doc_key)
            if len(out) == k:
                break
    return out


def agreement(dense: Sequence[Hit], bm25: Sequence[Hit], k: int = AGREE_K) -> float:
    """Share of the top-k documents the two lists have in common (0..1)."""
    a, b = top_docs(dense, k), top_docs(bm25, k)
    return len(set(a) & set(b)) / k if a and b else 0.0


def auto_alpha(dense: Sequence[Hit], bm25: Sequence[Hit], full: float = AGREE_FULL,
               evidence: Evidence | None = None) -> float:
    """Dense weight for this query. The anchor retriever is dense unless the corpus's evidence says the embedding
    model is much weaker than BM25 on it (self-retrieval below ``DENSE_WEAK`` of BM25's: a language or domain the
    model does not know); the other one gets up to 0.5 when the lists share ``full`` of their top documents, less as
    they agree less, and never more than its evidence relative to the anchor's allows."""
    if not bm25:
        return 1.0
    if not dense:
        return 0.0
    return anchored_alpha(0.5 * min(1.0, agreement(dense, bm25) / full), evidence)


def anchored_alpha(share: float, evidence: Evidence | None) -> float:
    """Dense weight when the non-anchor retriever may have ``share`` (0..0.5), capped by the evidence (see auto_alpha)."""
    if evidence is None or min(evidence.dense, evidence.bm25) <= 0:
        return 1.0 - share
    if evidence.dense < DENSE_WEAK * evidence.bm25:  # BM25 anchors
        return share * evidence.dense / evidence.bm25
    return 1.0 - share * min(1.0, evidence.bm25 / evidence.dense)


def with_doc_evidence(ranked: list[Ranked], weight: float, others: int = 2) -> list[Ranked]:
    """Each chunk gains ``weight`` x the scores of up to ``others`` more chunks of its document."""
    if weight <= 0 or not ranked:
        return ranked
    by_doc: dict[str, list[float]] = {}
    for r in ranked:
        by_doc.setdefault(r.hit.doc_key, []).append(r.score)
    out = []
    for r in ranked:
        rest = sorted(by_doc[r.hit.doc_key], reverse=True)
        rest.remove(r.score)
        out.append(Ranked(r.hit, r.score + weight * sum(rest[:others]), r.dense, r.bm25))
    out.sort(key=lambda x: (-x.score, x.hit.id))
    return out


def fuse(
    dense_lists: Sequence[Sequence[Hit]], bm25_lists: Sequence[Sequence[Hit]], fusion: Fusion, alpha: float,
    doc_weight: float = 0.0, evidence: Evidence | None = None,
) -> list[Ranked]:
    by_id: dict[str, Hit] = {}
    dense_score: dict[str, float] = {}
    bm25_score: dict[str, float] = {}
    for hits in dense_lists:
        for h in hits:
            by_id.setdefault(h.id, h)
            dense_score[h.id] = max(dense_score.get(h.id, -1.0), h.score)
    for hits in bm25_lists:
        for h in hits:
            by_id.setdefault(h.id, h)
            bm25_score[h.id] = max(bm25_score.get(h.id, 0.0), h.score)
    if fusion == "dense":
        scores = rrf(dense_lists) if len(dense_lists) > 1 else {h.id: h.score for h in dense_lists[0]}
    elif fusion == "bm25":
        scores = rrf(bm25_lists) if len(bm25_lists) > 1 else {h.id: h.score for h in bm25_lists[0]}
    elif fusion == "auto" and len(dense_lists) == 1:
        scores = weighted(dense_lists[0], bm25_lists[0], auto_alpha(dense_lists[0], bm25_lists[0], evidence=evidence))
    elif fusion == "auto":  # variants: RRF over every list, BM25 lists weighted by their agreement
        a = auto_alpha(dense_lists[0], bm25_lists[0], evidence=evidence)
        scores = rrf([*dense_lists, *bm25_lists], weights=[a * 2] * len(dense_lists) + [(1 - a) * 2] * len(bm25_lists))
    elif fusion == "weighted" and len(dense_lists) == 1:
        scores = weighted(dense_lists[0], bm25_lists[0], alpha)
    else:
        n_d, n_b = len(dense_lists), len(bm25_lists)
        w = [alpha * 2] * n_d + [(1 - alpha) * 2] * n_b if fusion == "weighted" else None
        scores = rrf([*dense_lists, *bm25_lists], weights=w)
    ranked = [
        Ranked(by_id[i], s, dense_score.get(i), bm25_score.get(i))
        for i, s in scores.items()
    ]
    ranked.sort(key=lambda r: (-r.score, r.hit.id))
    return with_doc_evidence(ranked, doc_weight)


class Retriever:
    def __init__(self, store: IndexReader, overfetch: int = 4, min_candidates: int = 100, doc_weight: float = 0.0,
                 evidence: Callable[[str], Evidence | None] | None = None) -> None:
        self.store = store
        self.evidence = evidence  # tenant -> the corpus's evidence for auto fusion (None: not known yet)
        self.evidence_cache: EvidenceCache | None = None  # where ``evidence`` comes from (for_config)
        self.doc_weight = doc_weight
        self.overfetch = overfetch
        self.min_candidates = min_candidates
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="retrieve")

    def candidates(self, top_k: int) -> int:
        """How many chunks each retriever returns for a query wanting ``top_k``."""
        return max(top_k * self.overfetch, self.min_candidates)

    @classmethod
    def for_config(cls, store: IndexReader, c: RetrievalSettings, embedder: Embedder | None = None,
                   sharing: EvidenceSharing = EvidenceSharing()) -> Retriever:
        """With an embedder (and ``fusion_evidence_ttl_s`` > 0), auto fusion uses each tenant's self-retrieval
        evidence, read from ``sharing``'s store or measured in the background (core/evidence.py)."""
        ev = (EvidenceCache(store.sample_texts, embedder.embed, c.fusion_evidence_ttl_s, embed_queries=embedder.embed_queries,
                            sharing=sharing)
              if embedder is not None and c.fusion_evidence_ttl_s > 0 else None)
        r = cls(store, overfetch=c.overfetch, min_candidates=c.min_candidates, doc_weight=c.doc_weight,
                evidence=ev.get if ev is not None else None)
        r.evidence_cache = ev
        return r

    def text_searches(self, q: Query, texts: Sequence[str], fusion: Fusion, k: int | None = None) -> list[Future[list[Hit]]]:
        """The BM25 searches ``retrieve`` would run, started now: they need no embedding, so a caller starts them
        before encoding the query and they run beside it (on a second core: the encoder and LanceDB both
        release the GIL)."""
        if fusion == "dense":
            return []
        n = self._n(q, k)
        return [self._pool.submit(self._text_search, q, t, n) for t in texts]

    def _text_search(self, q: Query, text: str, n: int) -> list[Hit]:
        return self.store.text_search(text, scope_for(q), n)

    def _n(self, q: Query, k: int | None) -> int:
        return self.candidates(k or q.top_k) if k is None or k <= q.top_k else k

    def retrieve(
        self,
        q: Query,
        vectors: Sequence[Sequence[float]],
        texts: Sequence[str],
        fusion: Fusion,
        alpha: float,
        k: int | None = None,
        text_jobs: list[Future[list[Hit]]] | None = None,
    ) -> RetrievalResult:
        """vectors/texts: the query and its variants (same order). Every search runs restricted in the store.
        ``text_jobs``: ``text_searches(q, texts, fusion, k)`` started earlier (None: started here)."""
        scope = scope_for(q)
        n = self._n(q, k)
        t0 = time.perf_counter()
        want_dense = fusion != "bm25"
        jobs_d = [self._pool.submit(self.store.vector_search, v, scope, n) for v in vectors] if want_dense else []
        jobs_b = self.text_searches(q, texts, fusion, k) if text_jobs is None else text_jobs
        degraded: list[str] = []
        dense_lists = _results("dense", jobs_d, degraded)
        bm25_lists = _results("bm25", jobs_b, degraded)
        if degraded and not any(dense_lists) and not any(bm25_lists):
            raise SearchFailed("; ".join(degraded))  # nothing to answer from: the query's error answer
        t1 = time.perf_counter()
        ev = self.evidence(q.tenant) if self.evidence is not None and fusion == "auto" else None
        ranked = fuse(dense_lists, bm25_lists, fusion, alpha, self.doc_weight, ev)
        t2 = time.perf_counter()
        best = max((h.score for hits in dense_lists for h in hits[:1]), default=0.0)
        return RetrievalResult(
            ranked, best, {"search": (t1 - t0) * 1000, "fuse": (t2 - t1) * 1000}, dense_lists, bm25_lists, degraded
        )


def _results(retriever: str, jobs: Sequence[Future[list[Hit]]], degraded: list[str]) -> list[list[Hit]]:
    """Each search's hits; a search that failed counts, is named in ``degraded`` and contributes nothing."""
    out: list[list[Hit]] = []
    for j in jobs:
        try:
            out.append(j.result())
        except SearchFailed as exc:
            telemetry.SEARCH_FAILURES.labels(retriever).inc()
            degraded.append(f"retrieval: {retriever} unavailable: {str(exc)[:200]}")
            out.append([])
    return out
