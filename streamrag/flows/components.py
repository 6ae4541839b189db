"""Factories for the heavy clients, built from settings. Each worker process builds its own."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder
from streamrag.core.settings import Settings

if TYPE_CHECKING:
    from streamrag.core.query.processor import QueryProcessor
    from streamrag.core.cache.semantic_cache import SemanticCache


def make_store(s: Settings) -> LanceStore:
    return LanceStore(
        s.lancedb_path(),
        ann_index_min_rows=s.ann_index_min_rows,
        fts_rebuild_every_s=s.fts_rebuild_every_s,
        optimize_every_s=s.optimize_every_s,
        nprobes=s.ann_nprobes,
    )


@lru_cache(maxsize=4)
def make_embedder(model: str, device: str, batch_size: int, threads: int = 0) -> SentenceTransformerEmbedder:
    """One embedder per (model, device, batch) per process: the model loads once, lazily."""
    return SentenceTransformerEmbedder(model, device=device, batch_size=batch_size, threads=threads)


def embedder_for(s: Settings) -> SentenceTransformerEmbedder:
    return make_embedder(s.embedding_model, s.device, s.batch_size, s.torch_threads)


def make_query_processor(s: Settings, with_cache: bool = False) -> QueryProcessor:
    from streamrag.core.query.processor import QueryProcessor

    store = make_store(s)
    cache = make_cache(s, store) if with_cache and s.cache_enabled else None
    return QueryProcessor(s, store, embedder_for(s), cache=cache)


def make_cache(s: Settings, store: LanceStore) -> SemanticCache:
    """The semantic cache of a query worker: Redis payloads, cache-topic publishing, store checks."""
    from streamrag.connectors.kafka import JsonProducer
    from streamrag.connectors.redis_cache import RedisCache
    from streamrag.schemas.models import CacheEntry
    from streamrag.core.cache.policy import TenantPolicy
    from streamrag.core.cache.semantic_cache import SemanticCache

    producer = JsonProducer(s)

    def publish(key: str, entry: CacheEntry | None) -> None:
        try:
            producer.send(s.topic_cache, key, None if entry is None else entry.model_dump_json())
        except Exception as exc:  # the cache must never fail a query
            import logging

            logging.getLogger(__name__).warning("cache topic publish failed: %s", exc)

    return SemanticCache(
        RedisCache(s.redis_url, prefix=s.cache_redis_prefix),
        default_policy=TenantPolicy(
            threshold=s.cache_threshold, ttl_s=s.cache_ttl_s, guard=s.cache_polarity_guard
        ),
        tenant_overrides=dict(s.cache_tenants),  # type: ignore[arg-type]
        lru_size=s.cache_lru_size,
        defaults=(s.fusion, s.alpha, s.rerank),
        publish=publish,
        is_current=store.cites_current,
        live_versions=store.live_versions,
    )
