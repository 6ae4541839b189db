"""What an answer leaves behind: its cache entry (compacted cache topic), its audit record (audit topic) and its
users' feedback (feedback topic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from streamrag.schemas.audit_parts import AuditChunk
from streamrag.schemas.common import Name, Tenant, UtcDateTime, VariantLabel, _Model, utcnow
from streamrag.schemas.queries import Answer, Usage
from streamrag.schemas.vocabulary import FeedbackScale


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
