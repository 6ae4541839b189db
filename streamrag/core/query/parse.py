"""Bytes -> Query, or a dead letter and (when the query id can be read) an error answer."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from streamrag.core.records import RawRecord, describe_validation, json_object
from streamrag.schemas.models import Answer, DeadLetter, Query


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
