"""The audit record of an answer: who asked (the verified principal when auth is on), a hash of the question
(its text only where the tenant allows), which document versions were cited, who wrote it, how it went."""

from __future__ import annotations

import hashlib

from streamrag.core.pii import TenantRedactors
from streamrag.core.query.processor import Reply
from streamrag.core.settings import Settings
from streamrag.schemas.models import AuditRecord, CitedDoc, answer_latency_ms


def audit_record(s: Settings, reply: Reply, redactors: TenantRedactors | None = None) -> AuditRecord:
    """``redactors``: the tenant's PII redaction also applies to a question text the audit keeps."""
    a, q = reply.answer, reply.query
    text = q.text if q is not None else ""
    kept = text if text and a.tenant in s.audit.text_tenants else None
    if kept is not None and redactors is not None:
        kept = (redactors.redact(a.tenant, [kept]) or [kept])[0]
    return AuditRecord(
        query_id=a.query_id,
        tenant=a.tenant,
        principal=q.principal.user if q is not None else None,
        roles=list(q.principal.roles) if q is not None else [],
        query_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest() if text else "",
        query_text=kept,
        cites=[CitedDoc(doc_id=c.doc_id, version=c.version) for c in a.citations],
        generator=a.generator or ("cache" if a.cached else ""),
        model=a.model,
        status=a.status,
        cached=a.cached,
        latency_ms=round(answer_latency_ms(a.timings_ms), 3),
        fallback=list(a.fallback),
        variant=a.variant,
    )
