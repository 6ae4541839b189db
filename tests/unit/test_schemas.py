import json

import pytest
from pydantic import ValidationError

from streamrag.schemas.generate import main as check_schemas
from streamrag.schemas.models import DeadLetter, DocumentChange, Query


def test_json_schema_files_match_models() -> None:
    assert check_schemas(["--check"]) == 0


def test_document_change_rejects_bad_fields() -> None:
    with pytest.raises(ValidationError):
        DocumentChange.model_validate({"op": "upsert", "tenant": "a b", "doc_id": "x", "version": 1})
    with pytest.raises(ValidationError):
        DocumentChange.model_validate({"op": "upsert", "tenant": "a", "doc_id": "x", "version": "1"})
    with pytest.raises(ValidationError):
        DocumentChange.model_validate({"op": "merge", "tenant": "a", "doc_id": "x", "version": 1})
    with pytest.raises(ValidationError):
        DocumentChange.model_validate({"op": "upsert", "tenant": "a", "version": 1})


def test_query_defaults_and_limits() -> None:
    q = Query.model_validate({"query_id": "q1", "tenant": "acme", "text": "hi"})
    assert q.top_k == 5 and q.principal.user is None
    with pytest.raises(ValidationError):
        Query.model_validate({"query_id": "q1", "tenant": "acme", "text": "hi", "top_k": 0})


def test_dead_letter_keeps_original_bytes() -> None:
    d = DeadLetter.make(stage="parse", code="invalid_record", error="bad", value=b"\xff\x00raw", key=b"k")
    back = DeadLetter.model_validate(json.loads(d.model_dump_json()))
    assert back.original() == b"\xff\x00raw" and back.code == "invalid_record"
    old = {k: v for k, v in json.loads(d.model_dump_json()).items() if k != "code"}  # from before codes
    assert DeadLetter.model_validate(old).code is None


def test_times_from_outside_are_zone_aware_once_validated() -> None:
    from datetime import UTC

    from streamrag.schemas.models import DocumentChange, Query

    ch = DocumentChange.model_validate({"op": "upsert", "tenant": "acme", "doc_id": "d", "version": 1, "text": "x",
                                        "updated_at": "2026-01-02T03:04:05"})
    q = Query.model_validate({"query_id": "q", "tenant": "acme", "text": "x", "sent_at": "2026-01-02T03:04:05",
                              "filters": {"updated_from": "2026-01-01T00:00:00+02:00"}})
    assert ch.updated_at is not None and ch.updated_at.tzinfo == UTC and ch.updated_at.hour == 3
    assert q.sent_at is not None and q.sent_at.tzinfo == UTC
    assert q.filters.updated_from is not None and q.filters.updated_from.utcoffset() is not None
