"""One frozen settings object, read once at the entry point and passed down.

Every field can be set with an environment variable prefixed ``STREAMRAG_``
(for example ``STREAMRAG_KAFKA_BOOTSTRAP``) or in a ``.env`` file.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamrag.core.auth import TenantKeySettings
from streamrag.core.errors import ConfigError
from streamrag.core.generation.routing import GeneratorRoute, parse_chain
from streamrag.core.generation.usage import ModelPrice
from streamrag.core.json_limits import JsonLimits
from streamrag.core.pii import PiiSettings
from streamrag.core.retrieval import RetrievalConfig
from streamrag.schemas.vocabulary import Fusion, Rerank


class CacheTenantSettings(BaseModel):
    """One tenant's cache overrides in STREAMRAG_CACHE_TENANTS; unset fields keep the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float | None = Field(None, gt=0.0, le=1.0)
    ttl_s: float | None = Field(None, gt=0)
    enabled: bool | None = None
    guard: bool | None = None
    # document metadata "type" -> TTL; an entry lives as long as the shortest TTL of what it cites
    ttl_by_type: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STREAMRAG_", env_file=".env", extra="ignore", frozen=True
    )

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_partitions: int = Field(2, ge=1, le=1024)
    kafka_timeout_s: float = Field(10.0, gt=0)
    kafka_stats_interval_ms: int = Field(0, ge=0)
    # transport security: SASL/SCRAM over TLS in production; the password is read from the variable named here
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password_env: str = "STREAMRAG_KAFKA_PASSWORD"
    kafka_ssl_ca_location: str = ""
    topic_documents: str = "streamrag.documents"
    topic_queries: str = "streamrag.queries"
    topic_answers: str = "streamrag.answers"
    topic_cache: str = "streamrag.cache"
    topic_index_events: str = "streamrag.index-events"
    topic_dead_letters: str = "streamrag.dead-letters"
    topic_audit: str = "streamrag.audit"
    # every answer also writes an audit record (tenant, principal, query hash, cited versions, status)
    audit_enabled: bool = True
    audit_retention_days: float = Field(90.0, gt=0)
    # tenants whose audit records may keep the query text (others: its SHA-256 only)
    audit_text_tenants: list[str] = Field(default_factory=list)
    ingest_group: str = "streamrag-ingest"
    # the query flow resumes from this group's committed offsets (answered queries are not re-read)
    query_group: str = "streamrag-query"
    # a query's reply_to must start with one of these and name an existing topic (never a project topic)
    reply_topic_prefixes: list[str] = Field(default_factory=lambda: ["streamrag.replies."])

    # Stores
    lancedb_uri: str = ".local/lancedb"
    # rediss://… for TLS; the AUTH password is read from the variable named here (never put it in the URL)
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password_env: str = "STREAMRAG_REDIS_PASSWORD"
    redis_ssl_ca: str = ""

    # Embedding
    embedding_model: str = "all-MiniLM-L6-v2"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    batch_size: int = Field(64, ge=1, le=4096)
    torch_threads: int = Field(0, ge=0, le=1024)
    source_batch_size: int = Field(256, ge=1, le=100_000)

    # Chunking (in model tokens)
    chunk_size: int = Field(200, ge=16, le=8192)
    chunk_overlap: int = Field(32, ge=0)
    max_doc_chars: int = Field(500_000, ge=1)

    # Outside input (documents, queries, cache and index events, dead letters): bounded before it is parsed
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=2, le=512)
    # a worker's crash ledger (the records in hand when it died), one file per flow and process
    state_dir: str = ".local/state"

    # Indexing
    # exact prefiltered search below this many chunks (recall 1.0, p95 15 ms at 100k on 2 cores); an IVF index
    # above it (a selective tenant + ACL prefilter costs IVF recall on small tables: bench scale)
    ann_index_min_rows: int = Field(100_000, ge=256)
    # "thread": the ingest worker maintains indexes in a thread of its own; "off": run
    # `streamrag worker maintain` (or nothing) instead
    maintenance: Literal["thread", "off"] = "thread"
    ann_nprobes: int = Field(32, ge=1)
    # IVF_FLAT (exact vectors) below this many chunks; IVF_PQ with refinement at or above it (bench scale)
    ann_pq_min_rows: int = Field(500_000, ge=256)
    # IVF_PQ candidates re-ranked by exact distance: refine_factor x limit
    ann_refine_factor: int = Field(10, ge=0, le=100)
    fts_rebuild_every_s: float = Field(0.0, ge=0)
    optimize_every_s: float = Field(120.0, ge=0)

    # Retrieval and answering
    overfetch: int = Field(4, ge=1, le=50)
    # candidates each retriever returns before fusion, at least (min-max fusion needs a deep list: docs/retrieval.md)
    min_candidates: int = Field(100, ge=1, le=1000)
    # auto: BM25's weight set per query by how much the two retrievers agree (docs/retrieval.md)
    fusion: Fusion = "auto"
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    # each chunk gains this share of the scores of its document's other retrieved chunks (0: best chunk only)
    doc_weight: float = Field(0.0, ge=0.0, le=1.0)
    answer_min_score: float = Field(0.25, ge=0.0, le=1.0)
    rerank: Rerank = "none"
    rerank_model: str = ""
    query_max_age_s: float = Field(300.0, gt=0)

    # Generation: a chain of tiers tried in order (local, openai, extractive); extractive always ends it
    generator: str = "local"
    generator_tenants: dict[str, str] = Field(default_factory=dict)
    generator_routes: list[GeneratorRoute] = Field(default_factory=list)
    # a packaged model name (see `streamrag models list`) or a path to a GGUF file
    local_model: str = "qwen2.5-coder-1.5b-instruct"
    model_dir: str = ".local/models"
    local_context: int = Field(4096, ge=512, le=131_072)
    local_threads: int = Field(0, ge=0, le=1024)
    # layers offloaded to a GPU when llama.cpp was built with one (-1: all)
    local_gpu_layers: int = Field(-1, ge=-1)
    openai_base_url: str = ""
    openai_model: str = ""
    # the name of the environment variable holding the API key (the key itself never sits in settings)
    openai_api_key_env: str = "OPENAI_API_KEY"
    openai_context: int = Field(8192, ge=512)
    # a GGUF path or packaged name whose tokenizer counts the server's tokens ("": ~3 characters a token)
    openai_tokenizer: str = ""
    answer_max_tokens: int = Field(200, ge=8, le=8192)
    prompt_max_tokens: int = Field(1024, ge=128)
    answer_sentences: int = Field(4, ge=1, le=50)
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    generation_timeout_ms: int = Field(30_000, ge=100)
    # an answer citing no provided source: replace it with the extractive answer, or keep it flagged
    ungrounded: Literal["extractive", "flag"] = "extractive"
    injection_guard: bool = True
    breaker_fail_max: int = Field(3, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    stream_deltas: bool = True
    llm_prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # tokens a tenant may spend per UTC day (0: unlimited); over it, answers are extractive
    tenant_daily_tokens: int = Field(0, ge=0)
    tenant_daily_tokens_by_tenant: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    expand_budget_ms: int = Field(1500, ge=50)

    # Semantic cache
    cache_enabled: bool = True
    cache_threshold: float = Field(0.92, gt=0.0, le=1.0)
    # refuse semantic hits between questions differing in a negation / comparison / number word
    cache_polarity_guard: bool = True
    cache_ttl_s: float = Field(3600.0, gt=0)
    cache_tenants: dict[str, CacheTenantSettings] = Field(default_factory=dict)
    cache_lru_size: int = Field(10_000, ge=0)
    # Redis key prefix of cache payloads: deployments (or index versions) sharing one Redis keep apart
    cache_redis_prefix: str = Field("streamrag:cache:", min_length=1, max_length=100)

    # PII redaction at ingest: on for every tenant, or per tenant (with kinds and extra patterns)
    pii_redaction: bool = False
    pii_tenants: dict[str, PiiSettings] = Field(default_factory=dict)

    # Identity: "production" turns auth on unless STREAMRAG_AUTH_REQUIRED says otherwise
    profile: Literal["development", "production"] = "development"
    auth_required: bool | None = None
    auth_tenants: dict[str, TenantKeySettings] = Field(default_factory=dict)

    # Metrics: each worker serves /metrics on this port + 0 (ingest), 1 (query), 2 (maintain),
    # + 10 per bytewax process id (0: no endpoint)
    metrics_port: int = Field(9464, ge=0, le=65_000)
    metrics_host: str = "127.0.0.1"

    # Failures: temporary errors (store, Kafka, embedding) are retried this long, then the worker stops
    retry_max_s: float = Field(60.0, gt=0)

    # Index versions: how often workers read the active version from the registry (promote/rollback)
    index_poll_s: float = Field(0.25, gt=0, le=60)

    # Worker
    recovery_dir: str = ""
    snapshot_interval_s: float = Field(5.0, gt=0)

    @field_validator("generator")
    @classmethod
    def _chain(cls, v: str) -> str:
        return ",".join(parse_chain(v))

    @field_validator("generator_tenants")
    @classmethod
    def _tenant_chains(cls, v: dict[str, str]) -> dict[str, str]:
        return {k: ",".join(parse_chain(c)) for k, c in v.items()}

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self

    @property
    def retrieval(self) -> RetrievalConfig:
        return RetrievalConfig(overfetch=self.overfetch, min_candidates=self.min_candidates, doc_weight=self.doc_weight)

    @property
    def project_topics(self) -> dict[str, str]:
        """Every topic the project owns, by setting (topic_documents, ..., topic_audit): the one list of them."""
        return {name: getattr(self, name) for name in type(self).model_fields if name.startswith("topic_")}

    @property
    def json_limits(self) -> JsonLimits:
        return JsonLimits(max_bytes=self.max_message_bytes, max_depth=self.max_json_depth)

    @property
    def auth_on(self) -> bool:
        return self.auth_required if self.auth_required is not None else self.profile == "production"

    @cached_property
    def brokers(self) -> list[str]:
        return [b.strip() for b in self.kafka_bootstrap.split(",") if b.strip()]

    @property
    def lancedb_is_local(self) -> bool:
        return "://" not in self.lancedb_uri

    def lancedb_path(self) -> str:
        """The URI to hand LanceDB: local folders are made absolute, object-store URIs pass through."""
        if self.lancedb_is_local:
            return str(Path(self.lancedb_uri).expanduser().resolve())
        return self.lancedb_uri


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise ConfigError with one readable line on bad values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        env = f"STREAMRAG_{field.upper()}" if field != "settings" else "settings"
        raise ConfigError(f"invalid {env}: {first.get('msg')}") from exc


def settings_env(s: Settings) -> dict[str, str]:
    """The environment that reproduces ``s`` in another process (workers started by tools and tests)."""
    env: dict[str, str] = {}
    for name, value in s.model_dump(mode="json").items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"STREAMRAG_{name.upper()}"] = text
    return env
