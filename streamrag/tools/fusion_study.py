"""Fusion variants measured for issue #20 and not adopted (``streamrag eval -c study-...``; docs/retrieval.md).

Each variant is a normalisation of the two score lists, a dense weight per query, and a way of turning chunk
scores into what is combined (the chunk's own, or its document's best chunk in each list). None of them is on the
query path: the production fusion is ``core.retrieval.fuse``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from streamrag.core.evidence import Evidence
from streamrag.core.ports import Hit
from streamrag.core.retrieval import Ranked, anchored_alpha, auto_alpha, top_docs


@dataclass(frozen=True)
class FusionVariant:
    normalise: str  # minmax | zscore | theoretical (the list's top score maps to 1, a score of 0 to 0)
    weight: str  # auto | half | evidence | top20 | sqrt | rbo
    chunks: str = "own"  # own | maxp (a document's best chunk per list) | impute (a missing chunk: 0.5 x its doc's best)


VARIANTS = {
    "zscore": FusionVariant("zscore", "auto"),
    "zscore-0.5": FusionVariant("zscore", "half"),
    "evidence-weight": FusionVariant("minmax", "evidence"),
    "theoretical-evidence-weight": FusionVariant("theoretical", "evidence"),
    "maxp": FusionVariant("minmax", "auto", "maxp"),
    "maxp-0.5": FusionVariant("minmax", "half", "maxp"),
    "impute": FusionVariant("minmax", "auto", "impute"),
    "top20": FusionVariant("minmax", "top20"),
    "zscore-top20": FusionVariant("zscore", "top20"),
    "sqrt": FusionVariant("minmax", "sqrt"),
    "rbo": FusionVariant("minmax", "rbo"),
}


def normalised(hits: Sequence[Hit], how: str) -> tuple[dict[str, float], float]:
    """Each hit's normalised score, and the value a chunk missing from the list gets."""
    if not hits:
        return {}, 0.0
    scores = [h.score for h in hits]
    if how == "zscore":
        mean, sd = statistics.fmean(scores), statistics.pstdev(scores) or 1.0
        out = {h.id: (h.score - mean) / sd for h in hits}
        return out, min(out.values())
    lo = 0.0 if how == "theoretical" else min(scores)
    span = max(scores) - lo
    return {h.id: (h.score - lo) / span if span > 0 else 1.0 for h in hits}, 0.0


def agreement_at(dense: Sequence[Hit], bm25: Sequence[Hit], k: int, rank_biased: bool = False) -> float:
    """Share of top-k documents in common, or its rank-biased form (RBO, p = 0.9, cut at k)."""
    a, b = top_docs(dense, k), top_docs(bm25, k)
    if not rank_biased:
        return len(set(a) & set(b)) / k
    weights = [0.9**d for d in range(k)]
    overlap = [len(set(a[: d + 1]) & set(b[: d + 1])) / (d + 1) for d in range(k)]
    return sum(w * o for w, o in zip(weights, overlap, strict=True)) / sum(weights)


def dense_weight(variant: FusionVariant, dense: Sequence[Hit], bm25: Sequence[Hit], ev: Evidence | None) -> float:
    if variant.weight == "auto" or not dense or not bm25:
        return auto_alpha(dense, bm25, evidence=ev)
    if variant.weight == "half":
        return 0.5
    if variant.weight == "evidence":
        return ev.dense / (ev.dense + ev.bm25) if ev is not None and ev.dense + ev.bm25 > 0 else 0.5
    k = 20 if variant.weight == "top20" else 10
    x = min(1.0, agreement_at(dense, bm25, k, rank_biased=variant.weight == "rbo") / 0.2)
    return anchored_alpha(0.5 * (x**0.5 if variant.weight == "sqrt" else x), ev)


def study_fuse(variant: FusionVariant, dense: Sequence[Hit], bm25: Sequence[Hit], ev: Evidence | None) -> list[Ranked]:
    alpha = dense_weight(variant, dense, bm25, ev)
    nd, miss_d = normalised(dense, variant.normalise)
    nb, miss_b = normalised(bm25, variant.normalise)
    best_d: dict[str, float] = {}
    best_b: dict[str, float] = {}
    for h in dense:
        best_d[h.doc_key] = max(best_d.get(h.doc_key, nd[h.id]), nd[h.id])
    for h in bm25:
        best_b[h.doc_key] = max(best_b.get(h.doc_key, nb[h.id]), nb[h.id])
    by_id = {h.id: h for h in [*bm25, *dense]}
    out = []
    for i, h in by_id.items():
        own = alpha * nd.get(i, miss_d) + (1 - alpha) * nb.get(i, miss_b)
        if variant.chunks == "maxp":  # the document's evidence; the chunk's own only orders a document's chunks
            score = alpha * best_d.get(h.doc_key, miss_d) + (1 - alpha) * best_b.get(h.doc_key, miss_b) + 1e-6 * own
        elif variant.chunks == "impute":
            vd = nd[i] if i in nd else 0.5 * best_d[h.doc_key] if h.doc_key in best_d else miss_d
            vb = nb[i] if i in nb else 0.5 * best_b[h.doc_key] if h.doc_key in best_b else miss_b
            score = alpha * vd + (1 - alpha) * vb
        else:
            score = own
        out.append(Ranked(h, score, dense=None, bm25=None))
    out.sort(key=lambda r: (-r.score, r.hit.id))
    return out
