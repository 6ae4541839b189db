"""Configuration per component: small frozen models, each read from its own ``STREAMRAG_*`` variables (or a
``.env`` file), composed once at the entry point into ``core.settings.Settings``.

A leaf module: it imports no project logic, so every module may import its component without a cycle. The
variable of a field is ``STREAMRAG_`` + the component's prefix + the field's name (``KafkaConfig.bootstrap``
is ``STREAMRAG_KAFKA_BOOTSTRAP``); ``Settings.flat_fields()`` lists them all (the README's table).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from streamrag.schemas.vocabulary import (
    GENERATOR_TIERS,
    Fusion,
    GeneratorTier,
    PiiKind,
    PromptPacking,
    Rerank,
)

PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "ip", "postal")
Algorithm = Literal["HS256", "RS256"]


def parse_chain(text: str) -> list[GeneratorTier]:
    """'openai,local' -> ['openai', 'local']; unknown tier names are a configuration error (ValueError)."""
    chain = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in chain if t not in GENERATOR_TIERS]
    if bad or not chain:
        raise ValueError(f"unknown generator {', '.join(bad) or '(empty)'}: choose from {', '.join(GENERATOR_TIERS)}")
    return [cast(GeneratorTier, t) for t in chain]


def _chain_of(v: object) -> object:
    """A chain as written in a variable ("local,openai" or a JSON list) -> its tiers; a list passes through."""
    if isinstance(v, str):
        text = v.strip()
        if text.startswith("["):
            v = json.loads(text)
        else:
            return parse_chain(text)
    return v


# -- values nested inside components (per tenant, per route, per model) ------------------------------------
class CacheTenantSettings(BaseModel):
    """One tenant's cache overrides in STREAMRAG_CACHE_TENANTS; unset fields keep the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float | None = Field(None, gt=0.0, le=1.0)
    ttl_s: float | None = Field(None, gt=0)
    enabled: bool | None = None
    guard: bool | None = None
    # document metadata "type" -> TTL; an entry lives as long as the shortest TTL of what it cites
    ttl_by_type: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)


class TenantKeySettings(BaseModel):
    """One tenant's verification key in STREAMRAG_AUTH_TENANTS (where the key is, never the key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    algorithm: Algorithm = "HS256"
    secret_env: str = ""  # HS256: the environment variable holding the shared secret
    public_key_file: str = ""  # RS256: a PEM public key
    jwks_file: str = ""  # RS256: a JWKS file (keys chosen by the token's kid)
    issuer: str = ""
    audience: str = ""


class PiiSettings(BaseModel):
    """A tenant's redaction in STREAMRAG_PII_TENANTS (unset: STREAMRAG_PII_REDACTION for every tenant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    kinds: list[PiiKind] = Field(default_factory=lambda: list(PII_KINDS))
    # name -> regular expression (operator configuration, never user text), e.g. {"employee_id": "EMP-\\d{6}"}
    patterns: dict[str, str] = Field(default_factory=dict)
    # default region for numbers written without a country code
    phone_region: str = "DE"

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: dict[str, str]) -> dict[str, str]:
        for name, rx in v.items():
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"pattern {name!r} is not a valid regular expression: {exc}") from exc
        return v


class GeneratorRoute(BaseModel):
    """A rule: when every condition given holds, answer with ``chain`` (tier names, tried in order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    chain: list[GeneratorTier] = Field(min_length=1)
    tenants: list[str] = Field(default_factory=list)
    min_question_chars: int = Field(0, ge=0)
    max_question_chars: int | None = Field(None, ge=0)
    min_confidence: float | None = None
    max_confidence: float | None = None


class PromptStyle(BaseModel):
    """A named prompt (``STREAMRAG_PROMPTS``) a query or an A/B variant may ask for: the model's role in its
    own words (the rule that sources are data is always added) and how many sentences to write."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    system: str | None = Field(None, min_length=1, max_length=2_000)
    sentences: int | None = Field(None, ge=1, le=50)


