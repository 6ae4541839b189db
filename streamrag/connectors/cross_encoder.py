"""A sentence-transformers CrossEncoder as a reranker (a configured model name or local path,
loaded once, lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from streamrag.core.errors import ModelLoadError
from streamrag.core.lazy import Lazy
from streamrag.core.retrieval import Ranked


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
            # torch and sentence-transformers take seconds to import: only when a model is used
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
