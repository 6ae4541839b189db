"""Factories for the heavy clients, built from settings. Each worker process builds its own."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from connectors.lancedb_store import LanceStore
from streamrag.embedding import SentenceTransformerEmbedder
from streamrag.settings import Settings

if TYPE_CHECKING:
    from streamrag.query import QueryProcessor


def make_store(s: Settings) -> LanceStore:
    return LanceStore(
        s.lancedb_path(),
        ann_index_min_rows=s.ann_index_min_rows,
        fts_rebuild_every_s=s.fts_rebuild_every_s,
        optimize_every_s=s.optimize_every_s,
    )


@lru_cache(maxsize=4)
def make_embedder(model: str, device: str, batch_size: int) -> SentenceTransformerEmbedder:
    """One embedder per (model, device, batch) per process: the model loads once, lazily."""
    return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size)


def embedder_for(s: Settings) -> SentenceTransformerEmbedder:
    return make_embedder(s.embedding_model, s.device, s.batch_size)


def make_query_processor(s: Settings) -> QueryProcessor:
    from streamrag.query import QueryProcessor

    return QueryProcessor(s, make_store(s), embedder_for(s))
