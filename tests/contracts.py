"""Contract tests for the ports: each class is run against the fake and the real adapter (subclasses give
``make()``), so a fake cannot drift from what it stands in for."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from streamrag.core.ports import Embedder, PayloadStore


class PayloadStoreContract:
    """Shared payloads with a TTL, kept apart per tenant; unknown keys are a miss."""

    def make(self) -> PayloadStore:
        raise NotImplementedError

    def test_round_trip_isolation_and_delete(self) -> None:
        p, key = self.make(), uuid.uuid4().hex
        assert p.get("acme", key) is None
        assert p.put("acme", key, b"\x00payload\xff", 60)
        assert p.get("acme", key) == b"\x00payload\xff" and p.get("globex", key) is None
        p.delete("acme", [key, "never-there"])
        assert p.get("acme", key) is None

    def test_a_payload_expires_after_its_ttl(self) -> None:
        p, key = self.make(), uuid.uuid4().hex
        assert p.put("acme", key, b"x", 0.2)
        deadline = time.monotonic() + 5
        while p.get("acme", key) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.get("acme", key) is None


class EmbedderContract:
    """L2-normalised float32 vectors of ``dim``, one per text, the same for the same text; token spans that
    lie inside the text, in order."""

    def make(self) -> Embedder:
        raise NotImplementedError

    def test_vectors(self) -> None:
        e = self.make()
        texts = ["Employees get twenty five vacation days.", "日本語の文章です。", "x"]
        v = e.embed(texts)
        assert v.shape == (3, e.dim) and v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
        assert np.allclose(e.embed([texts[0]])[0], v[0], atol=1e-5)
        assert e.embed([]).shape == (0, e.dim)

    def test_token_spans(self) -> None:
        e, text = self.make(), "Parking costs 5 euros a day, Ünïcödé too."
        spans: list[Any] = e.token_spans(text)
        assert spans and all(0 <= a < b <= len(text) for a, b in spans)
        assert [a for a, _ in spans] == sorted(a for a, _ in spans)
