"""Event contracts for every topic: pydantic models, with JSON Schema files generated from them."""

from streamrag.schemas.models import (
    SCHEMA_VERSION,
    Acl,
    Answer,
    CacheEntry,
    Citation,
    CitedDoc,
    DeadLetter,
    DocumentChange,
    IndexEvent,
    Principal,
    Query,
    QueryFilters,
    QueryOptions,
    SourcePosition,
)

__all__ = [
    "SCHEMA_VERSION",
    "Acl",
    "Answer",
    "CacheEntry",
    "Citation",
    "CitedDoc",
    "DeadLetter",
    "DocumentChange",
    "IndexEvent",
    "Principal",
    "Query",
    "QueryFilters",
    "QueryOptions",
    "SourcePosition",
]
