"""Versioned event contracts.

Topic                     key                     value
------------------------  ----------------------  -------------
documents (compacted)     tenant + "/" + doc_id   DocumentChange
queries                   query_id                Query
answers                   query_id                [AnswerSources] AnswerDelta* then Answer (kind: sources|delta|final)
cache (compacted)         tenant + "/" + key      CacheEntry (tombstone = null value)
index-events              tenant + "/" + doc_id   IndexEvent
dead-letters              original key            DeadLetter
audit                     query_id                AuditRecord
feedback                  query_id                Feedback

Every model carries ``schema_version``; a consumer rejects versions it does not know.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from streamrag.schemas.audit_parts import AuditChunk
from streamrag.schemas.vocabulary import (
    DeadLetterStage,
    ErrorCode,
    FeedbackScale,
    Fusion,
    GeneratorTier,
    Rerank,
    TurnRole,
)

SCHEMA_VERSION = 1

# Tenants are operator-chosen identifiers; they never need quoting anywhere.
Tenant = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DocId = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Scalar = str | int | float | bool | None
# an A/B variant as "experiment/variant" (empty: none)
VariantLabel = Annotated[str, StringConstraints(max_length=81, pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,39}/[A-Za-z0-9][A-Za-z0-9_.-]{0,39})?$")]


# a point inside a stage of ``Answer.timings_ms`` (not a stage of its own: not added to the latency)
NESTED_TIMINGS = frozenset({"first_token"})


def answer_latency_ms(timings_ms: dict[str, float]) -> float:
    """An answer's time in the worker: its stages added up."""
    return sum(v for k, v in timings_ms.items() if k not in NESTED_TIMINGS)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(d: datetime) -> datetime:
    """A time without a zone is read as UTC (the one place that decides it)."""
    return d if d.tzinfo else d.replace(tzinfo=UTC)


# every time that arrives from outside is zone-aware once validated
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        """JSON producers send null for an absent optional field: read it as the field's default."""
        if isinstance(data, dict):
            fields = cls.model_fields
            return {
                k: v for k, v in data.items()
                if not (v is None and k in fields and not fields[k].is_required() and fields[k].default is not None)
            }
        return data


class Acl(_Model):
    """Who may see a document. Both lists empty: the whole tenant may."""

    users: list[Name] = Field(default_factory=list, max_length=10_000)
    roles: list[Name] = Field(default_factory=list, max_length=10_000)


class DocumentChange(_Model):
    """A document was created or changed (``upsert``) or removed (``delete``)."""

    schema_version: Literal[1] = 1
    op: Literal["upsert", "delete"]
    tenant: Tenant
    doc_id: DocId
    version: Annotated[int, Field(strict=True, ge=0)]
    title: Annotated[str, StringConstraints(max_length=2_000)] = ""
    text: str = ""
    # the document's file instead of ``text``, base64 (a PDF, DOCX, HTML, Markdown or text file): the ingest
    # flow's ``extract`` stage reads its text, pages and headings; at most STREAMRAG_MAX_DOC_BYTES decoded
    content_b64: str = ""
    # the format of ``content_b64`` (or of ``text``: text/markdown and text/html keep their headings), e.g.
    # application/pdf; empty or application/octet-stream: the bytes decide
    content_type: Annotated[str, StringConstraints(max_length=200)] = ""
    metadata: dict[Name, Scalar] = Field(default_factory=dict)
    acl: Acl = Field(default_factory=Acl)
    updated_at: UtcDateTime | None = None

    @field_validator("doc_id")
    @classmethod
    def _printable(cls, v: str) -> str:
        if any(ord(c) < 32 for c in v):
            raise ValueError("doc_id must not contain control characters")
        return v

    @model_validator(mode="after")
    def _one_content(self) -> DocumentChange:
        if self.text and self.content_b64:
            raise ValueError("give text or content_b64, not both")
        return self

    def wire_json(self) -> str:
        """The change as published: the content fields only when used (older workers do not know them)."""
        unused = {k for k in ("content_b64", "content_type") if not getattr(self, k)}
        return self.model_dump_json(exclude_none=True, exclude=unused)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.doc_id}"