class ModelPrice(BaseModel):
    """Price of a model's tokens, per million (any currency; the table's own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class ExperimentVariant(BaseModel):
    """One arm of an experiment: its share of traffic and the query options it sets (unset: the defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    share: float = Field(gt=0)
    fusion: Fusion | None = None
    alpha: float | None = Field(None, ge=0.0, le=1.0)
    rerank: Rerank | None = None
    generator: list[GeneratorTier] | None = Field(None, min_length=1, max_length=3)  # a generator chain
    prompt: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")  # a name in STREAMRAG_PROMPTS
    index: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")  # an index version


class Experiment(BaseModel):
    """An A/B experiment in STREAMRAG_GATEWAY_EXPERIMENTS: variants by share, for some tenants (empty: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
    tenants: list[str] = Field(default_factory=list)
    variants: list[ExperimentVariant] = Field(min_length=2, max_length=10)

    @model_validator(mode="after")
    def _distinct(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name}: variant names must differ")
        return self


# -- the components -------------------------------------------------------------------------------------------
def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", frozen=True)


class _Component(BaseSettings):
    """A component's settings: its fields, read from ``env_prefix`` + the field's name."""

    @classmethod
    def flat_prefix(cls) -> str:
        """What comes before a field's name in its variable, after ``STREAMRAG_`` (``kafka_``, or nothing)."""
        return str(cls.model_config.get("env_prefix", "")).removeprefix("STREAMRAG_").lower()


class KafkaConfig(_Component):
    """Kafka clients: brokers, timeouts, transport security (the password is read from the variable named here)."""

    model_config = _config("STREAMRAG_KAFKA_")
    bootstrap: str = "127.0.0.1:9092"
    partitions: int = Field(2, ge=1, le=1024)
    timeout_s: float = Field(10.0, gt=0)
    stats_interval_ms: int = Field(0, ge=0)
    # transport security: SASL/SCRAM over TLS in production; the password is read from the variable named here
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password_env: str = "STREAMRAG_KAFKA_PASSWORD"
    ssl_ca_location: str = ""


class TopicsConfig(_Component):
    """The project's topics (``Settings.project_topics`` lists them)."""

    model_config = _config("STREAMRAG_TOPIC_")
    documents: str = "streamrag.documents"
    queries: str = "streamrag.queries"
    answers: str = "streamrag.answers"
    cache: str = "streamrag.cache"
    index_events: str = "streamrag.index-events"
    dead_letters: str = "streamrag.dead-letters"
    audit: str = "streamrag.audit"
    feedback: str = "streamrag.feedback"


class AuditConfig(_Component):
    """The audit record every answer writes (tenant, principal, query hash, cited versions, status)."""

    model_config = _config("STREAMRAG_AUDIT_")
    # every answer also writes an audit record (tenant, principal, query hash, cited versions, status)
    enabled: bool = True
    retention_days: float = Field(90.0, gt=0)
    # tenants whose audit records may keep the query text (others: its keyed hash only)
    text_tenants: list[str] = Field(default_factory=list)
    # the environment variable holding the key of the question's HMAC-SHA256 in audit records (required in the
    # production profile; development falls back to a fixed, public key with a warning)
    hash_key_env: str = "STREAMRAG_AUDIT_HASH_KEY"
    # tenants whose audit records keep only a keyed hash of the answer's text (others: the text, PII-redacted)
    answer_hash_tenants: list[str] = Field(default_factory=list)


class CacheConfig(_Component):
    """The semantic cache."""

    model_config = _config("STREAMRAG_CACHE_")
    enabled: bool = True
    threshold: float = Field(0.92, gt=0.0, le=1.0)
    # refuse semantic hits between questions differing in a negation / comparison / number word
    polarity_guard: bool = True
    ttl_s: float = Field(3600.0, gt=0)
    tenants: dict[str, CacheTenantSettings] = Field(default_factory=dict)
    lru_size: int = Field(10_000, ge=0)
    # Redis key prefix of cache payloads: deployments (or index versions) sharing one Redis keep apart
    redis_prefix: str = Field("streamrag:cache:", min_length=1, max_length=100)


class PiiConfig(_Component):
    """PII redaction at ingest: on for every tenant, or per tenant (with kinds and extra patterns)."""

    model_config = _config("STREAMRAG_PII_")
    # PII redaction at ingest: on for every tenant, or per tenant (with kinds and extra patterns)
    redaction: bool = False
    tenants: dict[str, PiiSettings] = Field(default_factory=dict)


class AnnConfig(_Component):
    """The vector index: exact prefiltered search, IVF_FLAT or IVF_PQ by table size (bench scale)."""

    model_config = _config("STREAMRAG_ANN_")
    # exact prefiltered search below this many chunks (recall 1.0, p95 15 ms at 100k on 2 cores); an IVF index
    # above it (a selective tenant + ACL prefilter costs IVF recall on small tables: bench scale)
    index_min_rows: int = Field(100_000, ge=256)
    nprobes: int = Field(32, ge=1)
    # IVF_FLAT (exact vectors) below this many chunks; IVF_PQ with refinement at or above it (bench scale)
    pq_min_rows: int = Field(500_000, ge=256)
    # IVF_PQ candidates re-ranked by exact distance: refine_factor x limit
    refine_factor: int = Field(10, ge=0, le=100)
    # a query process holds a chunks table without a vector index, up to this many rows, in memory for the exact
    # vector search and BM25 (1-2 ms instead of LanceDB's 25-35 and 14-16 on 12k chunks; about 1.6 KB a chunk at
    # 384 dimensions, and its postings)
    mirror_max_rows: int = Field(50_000, ge=0)


class LocalModelConfig(_Component):
    """The in-process generator (llama.cpp)."""

    model_config = _config("STREAMRAG_LOCAL_")
    # a packaged model name (see `streamrag models list`) or a path to a GGUF file
    model: str = "qwen2.5-coder-1.5b-instruct"
    context: int = Field(4096, ge=512, le=131_072)
    threads: int = Field(0, ge=0, le=1024)
    # layers offloaded to a GPU when llama.cpp was built with one (-1: all)
    gpu_layers: int = Field(-1, ge=-1)


class OpenAIConfig(_Component):
    """An OpenAI-compatible generation server (the API key is read from the variable named here)."""

    model_config = _config("STREAMRAG_OPENAI_")
    base_url: str = ""
    model: str = ""
    # the name of the environment variable holding the API key (the key itself never sits in settings)
    api_key_env: str = "OPENAI_API_KEY"
    context: int = Field(8192, ge=512)
    # a GGUF path or packaged name whose tokenizer counts the server's tokens ("": ~3 characters a token)
    tokenizer: str = ""


class RedisConfig(_Component):
    """Redis (cache payloads, usage, worker stats): rediss:// for TLS, the AUTH password read from the variable named here."""

    model_config = _config("STREAMRAG_REDIS_")
    # rediss://… for TLS; the AUTH password is read from the variable named here (never put it in the URL)
    url: str = "redis://127.0.0.1:6379/0"
    password_env: str = "STREAMRAG_REDIS_PASSWORD"
    ssl_ca: str = ""


class EncryptionConfig(_Component):
    """Encryption at rest of what is kept outside the index (cache payloads, dead letters' originals), and the
    object store's server-side encryption of the index."""

    model_config = _config("STREAMRAG_ENCRYPTION_")
    # the variable holding the payload keys: comma-separated URL-safe base64 of 32 random bytes each (AES-256-GCM);
    # the first encrypts, every one decrypts (rotation). Empty: payloads stored as they are (development only:
    # the production profile refuses to start without a key)
    keys_env: str = "STREAMRAG_ENCRYPTION_KEYS"
    # server-side encryption of an s3:// index's objects (LanceDB storage options): "" (the bucket's default),
    # "AES256" (SSE-S3) or "aws:kms" (SSE-KMS, with the key below, or the account's default key)
    s3_sse: Literal["", "AES256", "aws:kms"] = ""
    s3_sse_kms_key_id: str = Field("", max_length=2048)


class AuthConfig(_Component):
    """Identity: with auth on, tenant, user and roles come only from a verified token."""

    model_config = _config("STREAMRAG_AUTH_")
    required: bool | None = None
    tenants: dict[str, TenantKeySettings] = Field(default_factory=dict)
    # a token living longer than this (exp - iat, or exp - now without iat) is refused
    max_token_lifetime_s: float = Field(86_400.0, gt=0)
    # a larger token is refused as unauthenticated
    max_token_bytes: int = Field(8_192, ge=1_024, le=16_384)


class QueryPolicyConfig(_Component):
    """What a query's options may ask of the operator's configuration: index versions and generator chains
    (an allow-list) and bounds on the work one query may cause (enforced by the worker before retrieval)."""

    model_config = _config("STREAMRAG_POLICY_")
    # verified roles that may answer on any index version (options.index); others only on an A/B variant's
    admin_roles: list[str] = Field(default_factory=lambda: ["admin"])
    max_expand: int = Field(1, ge=0, le=5)
    max_top_k: int = Field(20, ge=1, le=100)
    max_variants: int = Field(3, ge=0, le=8)
    max_variant_chars: int = Field(500, ge=1, le=4_000)
    # the conversation a query carries is cut to its latest turns within these bounds (older turns dropped)
    max_context_turns: int = Field(10, ge=0, le=20)
    max_context_chars: int = Field(8_000, ge=0, le=80_000)


class ChunkConfig(_Component):
    """Chunking, in model tokens."""

    model_config = _config("STREAMRAG_CHUNK_")
    size: int = Field(200, ge=16, le=8192)
    overlap: int = Field(32, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ChunkConfig:
        if self.overlap >= self.size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class WorkerConfig(_Component):
    """Long-lived workers: consumer groups, batches, recovery, crash ledger, metrics, retries, maintenance, outside-input limits."""

    model_config = _config("STREAMRAG_")
    ingest_group: str = "streamrag-ingest"
    # the query flow resumes from this group's committed offsets (answered queries are not re-read)
    query_group: str = "streamrag-query"
    # a query's reply_to must start with one of these and name an existing topic (never a project topic)
    reply_topic_prefixes: list[str] = Field(default_factory=lambda: ["streamrag.replies."])
    source_batch_size: int = Field(256, ge=1, le=100_000)
    # Outside input (documents, queries, cache and index events, dead letters): bounded before it is parsed
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(32, ge=2, le=512)
    # a worker's crash ledger (the records in hand when it died), one file per flow and process
    state_dir: str = ".local/state"
    # "thread": the ingest worker maintains indexes in a thread of its own; "off": run
    # `streamrag worker maintain` (or nothing) instead
    maintenance: Literal["thread", "off"] = "thread"
    # several processes maintaining one index (a cluster): "redis" lets one at a time do it, under a lease in
    # Redis renewed every third of its time to live; the others skip their runs ("none": every maintainer runs)
    maintenance_lease: Literal["none", "redis"] = "none"
    maintenance_lease_ttl_s: float = Field(30.0, ge=1, le=3600)
    # one writer per index version beside live ingest: "redis": a replay holds a lease on its version in Redis while
    # it runs, and a promote or rollback takes it to switch to that version (a running replay's version is refused);
    # "none": nothing shared (one machine). Its time to live is the maintenance lease's.
    writer_lease: Literal["none", "redis"] = "none"
    fts_rebuild_every_s: float = Field(0.0, ge=0)
    optimize_every_s: float = Field(120.0, ge=0)
    # Identity: "production" turns auth on unless STREAMRAG_AUTH_REQUIRED says otherwise
    profile: Literal["development", "production"] = "development"
    # Metrics: each worker serves /metrics on this port + 0 (ingest), 1 (query), 2 (maintain),
    # + 10 per bytewax process id (0: no endpoint)
    metrics_port: int = Field(9464, ge=0, le=65_000)
    # the "10 per bytewax process id" above: 0 where each process has a host (a pod) of its own, all on one port
    metrics_port_stride: int = Field(10, ge=0, le=1000)
    metrics_host: str = "127.0.0.1"
    # Failures: temporary errors (store, Kafka, embedding) are retried this long, then the worker stops
    retry_max_s: float = Field(60.0, gt=0)
    # Index versions: how often workers read the active version from the registry (promote/rollback)
    index_poll_s: float = Field(0.25, gt=0, le=60)
    recovery_dir: str = ""
    # partitions of a new recovery store: fixed when it is created, and the most bytewax workers (processes x
    # threads) it can ever be resumed with (rescaling past it needs a fresh store)
    recovery_partitions: int = Field(1, ge=1, le=4096)
    snapshot_interval_s: float = Field(5.0, gt=0)


class IndexConfig(_Component):
    """The index: where it lives, the embedding model that shapes it, documents it accepts."""

    model_config = _config("STREAMRAG_")
    lancedb_uri: str = ".local/lancedb"
    embedding_model: str = "all-MiniLM-L6-v2"
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    batch_size: int = Field(64, ge=1, le=4096)
    torch_threads: int = Field(0, ge=0, le=1024)
    # a query worker's encoder threads when torch_threads is 0: its questions come one or a few at a time, which
    # one thread embeds fastest (more threads wait on each other for ~100 small operations per question)
    query_torch_threads: int = Field(1, ge=0, le=1024)
    # questions encoded by PyTorch, or by ONNX Runtime on a CPU (the model exported once into STREAMRAG_MODEL_DIR/onnx):
    # the same vectors, a third of the time per question
    query_encoder: Literal["torch", "onnx"] = "onnx"
    max_doc_chars: int = Field(500_000, ge=1)
    # a document's file (DocumentChange.content_b64), decoded; larger ones are dead letters (stage extract).
    # Through Kafka its base64 (4/3 of it) must also fit STREAMRAG_MAX_MESSAGE_BYTES: 3 MB does, at 4 MiB
    max_doc_bytes: int = Field(3_000_000, ge=1)
    # Extraction bounds (#34): a ZIP container (DOCX) whose entries would inflate past this many bytes, or that
    # has more entries, is a dead letter before anything is inflated; a .jsonl.gz is read only this far (or 50
    # times its own size, if larger)
    max_uncompressed_bytes: int = Field(50_000_000, ge=1)
    max_archive_entries: int = Field(10_000, ge=1)
    # PDF, DOCX and HTML are read in warm child processes ("process"): one past its time or memory limit is
    # killed (a dead letter at extract naming the limit) and replaced; "inline" reads them in the worker itself
    extract_sandbox: Literal["process", "inline"] = "process"
    extract_timeout_s: float = Field(10.0, gt=0, le=3600)
    extract_memory_mb: int = Field(1024, ge=64, le=1_048_576)
    # child processes (documents of a batch extracted side by side)
    extract_processes: int = Field(1, ge=1, le=64)
    # every applied version of a document (text, title, metadata, ACL) is kept this long in the document_history
    # table, for `streamrag documents history` and `rollback` (0: no history is written)
    history_retention_days: float = Field(90.0, ge=0)


class RetrievalSettings(_Component):
    """Retrieval and answering: candidates, fusion, rerank, relevance floor, query age."""

    model_config = _config("STREAMRAG_")
    overfetch: int = Field(4, ge=1, le=50)
    # candidates each retriever returns before fusion, at least (min-max fusion needs a deep list: docs/retrieval.md)
    min_candidates: int = Field(100, ge=1, le=1000)
    # auto: BM25's weight set per query by how much the two retrievers agree (docs/retrieval.md)
    fusion: Fusion = "auto"
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    # each chunk gains this share of the scores of its document's other retrieved chunks (0: best chunk only)
    doc_weight: float = Field(0.0, ge=0.0, le=1.0)
    answer_min_score: float = Field(0.25, ge=0.0, le=1.0)
    # auto fusion: each tenant's self-retrieval evidence measured again after this long (0: not measured)
    fusion_evidence_ttl_s: float = Field(3600.0, ge=0.0)
    rerank: Rerank = "none"
    rerank_model: str = ""
    query_max_age_s: float = Field(300.0, gt=0)


class GenerationConfig(_Component):
    """Generation: a chain of tiers tried in order (local, openai, extractive; extractive always ends it), budgets, limits."""

    model_config = _config("STREAMRAG_")
    # Generation: a chain of tiers tried in order (local, openai, extractive); extractive always ends it
    # a chain of tiers, written "local,openai" (or a JSON list); read once into a list
    generator: Annotated[list[GeneratorTier], NoDecode] = Field("local", validate_default=True)  # type: ignore[assignment]
    generator_tenants: dict[str, list[GeneratorTier]] = Field(default_factory=dict)
    generator_routes: list[GeneratorRoute] = Field(default_factory=list)
    model_dir: str = ".local/models"
    answer_max_tokens: int = Field(200, ge=8, le=8192)
    # the prompt's tokens: on a CPU each costs time before the first answer token (docs/answers.md: the frontier)
    prompt_max_tokens: int = Field(400, ge=128)
    # every source's best sentences in turns (focused), or of each source the sentences bearing on the question
    # with their neighbours (sentences), or whole chunks
    prompt_packing: PromptPacking = "focused"
    answer_sentences: int = Field(4, ge=1, le=50)
    temperature: float = Field(0.1, ge=0.0, le=2.0)
    generation_timeout_ms: int = Field(30_000, ge=100)
    # generations in flight per query worker process (with all busy, more queries wait: generation_queue)
    generation_concurrency: int = Field(4, ge=1, le=1024)
    # queries retrieved (their sources sent) that may wait for a busy slot, beyond the concurrency; past them the
    # worker reads no more queries. A waiting query's generation deadline runs while it waits
    generation_queue: int = Field(16, ge=0, le=10_000)
    # an answer citing no provided source: replace it with the extractive answer, or keep it flagged
    ungrounded: Literal["supported", "extractive", "flag"] = "supported"
    injection_guard: bool = True
    breaker_fail_max: int = Field(3, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)
    stream_deltas: bool = True
    llm_prices: dict[str, ModelPrice] = Field(default_factory=dict)
    # named prompts a query (options.prompt) or an A/B variant may ask for
    prompts: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")], PromptStyle] = Field(
        default_factory=dict)
    # tokens a tenant may spend per UTC day (0: unlimited); over it, answers are extractive
    tenant_daily_tokens: int = Field(0, ge=0)
    tenant_daily_tokens_by_tenant: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    expand_budget_ms: int = Field(1500, ge=50)

    @field_validator("generator", mode="before")
    @classmethod
    def _chain(cls, v: object) -> object:
        return _chain_of(v)

    @field_validator("generator_tenants", mode="before")
    @classmethod
    def _tenant_chains(cls, v: object) -> object:
        return {k: _chain_of(c) for k, c in v.items()} if isinstance(v, dict) else v



class GatewayConfig(_Component):
    """The HTTP gateway (``streamrag gateway``): where it listens, how long it waits, what it accepts."""

    model_config = _config("STREAMRAG_GATEWAY_")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65_535)
    # this replica's reply topic ("": the first STREAMRAG_REPLY_TOPIC_PREFIXES entry + "gateway-" + host and pid)
    reply_topic: str = ""
    # a gateway's reply topic unwritten this long (its heartbeat comes every minute) is deleted by the next
    # gateway that starts: its replica died without deleting it
    reply_topic_expire_s: float = Field(900.0, ge=300, le=86_400)
    # seconds a request waits for its answer (504 after it); a query's deadline_ms may shorten it
    request_timeout_s: float = Field(30.0, gt=0, le=600)
    # requests per tenant (a `limits` rate string: "120/minute", "10/second;500/hour"; "": no limit)
    rate_limit: str = "120/minute"
    # where the rate-limit counters live: memory:// (per replica) or a redis:// URL (shared by replicas)
    rate_limit_storage: str = "memory://"
    max_body_bytes: int = Field(1_048_576, ge=1_024)
    # with auth on, roles that may write and read documents (empty: any verified user of the tenant)
    document_roles: list[str] = Field(default_factory=lambda: ["admin", "writer"])
    # /readyz also asks that a query worker be alive (its statistics in Redis, or an answer in the last minute)
    ready_needs_worker: bool = True
    # A/B experiments: a (tenant, user) gets one variant per experiment, sticky by a hash (the first that applies)
    experiments: list[Experiment] = Field(default_factory=list)
    # -- safe in front of real users (#34) --
    # browser origins allowed to call the API cross-site (CORS; empty: none, no CORS headers at all)
    cors_origins: list[str] = Field(default_factory=list)
    # with auth off, listening beyond loopback is refused unless this names the risk
    allow_unauthenticated_public: bool = False
    # requests per user (a `limits` rate string, beside the tenant's; "": no limit)
    user_rate_limit: str = "60/minute"
    # failed authentications (401) per client address before its requests are refused (429)
    auth_failure_limit: str = "20/minute"
    # the longest ?wait= of a document upload, and how many uploads of one tenant may wait at once
    max_wait_s: float = Field(120.0, ge=0, le=600)
    max_waiting_uploads: int = Field(4, ge=0, le=10_000)
    # streamed answers (server-sent events) one tenant may have open at once
    max_streams: int = Field(20, ge=1, le=100_000)
    # uvicorn: idle keep-alive seconds, seconds for a request head to arrive, the largest request head (bytes),
    # the most connections and tasks at once
    keep_alive_s: float = Field(5.0, gt=0, le=300)
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    max_header_bytes: int = Field(16_384, ge=1_024, le=1_048_576)
    max_connections: int = Field(1_000, ge=1)
    # /metrics: tenant names as label values (else "-"), and served on the public port (unset: yes, except in
    # the production profile); a private port of its own (0: none) on STREAMRAG_METRICS_HOST
    metrics_tenant_labels: bool = False
    metrics_public: bool | None = None
    metrics_port: int = Field(0, ge=0, le=65_535)


class IndexShape(BaseModel):
    """The settings that shape an index version (its rows, or how they are searched), by their flat names:
    kept in its manifest, so every worker writes and searches a version as it was built."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    max_doc_chars: int
    pii_redaction: bool
    pii_tenants: dict[str, PiiSettings]
    fusion: Fusion
    alpha: float
    doc_weight: float
    overfetch: int
    rerank: Rerank
    rerank_model: str
    answer_min_score: float


class TopicLayout(BaseModel):
    """The project's topics as they are created and configured (``connectors.kafka_admin.ensure_topics``): their
    names, the largest message they take (``worker.max_message_bytes``), the audit topic's retention, and the
    consumer group whose coordinator must answer before a worker starts. ``Settings.topic_layout`` composes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    topics: TopicsConfig
    worker: WorkerConfig
    audit: AuditConfig
