"""Test doubles: a deterministic bag-of-words embedder (no model load)."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

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

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self.embed(texts)

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


class ScriptedChat:
    """A ChatModel double for the chain's logic (the real models: test_generation_local / _openai):
    answers from a script, or raises, and records every call."""

    def __init__(self, name: str = "fake", reply: str = "Hotels get 180 euros [1].", fail: Exception | None = None,
                 context_window: int = 4096, delay_s: float = 0.0) -> None:
        self.name = f"fake:{name}"
        self.model = name
        self.context_window = context_window
        self.reply = reply
        self.fail = fail
        self.delay_s = delay_s
        self.calls: list[list[dict[str, str]]] = []

    def warm_up(self) -> None:
        pass

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def complete(self, messages, *, max_tokens, temperature, deadline, on_delta=None):  # type: ignore[no-untyped-def]
        import time

        from streamrag.core.generation.backend import Completion, DeadlineExceeded

        self.calls.append(messages)
        if self.fail is not None:
            raise self.fail
        out = []
        for piece in self.reply.split(" "):
            if self.delay_s:
                time.sleep(self.delay_s)
            if time.monotonic() > deadline:
                raise DeadlineExceeded("fake: past the deadline")
            out.append(piece)
            if on_delta is not None:
                on_delta(piece + " ")
        text = " ".join(out)
        return Completion(text, sum(self.count_tokens(m["content"]) for m in messages), len(out))


class CollectingStream:
    """A DeltaStream that keeps the pieces (a reset clears them)."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.resets = 0

    def delta(self, text: str, generator: str) -> None:
        self.pieces.append(text)

    def reset(self, generator: str) -> None:
        self.resets += 1
        self.pieces.clear()


class MemoryPayloadStore:
    """The payload-store port in memory (TTL honoured), checked against the Redis adapter by the same contract
    (tests/contracts.py)."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], tuple[bytes, float]] = {}

    def get(self, tenant: str, cache_key: str) -> bytes | None:
        got = self.data.get((tenant, cache_key))
        if got is None or got[1] <= time.monotonic():
            return None
        return got[0]

    def put(self, tenant: str, cache_key: str, payload: bytes, ttl_s: float) -> bool:
        self.data[(tenant, cache_key)] = (payload, time.monotonic() + ttl_s)
        return True

    def delete(self, tenant: str, keys: list[str]) -> None:
        for k in keys:
            self.data.pop((tenant, k), None)


def count_searches(monkeypatch: Any, store: Any, table_name: str) -> list[str]:
    """The searches the store makes on one of its tables from now on (one entry each), seen through the store's
    public ``table`` lookup and LanceDB's public table API: the table is handed out wrapped, all else unchanged."""
    real_table = store.table
    searches: list[str] = []

    class Counted:
        def __init__(self, t: Any) -> None:
            self.t = t

        def search(self, *a: Any, **kw: Any) -> Any:
            searches.append(table_name)
            return self.t.search(*a, **kw)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.t, name)

    def table(name: str) -> Any:
        t = real_table(name)
        return Counted(t) if name == table_name and t is not None else t

    monkeypatch.setattr(store, "table", table)
    return searches