class Principal(_Model):
    user: Name | None = None
    roles: list[Name] = Field(default_factory=list, max_length=1_000)


class QueryFilters(_Model):
    """Validated filters; never passed through as raw filter strings.

    ``metadata``: key -> value (equality) or key -> [values] (in).
    ``updated_from`` / ``updated_to``: inclusive range on the document's ``updated_at``.
    """

    metadata: dict[Name, Scalar | list[Scalar]] = Field(default_factory=dict)
    updated_from: UtcDateTime | None = None
    updated_to: UtcDateTime | None = None


class QueryOptions(_Model):
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    fusion: Fusion | None = None
    rerank: Rerank | None = None
    variants: list[Annotated[str, StringConstraints(min_length=1, max_length=4_000)]] = Field(
        default_factory=list, max_length=8
    )
    use_cache: bool = True
    # up to this many generated rephrasings of the question are searched too (on their own time budget)
    expand: Annotated[int, Field(ge=0, le=5)] = 0
    # answer deltas are published while the answer is written (final answer always follows)
    stream: bool = False
    # answer with this generator chain (tier names in order), not the configured one (an A/B variant)
    generator: list[GeneratorTier] | None = Field(None, min_length=1, max_length=3)
    # answer with this named prompt (STREAMRAG_PROMPTS), not the default one
    prompt: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")] | None = None
    # answer on this index version (see `streamrag index list`), not the active one
    index: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")] | None = None


class Turn(_Model):
    """An earlier turn of the conversation a question belongs to (oldest first in ``Query.context``)."""

    role: TurnRole
    content: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]


class Query(_Model):
    schema_version: Literal[1] = 1
    query_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    tenant: Tenant
    principal: Principal = Field(default_factory=Principal)
    text: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    filters: QueryFilters = Field(default_factory=QueryFilters)
    options: QueryOptions = Field(default_factory=QueryOptions)
    reply_to: str | None = None
    # a signed JWT; with auth on, tenant, user and roles come only from its verified claims (one over
    # STREAMRAG_AUTH_MAX_TOKEN_BYTES is refused as unauthenticated)
    auth_token: Annotated[str, StringConstraints(max_length=16_384)] | None = None
    # at most ten minutes
    deadline_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    sent_at: UtcDateTime | None = None
    # the conversation so far (a chat's earlier turns, oldest first): the model reads it, retrieval uses the
    # previous question too, and the cache shares answers only between queries of the same context
    context: list[Turn] = Field(default_factory=list, max_length=20)
    # the A/B variant the gateway assigned (experiment/variant); carried onto the answer, audit and metrics
    variant: VariantLabel = ""


class Citation(_Model):
    doc_id: str
    version: int
    chunk_id: str
    title: str = ""
    snippet: str = ""
    score: float = 0.0
    metadata: dict[str, Scalar] = Field(default_factory=dict)
    updated_at: datetime | None = None
    # where in the document the cited chunk is: its page (PDF, 1-based) and heading path ("Chapter 2 \u203a Meals")
    page: int | None = None
    section: str = ""


