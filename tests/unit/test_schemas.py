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
    d = DeadLetter.make(stage="parse", error="bad", value=b"\xff\x00raw", key=b"k")
    back = DeadLetter.model_validate(json.loads(d.model_dump_json()))
    assert back.original() == b"\xff\x00raw"
