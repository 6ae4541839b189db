"""Bytes -> Query, or a dead letter and (when the query id can be read) an error answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pydantic import ValidationError

from streamrag.core.records import RawRecord, describe_validation, json_object
from streamrag.schemas.models import Answer, DeadLetter, Query

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def reply_topic_error(topic: str, prefixes: Sequence[str], project_topics: Collection[str],
                      exists: Callable[[str], bool] | None = None) -> str | None:
    """Why a query's reply_to may not be answered on, or None when it may."""
    if not _TOPIC.match(topic):
        return f"reply_to {topic[:80]!r} is not a valid topic name"
    if topic in project_topics or not any(topic.startswith(p) for p in prefixes if p):
        allowed = ", ".join(f"{p}*" for p in prefixes if p) or "none (STREAMRAG_REPLY_TOPIC_PREFIXES is empty)"
        return f"reply_to {topic!r} is not allowed: reply topics are {allowed}"
    if exists is not None and not exists(topic):
        return f"reply_to topic {topic!r} does not exist (create it before asking)"
    return None


def parse_query(rec: RawRecord) -> Query | tuple[DeadLetter, Answer | None]:
    def bad(stage: str, error: str, data: Any = None) -> tuple[DeadLetter, Answer | None]:
        qid = data.get("query_id") if isinstance(data, dict) else None
        if qid is None and rec.key:
            qid = rec.key.decode("utf-8", "replace")
        tenant = data.get("tenant") if isinstance(data, dict) else None
        ans = None
        if isinstance(qid, str) and qid:
            ans = Answer(query_id=qid[:128], tenant=str(tenant or ""), status="error", error=f"invalid query: {error}")
        return rec.dead(stage, error), ans

    data = json_object(rec.value)
    if isinstance(data, str):
        return bad("parse", data)
    try:
        return Query.model_validate(data)
    except ValidationError as exc:
        return bad("validate", describe_validation(exc), data)