class Usage(_Model):
    """Tokens a generated answer cost (0 for extractive answers) and their price by the configured table."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class Answer(_Model):
    """The final answer to a query (``kind`` = final), after any number of ``AnswerDelta`` messages."""

    schema_version: Literal[1] = 1
    kind: Literal["final"] = "final"
    query_id: str
    tenant: str
    status: Literal["ok", "no_answer", "error"]
    answer: str = ""
    citations: list[Citation] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    cached: bool = False
    cache_lookup: Literal["exact", "semantic"] | None = None
    model: str = ""
    error: str | None = None
    # what went wrong (status error): the gateway's HTTP status and metrics read this, not ``error``'s text
    code: ErrorCode | None = None
    # which generator wrote the answer, and why earlier tiers did not (empty: the first tier answered); also a
    # retriever that failed ("retrieval: bm25 unavailable: ..."): the answer came from the other one alone; also
    # "guard: ...": the injection guard removed text from the prompt (such an answer is never cached)
    generator: str = ""
    fallback: list[str] = Field(default_factory=list)
    # false: the generator cited no provided source (see STREAMRAG_UNGROUNDED)
    grounded: bool = True
    usage: Usage = Field(default_factory=Usage)
    # number of AnswerDelta messages published before this one (0: none)
    deltas: int = 0
    # the index version the answer was retrieved from (every citation is from this one)
    index: str = ""
    # the query's A/B variant (experiment/variant; empty: none)
    variant: VariantLabel = ""


class AnswerDelta(_Model):
    """A piece of an answer being written; the final ``Answer`` (same key) is authoritative.

    ``reset``: the text so far is void (the generator failed mid-answer; another tier continues).
    """

    schema_version: Literal[1] = 1
    kind: Literal["delta"] = "delta"
    query_id: str
    # the query's tenant (a reply router hands a delta only to a request of the same tenant)
    tenant: str = ""
    seq: int
    delta: str = ""
    generator: str = ""
    reset: bool = False


class AnswerSources(_Model):
    """The passages an answer is being written from (``kind`` = sources): sent once, ahead of its first
    ``AnswerDelta``, when the query streams (``options.stream``), right after retrieval and before the model runs.

    ``sources`` are retrieval's chunks for the query's principal (what its ACL lets it see), in rank order:
    source n is what a streamed ``[n]`` marker names. Each snippet has instruction-like text removed (the injection
    guard). A cached answer's are its citations (``cached``); a query with nothing relevant has none. The final
    ``Answer`` (its ``citations``) is authoritative.
    """

    schema_version: Literal[1] = 1
    kind: Literal["sources"] = "sources"
    query_id: str
    # the query's tenant (a reply router hands it only to a request of the same tenant)
    tenant: str = ""
    sources: list[Citation] = Field(default_factory=list)
    cached: bool = False


class CitedDoc(_Model):
    doc_id: str
    version: int


class CacheEntry(_Model):
    """A reusable answer. Redis holds payload and TTL; the compacted cache topic is the source of truth."""

    schema_version: Literal[1] = 1
    tenant: Tenant
    cache_key: str
    normalized_text: str
    scope: str
    options_hash: str
    embedding: list[float] = Field(default_factory=list)
    answer: Answer
    cites: list[CitedDoc] = Field(default_factory=list)
    acl_tokens: list[list[str]] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None


class AuditRecord(_Model):
    """Who asked what and what they were told: one per answer on the audit topic (key query_id)."""

    schema_version: Literal[1] = 1
    query_id: str
    tenant: str
    principal: str | None = None  # the (verified, when auth is on) user id
    roles: list[str] = Field(default_factory=list)
    # HMAC-SHA256 of the question, keyed by the deployment's STREAMRAG_AUDIT_HASH_KEY_ENV secret (not guessable)
    query_sha256: str = ""
    query_text: str | None = None  # only for tenants in STREAMRAG_AUDIT_TEXT_TENANTS
    cites: list[CitedDoc] = Field(default_factory=list)
    generator: str = ""
    model: str = ""
    status: str
    cached: bool = False
    latency_ms: float = 0.0
    fallback: list[str] = Field(default_factory=list)  # why earlier generator tiers did not answer
    variant: VariantLabel = ""  # the query's A/B variant (experiment/variant)
    at: datetime = Field(default_factory=utcnow)
    # what was said: the answer's text (PII-redacted), or for tenants in STREAMRAG_AUDIT_ANSWER_HASH_TENANTS
    # only its HMAC-SHA256 under the audit key; the cited chunks with their scores; the index version
    answer_text: str | None = None
    answer_hmac: str = ""
    chunks: list[AuditChunk] = Field(default_factory=list)
    index: str = ""
    grounded: bool = True
    usage: Usage = Field(default_factory=Usage)
    timings_ms: dict[str, float] = Field(default_factory=dict)


class Feedback(_Model):
    """A user's rating of an answer (the HTTP gateway's ``POST /v1/feedback``), keyed by the answer's query_id.

    ``scale`` thumbs: ``rating`` -1 or 1; stars: 1 to 5. The tenant and user are the verified ones when auth is on.
    """

    schema_version: Literal[1] = 1
    query_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    tenant: Tenant
    user: Name | None = None
    scale: FeedbackScale = "thumbs"
    rating: Annotated[int, Field(strict=True, ge=-1, le=5)]
    comment: Annotated[str, StringConstraints(max_length=2_000)] = ""
    # the A/B variant (experiment/variant) the gateway assigns this tenant and user; empty: none
    variant: VariantLabel = ""
    at: UtcDateTime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _on_its_scale(self) -> Feedback:
        if self.scale == "thumbs" and self.rating not in (-1, 1):
            raise ValueError("a thumbs rating is -1 or 1")
        if self.scale == "stars" and not 1 <= self.rating <= 5:
            raise ValueError("a stars rating is 1 to 5")
        return self


class IndexEvent(_Model):
    """Emitted by the ingest flow once a change is applied (or knowingly not applied)."""

    schema_version: Literal[1] = 1
    tenant: str
    doc_id: str
    version: int
    op: Literal["upsert", "delete"]
    status: Literal["indexed", "deleted", "stale", "unchanged"]
    chunk_count: int = 0
    content_hash: str = ""
    # e.g. "injection": the text carries instructions aimed at a model (neutralised in answers' context)
    flags: list[str] = Field(default_factory=list)
    indexed_at: datetime = Field(default_factory=utcnow)


class SourcePosition(_Model):
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class DeadLetter(_Model):
    """An input that could not be processed: the original bytes, why, and where it failed."""

    schema_version: Literal[1] = 1
    stage: DeadLetterStage
    error: str
    # what went wrong, as a code (metrics count these); None: a dead letter from before codes
    code: ErrorCode | None = None
    original_b64: str = ""
    original_key_b64: str | None = None
    source: SourcePosition = Field(default_factory=SourcePosition)
    received_at: datetime | None = None
    failed_at: datetime = Field(default_factory=utcnow)
    # the record was itself a replayed dead letter: `streamrag replay dead-letters` does not replay it again
    replayed: bool = False
    # original_b64 holds the original encrypted (core.crypto envelope under the deployment's key), not the bytes:
    # `streamrag replay dead-letters` opens it
    sealed: bool = False

    @classmethod
    def make(
        cls,
        *,
        stage: DeadLetterStage,
        code: ErrorCode,
        error: str,
        value: bytes | None,
        key: bytes | None = None,
        source: SourcePosition | None = None,
        received_at: datetime | None = None,
        replayed: bool = False,
    ) -> DeadLetter:
        return cls(
            stage=stage,
            code=code,
            error=error[:2_000],
            original_b64=base64.b64encode(value or b"").decode("ascii"),
            original_key_b64=None if key is None else base64.b64encode(key).decode("ascii"),
            source=source or SourcePosition(),
            received_at=received_at,
            replayed=replayed,
        )

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)


IndexName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")]


class IndexManifest(_Model):
    """One index version: its tables and the settings that shaped it (model, chunking, fusion defaults).

    Kept in the registry table beside the index; ``default`` is the index that predates versions.
    """

    schema_version: Literal[1] = 1
    name: IndexName
    chunks_table: str
    docs_table: str
    # values of the index-shaping settings fields (embedding_model, chunk_size, ...) for this version
    settings: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


ALL_MODELS: dict[str, type[BaseModel]] = {
    "document_change": DocumentChange,
    "query": Query,
    "answer": Answer,
    "answer_delta": AnswerDelta,
    "answer_sources": AnswerSources,
    "cache_entry": CacheEntry,
    "index_event": IndexEvent,
    "audit_record": AuditRecord,
    "feedback": Feedback,
    "dead_letter": DeadLetter,
    "index_manifest": IndexManifest,
}
