"""A second-stage score from a stronger bi-encoder (any sentence-transformers model by name or path,
e.g. all-mpnet-base-v2): the question and the top ``depth`` chunks are encoded with it and re-ordered
by an equal-weight mix of the first-stage and second-stage scores (each min-max normalised)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder
from streamrag.core.errors import ModelLoadError
from streamrag.core.retrieval import Ranked


def _minmax(x: np.ndarray) -> np.ndarray:
    span = float(x.max() - x.min())
    return (x - x.min()) / span if span > 0 else np.ones_like(x)


class EmbeddingReranker:
    def __init__(self, model: str, device: str = "auto", depth: int = 10, weight: float = 0.5) -> None:
        if not model:
            raise ModelLoadError("rerank=embedder needs STREAMRAG_RERANK_MODEL (a sentence-transformers name or path)")
        self.name = f"embedder:{model}"
        self.encoder = SentenceTransformerEmbedder(model, device=device, batch_size=32)
        self.depth = depth
        self.weight = weight

    def rerank(self, question: str, ranked: Sequence[Ranked], k: int) -> list[Ranked]:
        head = list(ranked[: self.depth])
        if len(head) < 2:
            return list(ranked)
        q = self.encoder.embed_queries([question])[0]
        second = self.encoder.embed([f"{r.hit.title}\n{r.hit.text}" if r.hit.title else r.hit.text for r in head]) @ q
        first = np.array([r.score for r in head], dtype=np.float32)
        mixed = (1 - self.weight) * _minmax(first) + self.weight * _minmax(second)
        rescored = [replace(r, score=float(s)) for r, s in zip(head, mixed, strict=True)]
        rescored.sort(key=lambda r: -r.score)
        return rescored + list(ranked[self.depth :])
