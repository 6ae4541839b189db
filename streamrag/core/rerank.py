"""Pluggable rerankers: none, a sentence-transformers CrossEncoder (configured name or path,
loaded lazily), and MMR for diversity (lexical similarity between candidates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from streamrag.core.answering import terms
from streamrag.core.errors import ModelLoadError
from streamrag.core.lazy import Lazy
from streamrag.core.retrieval import Ranked


class Reranker(Protocol):
    name: str

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]: ...


class NoRerank:
    name = "none"

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]:
        return list(ranked)


class CrossEncoderReranker:
    def __init__(self, model: str, device: str = "cpu", depth: int = 20) -> None:
        if not model:
            raise ModelLoadError("rerank=cross-encoder needs STREAMRAG_RERANK_MODEL (a name or a local path)")
        self.name = f"cross-encoder:{model}"
        self.model_name = model
        self.device = device
        self.depth = depth
        self._model: Lazy[Any] = Lazy(self._load)

    def _load(self) -> Any:
        try:
            from sentence_transformers import CrossEncoder

            return CrossEncoder(self.model_name, device=None if self.device == "auto" else self.device)
        except Exception as exc:
            raise ModelLoadError(f"could not load cross-encoder {self.model_name!r}: {exc}") from exc

    @property
    def model(self) -> Any:
        return self._model.get()

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]:
        head = list(ranked[: self.depth])
        if not head:
            return []
        scores = self.model.predict([(question, r.hit.text) for r in head], show_progress_bar=False)
        rescored = [replace(r, score=float(s)) for r, s in zip(head, scores, strict=True)]
        rescored.sort(key=lambda r: -r.score)
        return rescored + list(ranked[self.depth :])


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


def make_reranker(kind: str, model: str = "", device: str = "cpu") -> Reranker:
    if kind == "cross-encoder":
        return CrossEncoderReranker(model, device)
    if kind == "mmr":
        return MMRReranker()
    return NoRerank()
