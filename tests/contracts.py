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

    def test_questions(self) -> None:
        """Questions are vectors of the same space; a question is nearer its answer than an unrelated text."""
        e = self.make()
        q = e.embed_queries(["How many vacation days do employees get?", "x"])
        assert q.shape == (2, e.dim) and q.dtype == np.float32
        assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-3)
        assert e.embed_queries([]).shape == (0, e.dim)
        p = e.embed(["Employees get twenty five vacation days a year.", "The parking garage opens at seven."])
        assert float(p[0] @ q[0]) > float(p[1] @ q[0])

    def test_token_spans(self) -> None:
        e, text = self.make(), "Parking costs 5 euros a day, Ünïcödé too."
        spans: list[Any] = e.token_spans(text)
        assert spans and all(0 <= a < b <= len(text) for a, b in spans)
        assert [a for a, _ in spans] == sorted(a for a, _ in spans)


class IndexContract:
    """Writes replace a document's chunks by id (a shrink drops its tail, a delete leaves a tombstone); reads
    are restricted by a ``Scope`` and return hits of live chunks; document state says version and chunk count."""

    def make(self) -> Any:  # an IndexWriter and IndexReader over one index
        raise NotImplementedError

    @staticmethod
    def _write(doc_id: str, version: int, chunks: list[str], deleted: bool = False) -> Any:
        from streamrag.core.ports import DocWrite
        from streamrag.core.security import chunk_id, doc_key

        key = doc_key("acme", doc_id)
        rows = [{"id": chunk_id("acme", doc_id, i), "doc_key": key, "tenant": "acme", "doc_id": doc_id, "chunk_no": i,
                 "version": version, "content_hash": "h", "title": doc_id, "text": t,
                 "vector": [1.0, float(i)] + [0.0] * 6, "acl": ["*"], "meta": [], "updated_ms": 0}
                for i, t in enumerate([] if deleted else chunks)]
        doc = {"doc_key": key, "tenant": "acme", "doc_id": doc_id, "version": version, "deleted": deleted,
               "content_hash": "h", "title": doc_id, "chunk_count": len(rows), "metadata_json": "{}",
               "updated_ms": 0, "indexed_ms": 0}
        return DocWrite(key, doc, rows)

    def test_writes_replace_shrink_and_tombstone(self) -> None:
        from streamrag.core.scope import Scope
        from streamrag.core.security import doc_key

        ix = self.make()
        ix.apply([self._write("a", 1, ["one", "two", "three"]), self._write("b", 1, ["bee"])], 8)
        st = ix.doc_states([doc_key("acme", "a"), doc_key("acme", "b"), doc_key("acme", "zz")])
        assert (st[doc_key("acme", "a")].version, st[doc_key("acme", "a")].chunk_count) == (1, 3) and len(st) == 2
        ix.apply([self._write("a", 2, ["only"]), self._write("b", 2, [], deleted=True)], 8)
        hits = ix.vector_search([1.0] + [0.0] * 7, Scope.of("acme", ["*"]), 10)
        assert sorted((h.doc_id, h.chunk_no, h.version) for h in hits) == [("a", 0, 2)]
        assert ix.doc_states([doc_key("acme", "b")])[doc_key("acme", "b")].deleted
        assert ix.live_versions("acme", ["a", "b"]) == {"a": 2}
        assert ix.vector_search([1.0] + [0.0] * 7, Scope.of("globex", ["*"]), 10) == []


class GeneratorContract:
    """A draft cites only what it was given (citations carry the chunks' ids), names its generator, and a
    request whose deadline has passed never runs long."""

    def make(self) -> Any:
        raise NotImplementedError

    def test_draft_cites_only_given_sources(self) -> None:
        from streamrag.core.generation.backend import GenerationRequest
        from streamrag.core.ports import Hit
        from streamrag.core.retrieval import Ranked

        ranked = [Ranked(Hit(id=f"c{i}", doc_key=f"k{i}", doc_id=f"d{i}", version=1, chunk_no=0, title=f"T{i}",
                             text=t, score=1.0), 1.0 - i / 10)
                  for i, t in enumerate(["A hotel night in Berlin is reimbursed up to 180 euros.",
                                         "Flights are booked in economy class."])]
        g = self.make()
        d = g.generate(GenerationRequest(question="How much is a hotel night?", ranked=ranked, top_k=2,
                                         tenant="acme", deadline=time.monotonic() + 120))  # a loaded CI machine
        assert d.status in ("ok", "no_answer") and d.generator
        assert {c.chunk_id for c in d.citations} <= {"c0", "c1"}
