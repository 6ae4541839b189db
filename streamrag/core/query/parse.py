"""Bytes -> Query, or a dead letter and (when the query id can be read) an error answer."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any

from pydantic import ValidationError

from streamrag.core.json_limits import JsonLimits, Reason, describe_validation, read_object
from streamrag.core.records import RawRecord
from streamrag.schemas.models import Answer, DeadLetter, Query
from streamrag.schemas.vocabulary import DeadLetterStage, ErrorCode

_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# a JWT (its header is base64url JSON: it starts with '{"', "eyJ") anywhere in bytes that are not JSON
_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
TOKEN_REMOVED = b"[token removed]"


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


def parse_query(rec: RawRecord, limits: JsonLimits = JsonLimits()) -> Query | tuple[DeadLetter, Answer | None]:
    data = read_object(rec.value, limits)
    if isinstance(data, Reason):
        return failed(rec, "parse", data)
    try:
        return Query.model_validate(data)
    except ValidationError as exc:
        return failed(rec, "validate", describe_validation(exc), data)


def failed(rec: RawRecord, stage: DeadLetterStage, error: str, data: Any = None,
           code: ErrorCode = "invalid_query") -> tuple[DeadLetter, Answer | None]:
    """The record's dead letter and, when a query id can be read (field or key), its error answer."""
    qid = data.get("query_id") if isinstance(data, dict) else None
    if not isinstance(qid, str) or not qid:
        qid = rec.key.decode("utf-8", "replace") if rec.key else None
    tenant = data.get("tenant") if isinstance(data, dict) else None
    ans = None
    if qid:
        ans = Answer(query_id=qid[:128], tenant=tenant[:64] if isinstance(tenant, str) else "", status="error",
                     code=code, error=f"invalid query: {error}")
    return rec.dead(stage, code, error), ans


def without_token(dead: DeadLetter) -> DeadLetter:
    """The dead letter of a query without its bearer token (dead letters are kept for weeks): a JSON object loses
    its ``auth_token``; anything shaped like a JWT in other bytes is blanked."""
    raw = dead.original()
    cleaned = raw
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and "auth_token" in data:
        del data["auth_token"]
        cleaned = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    cleaned = _JWT.sub(TOKEN_REMOVED, cleaned)
    if cleaned == raw:
        return dead
    return dead.model_copy(update={"original_b64": base64.b64encode(cleaned).decode("ascii")})
