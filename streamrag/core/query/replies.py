"""What a query flow emits for a query: its answer and where it goes, or a dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from streamrag.core.errors import ConfigError, IndexRefused
from streamrag.schemas.models import Answer, CacheEntry, DeadLetter, Query
from streamrag.schemas.vocabulary import ErrorCode


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer and where it goes (the query's reply_to topic, or the answers topic)."""

    answer: Answer
    topic: str | None = None
    query: Query | None = None  # None: the record was not a valid query
    cache_entry: CacheEntry | None = None  # the answer's new cache entry, for the cache topic


Output = Reply | DeadLetter
Parsed = Query | Output


def error_answer(q: Query, code: ErrorCode, msg: str) -> Answer:
    """The answer a query gets when it cannot be answered (whoever asked hears back): what went wrong, as a code
    (the gateway's HTTP status), and why, in words."""
    return Answer(query_id=q.query_id, tenant=q.tenant, status="error", code=code, error=msg, variant=q.variant)


def refused_code(exc: Exception) -> ErrorCode:
    """The code of a query whose index version or prompt could not be had: one that does not exist (the query's
    fault: invalid_query), or one that could not be read (unavailable)."""
    return "invalid_query" if isinstance(exc, ConfigError | IndexRefused) else "unavailable"


def expired(q: Query) -> bool:
    if q.deadline_ms is None or q.sent_at is None:
        return False
    return (datetime.now(UTC) - q.sent_at).total_seconds() * 1000 > q.deadline_ms
