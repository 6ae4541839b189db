"""Normalised embeddings of one (tenant, options) group of cache entries, searched by cosine."""

from __future__ import annotations

import numpy as np


class VectorIndex:
    """A growable matrix of unit vectors keyed by cache key; removal swaps the last row in."""

    def __init__(self, dim: int) -> None:
        self.vecs = np.zeros((0, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.pos: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str, v: np.ndarray) -> None:
        if key in self.pos:
            self.vecs[self.pos[key]] = v
            return
        n = len(self.keys)
        if n == self.vecs.shape[0]:
            grown = np.zeros((max(64, n * 2), self.vecs.shape[1]), dtype=np.float32)
            grown[:n] = self.vecs[:n]
            self.vecs = grown
        self.vecs[n] = v
        self.keys.append(key)
        self.pos[key] = n

    def remove(self, key: str) -> None:
        i = self.pos.pop(key, None)
        if i is None:
            return
        last = len(self.keys) - 1
        if i != last:
            self.keys[i] = self.keys[last]
            self.vecs[i] = self.vecs[last]
            self.pos[self.keys[i]] = i
        self.keys.pop()

    def search(self, q: np.ndarray, threshold: float, limit: int = 8) -> list[tuple[str, float]]:
        """Up to ``limit`` (key, cosine) pairs at or above ``threshold``, best first."""
        n = len(self.keys)
        if n == 0:
            return []
        sims = self.vecs[:n] @ q
        idx = np.argpartition(-sims, limit)[:limit] if n > limit else np.arange(n)
        idx = idx[np.argsort(-sims[idx])]
        return [(self.keys[i], float(sims[i])) for i in idx if sims[i] >= threshold]
