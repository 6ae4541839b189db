"""Rerankers that need no model: none, and MMR for diversity (lexical similarity between candidates).
The cross-encoder reranker is an adapter (connectors/cross_encoder.py) behind the same protocol."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from streamrag.core.answering import terms
from streamrag.core.retrieval import Ranked


class Reranker(Protocol):
    name: str

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]: ...


class NoRerank:
    name = "none"

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]:
        return list(ranked)


class MMRReranker:
    """Maximal marginal relevance: relevance from the fused rank, redundancy from term overlap."""

    name = "mmr"

    def __init__(self, lam: float = 0.7, depth: int = 30) -> None:
        self.lam = lam
        self.depth = depth

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]:
        pool = list(ranked[: self.depth])
        if not pool:
            return []
        hi = max(r.score for r in pool) or 1.0
        sets = {r.hit.id: set(terms(r.hit.text)) for r in pool}
        chosen: list[Ranked] = []
        while pool and len(chosen) < k:
            def mmr(r: Ranked) -> float:
                red = max((_jaccard(sets[r.hit.id], sets[c.hit.id]) for c in chosen), default=0.0)
                return self.lam * (r.score / hi) - (1 - self.lam) * red

            best = max(pool, key=mmr)
            chosen.append(best)
            pool.remove(best)
        return chosen + pool + list(ranked[self.depth :])


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
