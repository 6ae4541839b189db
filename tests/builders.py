"""Test-data builders shared by the tests (not by the benchmarks: a bench keeps its own generator, so that changing
one never changes the other): synthetic store writes, and a Kafka message as a consumer hands it over."""

from __future__ import annotations

import numpy as np

from streamrag.core.ports import DocWrite
from streamrag.core.records import Outgoing
from streamrag.core.security import acl_tokens, chunk_id, doc_key
from streamrag.schemas.models import Acl

DIM = 384
CHUNKS_PER_DOC = 4
WORDS = np.array(["stream", "index", "vector", "query", "answer", "tenant", "kafka", "lance", "chunk", "embed", "latency",
                  "cache", "model", "token", "policy", "travel", "budget", "invoice", "contract", "renewal", "audit",
                  "signal", "replay", "version"])
ROLES = ["sales", "hr", "eng", "legal", "ops"]


def doc_writes(rng: np.random.Generator, centres: np.ndarray, start: int, n_docs: int, tenants: int) -> list[DocWrite]:
    """``n_docs`` documents (``d{start}`` on) of ``CHUNKS_PER_DOC`` chunks each, spread over ``tenants`` tenants,
    every other one readable by one role only; vectors drawn around ``centres`` (``DIM`` wide, normalised), texts
    short word salads. No encoder runs: what the store alone does with them."""
    writes = []
    for d in range(start, start + n_docs):
        tenant, doc_id = f"t{d % tenants}", f"d{d}"
        mix = d // tenants  # every tenant gets public documents and documents of each role
        acl = Acl() if mix % 2 == 0 else Acl(roles=[ROLES[mix % 5]])
        toks = acl_tokens(acl)
        key = doc_key(tenant, doc_id)
        c = centres[rng.integers(len(centres))]
        vecs = c + rng.normal(0, 0.35, (CHUNKS_PER_DOC, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        rows = [{"id": chunk_id(tenant, doc_id, i), "doc_key": key, "tenant": tenant, "doc_id": doc_id, "chunk_no": i,
                 "version": 1, "content_hash": "", "title": f"Doc {d}", "text": " ".join(rng.choice(WORDS, 30)),
                 "vector": vecs[i].tolist(), "acl": toks, "meta": [], "updated_ms": 0} for i in range(CHUNKS_PER_DOC)]
        writes.append(DocWrite(key, {"doc_key": key, "tenant": tenant, "doc_id": doc_id, "version": 1, "deleted": False,
                                     "content_hash": "", "title": f"Doc {d}", "chunk_count": CHUNKS_PER_DOC,
                                     "metadata_json": "{}", "updated_ms": 0, "indexed_ms": 0}, rows))
    return writes


class Consumed:
    """A consumed Kafka message, as confluent_kafka's consumer hands it over (``error()`` None: a good read)."""

    def __init__(self, topic: str, value: bytes | None, key: bytes | None = b"acme/k", offset: int = 1) -> None:
        self._t, self._v, self._k, self._o = topic, value, key, offset

    @classmethod
    def of(cls, msg: Outgoing, offset: int = 1) -> Consumed:
        """What a consumer of ``msg.topic`` reads back of a message a worker produced."""
        return cls(msg.topic, msg.value, msg.key, offset)

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._t

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes | None:
        return self._k

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._o
