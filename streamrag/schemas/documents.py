"""The contracts of the write side: document changes (documents topic), what the ingest flow says it did with them
(index-events), inputs it could not process (dead-letters), and the manifest of an index version."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from streamrag.schemas.common import DocId, Name, Scalar, Tenant, UtcDateTime, _Model, utcnow
from streamrag.schemas.vocabulary import DeadLetterStage, ErrorCode


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
