"""Test doubles: a deterministic bag-of-words embedder (no model load)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from streamrag.core.chunking import regex_tokenize


class HashEmbedder:
    name = "hash-bow"

    def __init__(self, dim: int = 64, fail_on: str | None = None) -> None:
        self._dim = dim
        self.fail_on = fail_on
        self.calls = 0

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            if self.fail_on and self.fail_on in t:
                raise RuntimeError("embedder exploded")
            for w in re.findall(r"\w+", t.lower()):
                h = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
                out[i, h % self._dim] += 1.0
            n = np.linalg.norm(out[i])
            out[i] = out[i] / n if n else out[i]
            if not n:
                out[i, 0] = 1.0
        return out

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return regex_tokenize(text)
