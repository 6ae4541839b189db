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

The models live in ``common`` (shared types), ``documents`` (the write side), ``queries`` (queries and answers)
and ``answer_records`` (cache, audit, feedback); this module names them all, with ``ALL_MODELS`` (the JSON schemas).
"""

from __future__ import annotations

from pydantic import BaseModel

from streamrag.schemas.answer_records import AuditRecord, CacheEntry, CitedDoc, Feedback
from streamrag.schemas.common import (
    SCHEMA_VERSION,
    DocId,
    Name,
    Scalar,
    Tenant,
    UtcDateTime,
    VariantLabel,
    as_utc,
    utcnow,
)
from streamrag.schemas.documents import (
    Acl,
    DeadLetter,
    DocumentChange,
    IndexEvent,
    IndexManifest,
    IndexName,
    SourcePosition,
)
from streamrag.schemas.queries import (
    NESTED_TIMINGS,
    Answer,
    AnswerDelta,
    AnswerSources,
    Citation,
    Principal,
    Query,
    QueryFilters,
    QueryOptions,
    Turn,
    Usage,
    answer_latency_ms,
)

__all__ = [
    "ALL_MODELS", "NESTED_TIMINGS", "SCHEMA_VERSION", "Acl", "Answer", "AnswerDelta", "AnswerSources", "AuditRecord",
    "CacheEntry", "Citation", "CitedDoc", "DeadLetter", "DocId", "DocumentChange", "Feedback", "IndexEvent",
    "IndexManifest", "IndexName", "Name", "Principal", "Query", "QueryFilters", "QueryOptions", "Scalar",
    "SourcePosition", "Tenant", "Turn", "Usage", "UtcDateTime", "VariantLabel", "answer_latency_ms", "as_utc", "utcnow",
]

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
