"""The ports the core logic needs, as Protocols, and the plain data that crosses them.

Adapters in ``streamrag.connectors`` implement these (LanceDB, Redis, Kafka, sentence-transformers);
tests implement them with small fakes. Nothing here imports an adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from streamrag.core.scope import Scope
from streamrag.schemas.models import CacheEntry


@dataclass(frozen=True, slots=True)
class DocState:
    """What the index holds for one document: its version, tombstone, content hash and chunk count."""

    doc_key: str
    version: int
    deleted: bool
    content_hash: str
    chunk_count: int = 0


@dataclass(slots=True)
class DocWrite:
    """One document's new state: its full chunk rows (empty for a delete) and its doc row."""

    doc_key: str
    doc_row: dict[str, Any]
    chunk_rows: list[dict[str, Any]] = field(default_factory=list)
    # chunks the index held for it when its state was read (None: not read; the write reads it)
    prior_chunks: int | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk."""

    id: str
    doc_key: str
    doc_id: str
    chunk_no: int
    version: int
    title: str
    text: str
    score: float
    acl: tuple[str, ...] = ()
    page: int | None = None  # where in its document (extracted files): page, 1-based
    section: str = ""  # and heading path, "Chapter 2 \u203a Meals"


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as an index holds it, for reusing its embedding when its text has not changed."""

    title: str
    text: str
    chunk_no: int
    vector: Sequence[float]


@runtime_checkable
class VectorSource(Protocol):
    """The stored chunks of documents, by chunk id (an index built with the same embedding model)."""

    def stored_vectors(self, doc_keys: Sequence[str]) -> dict[str, StoredChunk]: ...


class Embedder(Protocol):
    """Text -> L2-normalised vectors (passages and questions apart, for models trained with prompts), and the
    model's own token spans (for chunking)."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray:
        """Passages (what is indexed)."""
        ...

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Questions: a model trained with a query prompt (e5's ``query: ``) gets it here; others embed alike."""
        ...

    def token_spans(self, text: str) -> list[tuple[int, int]]: ...


class DocStateReader(Protocol):
    def doc_states(self, doc_keys: Iterable[str]) -> dict[str, DocState]: ...


class IndexWriter(DocStateReader, Protocol):
    """What the ingest stages need of the index."""

    def apply(self, writes: Sequence[DocWrite], dim: int) -> None: ...


class IndexReader(Protocol):
    """What the query path needs of the index. Each search returns only rows in ``scope`` (``core.scope``: the
    tenant, the principal's ACL tokens, the query's filters), which the store renders in its own terms. A search
    that fails raises ``SearchFailed`` (never an empty list)."""

    def vector_search(self, vector: Sequence[float], scope: Scope, limit: int) -> list[Hit]: ...

    def text_search(self, text: str, scope: Scope, limit: int) -> list[Hit]: ...

    def docs(self, doc_keys: Iterable[str], versions: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]]:
        """Document rows by doc_key; ``versions``: the version wanted of each (a row of a version never changes,
        so the store may answer it from memory)."""
        ...

    def live_versions(self, tenant: str, doc_ids: Iterable[str]) -> dict[str, int]: ...

    def sample_texts(self, tenant: str, limit: int) -> list[str]:
        """Up to ``limit`` of the tenant's chunk texts (self-retrieval evidence: core/evidence.py)."""
        ...


class PayloadStore(Protocol):
    """Shared payloads with a TTL (Redis). Never raises: unavailable means a miss / no-op."""

    def get(self, tenant: str, cache_key: str) -> bytes | None: ...

    def put(self, tenant: str, cache_key: str, payload: bytes, ttl_s: float) -> bool: ...

    def delete(self, tenant: str, keys: list[str]) -> None: ...


class EntryPublisher(Protocol):
    """Publishes a cache entry (or a tombstone, ``None``) under ``tenant/cache_key``."""

    def __call__(self, key: str, entry: CacheEntry | None) -> None: ...


# a record's place in its topic: (topic, partition, offset)
Position = tuple[str, int, int]


class CrashLedger(Protocol):
    """What a worker had in hand when it last died (kept where a restart finds it)."""

    def convicted(self, pos: Position) -> bool:
        """In hand, alone, at two crashes: dead-letter it instead of processing it again."""
        ...

    def suspect(self, pos: Position) -> bool:
        """In hand at one crash: process it alone."""
        ...

    def holding(self, stage: str, positions: Sequence[Position]) -> AbstractContextManager[None]:
        """Note ``positions`` as in hand for the duration of one step call."""
        ...

    def cleared(self, pos: Position) -> None:
        """A suspect got through the flow alone, or a convict was dead-lettered: no longer remembered."""
        ...
