"""Hybrid retrieval: a fast candidate stage in the store (vector + BM25, each restricted to the
tenant and the principal's ACL and overfetched), fusion, then enrichment with document rows.

Fusion: reciprocal rank fusion (default; robust across corpora because it ignores score
scales) or a weighted sum of min-max normalised scores with ``alpha`` (1 = dense only).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from streamrag.core.ports import Hit, IndexReader
from streamrag.core.security import meta_token, principal_tokens, tenant_literal, token_list_literal
from streamrag.schemas.models import Query, QueryFilters

RRF_K = 60
Fusion = Literal["rrf", "weighted", "dense", "bm25"]


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


def filter_clauses(f: QueryFilters) -> list[str]:
    """Validated filters -> SQL clauses built only from generated tokens and integers."""
    out = []
    for key, value in sorted(f.metadata.items()):
        values = value if isinstance(value, list) else [value]
        if not values:
            out.append("false")
            continue
        out.append(f"array_has_any(meta, {token_list_literal(meta_token(key, v) for v in values)})")
    if f.updated_from is not None:
        out.append(f"updated_ms >= {int(_utc(f.updated_from).timestamp() * 1000)}")
    if f.updated_to is not None:
        out.append(f"updated_ms <= {int(_utc(f.updated_to).timestamp() * 1000)}")
    return out


def _utc(d: datetime) -> datetime:
    return d if d.tzinfo else d.replace(tzinfo=UTC)


def scope_filter(tenant: str, principal_toks: Sequence[str], extra: Sequence[str] = ()) -> str:
    """The prefilter of every search: the tenant, the principal's ACL tokens, validated filters."""
    parts = [f"tenant = {tenant_literal(tenant)}", f"array_has_any(acl, {token_list_literal(principal_toks)})"]
    parts.extend(extra)
    return " AND ".join(parts)


def scope_for(q: Query) -> str:
    return scope_filter(q.tenant, principal_tokens(q.principal), filter_clauses(q.filters))


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


def fuse(
    dense_lists: Sequence[Sequence[Hit]], bm25_lists: Sequence[Sequence[Hit]], fusion: Fusion, alpha: float
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
    return ranked


class Retriever:
    def __init__(self, store: IndexReader, overfetch: int = 4, min_candidates: int = 20) -> None:
        self.store = store
        self.overfetch = overfetch
        self.min_candidates = min_candidates
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="retrieve")

    def retrieve(
        self,
        q: Query,
        vectors: Sequence[Sequence[float]],
        texts: Sequence[str],
        fusion: Fusion,
        alpha: float,
        k: int | None = None,
    ) -> RetrievalResult:
        """vectors/texts: the query and its variants (same order). Every search runs restricted in the store."""
        where = scope_for(q)
        n = max((k or q.top_k) * self.overfetch, self.min_candidates) if k is None or k <= q.top_k else k
        t0 = time.perf_counter()
        want_dense = fusion != "bm25"
        want_bm25 = fusion != "dense"
        jobs_d = [self._pool.submit(self.store.vector_search, v, where, n) for v in vectors] if want_dense else []
        jobs_b = [self._pool.submit(self.store.text_search, t, where, n) for t in texts] if want_bm25 else []
        dense_lists = [j.result() for j in jobs_d]
        bm25_lists = [j.result() for j in jobs_b]
        t1 = time.perf_counter()
        ranked = fuse(dense_lists, bm25_lists, fusion, alpha)
        t2 = time.perf_counter()
        best = max((h.score for hits in dense_lists for h in hits[:1]), default=0.0)
        return RetrievalResult(
            ranked, best, {"search": (t1 - t0) * 1000, "fuse": (t2 - t1) * 1000}, dense_lists, bm25_lists
        )
