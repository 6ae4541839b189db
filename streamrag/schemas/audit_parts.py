"""The parts of an audit record that say what an answer was made of (``AuditRecord.chunks``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AuditChunk(BaseModel):
    """One cited chunk of an answer: its id, document version and retrieval score."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chunk_id: str
    doc_id: str
    version: int
    score: float = 0.0
