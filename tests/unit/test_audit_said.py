"""What an audit record says an answer said: its text (PII-redacted) or, by tenant policy, only its keyed hash;
its cited chunks with scores, index version, grounding, usage and timings (the query flow's audit message)."""

from __future__ import annotations

import hashlib
import hmac
import json

from streamrag.core.query.audit import DEV_HASH_KEY
from streamrag.core.query.processor import Reply
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows import query as query_flow
from streamrag.schemas.models import Answer, Citation, Query, Usage


def audit_of(s: Settings, tenant: str, text: str) -> dict[str, object]:
    q = Query.model_validate({"query_id": "q1", "tenant": tenant, "text": "How many vacation days?"})
    a = Answer(query_id="q1", tenant=tenant, status="ok", answer=text, generator="local:x", index="v2",
               grounded=False, usage=Usage(prompt_tokens=10, completion_tokens=3),
               citations=[Citation(doc_id="vac", version=3, chunk_id="k:00001", score=0.8125)],
               timings_ms={"search": 2.0, "generate": 8.0})
    msgs = query_flow.to_messages(s, (RawRecord(value=b"{}", key=b"q1"), Reply(a, None, q)),
                                  query_flow.audit_redactors(s))
    return dict(json.loads(msgs[1].value))


def test_the_audit_keeps_the_answer_its_chunks_and_index(settings: Settings) -> None:
    audit = audit_of(settings, "acme", "Employees get 25 days [1].")
    assert audit["answer_text"] == "Employees get 25 days [1]." and audit["answer_hmac"] == ""
    assert audit["chunks"] == [{"chunk_id": "k:00001", "doc_id": "vac", "version": 3, "score": 0.8125}]
    assert audit["index"] == "v2" and audit["grounded"] is False
    assert audit["usage"]["prompt_tokens"] == 10 and audit["timings_ms"] == {"search": 2.0, "generate": 8.0}


def test_a_tenant_policy_keeps_only_a_keyed_hash_and_pii_is_redacted(settings: Settings) -> None:
    s = settings.model_copy(update={"audit_answer_hash_tenants": ["globex"], "pii_redaction": True})
    hashed = audit_of(s, "globex", "Write to jane@example.com.")
    assert hashed["answer_text"] is None
    assert hashed["answer_hmac"] == hmac.new(DEV_HASH_KEY, b"Write to jane@example.com.", hashlib.sha256).hexdigest()
    assert audit_of(s, "acme", "Write to jane@example.com.")["answer_text"] == "Write to [EMAIL]."
