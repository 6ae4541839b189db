"""The audit record of an answer: who asked (the verified principal when auth is on), a keyed hash of the question
(its text only where the tenant allows), which document versions were cited, who wrote it, how it went, and what
was said (the answer's text, or its keyed hash where the tenant's policy says so; the cited chunks and scores).

The question's hash is an HMAC-SHA256 under a deployment secret (STREAMRAG_AUDIT_HASH_KEY_ENV names its
variable): a plain SHA-256 of a short question is guessed by hashing candidates. The production profile needs
the key; development falls back to a fixed, public one (``hash_key``)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Any

from streamrag.core.errors import ConfigError
from streamrag.core.pii import TenantRedactors
from streamrag.core.query.replies import Reply
from streamrag.core.settings import Settings
from streamrag.schemas.audit_parts import AuditChunk
from streamrag.schemas.models import Answer, AuditRecord, CitedDoc, answer_latency_ms

log = logging.getLogger(__name__)
DEV_HASH_KEY = b"streamrag-development-audit-key (public: not for production)"
MIN_KEY_CHARS = 32


def hash_key(s: Settings, value: str) -> bytes:
    """The audit hash key from its variable's ``value``; ConfigError in the production profile without one."""
    if len(value) >= MIN_KEY_CHARS:
        return value.encode("utf-8")
    where = f"${s.audit.hash_key_env or '(STREAMRAG_AUDIT_HASH_KEY_ENV is empty)'}"
    if s.worker.profile == "production" and s.audit.enabled:
        raise ConfigError(f"auditing in the production profile needs a key of at least {MIN_KEY_CHARS} characters in "
                          f"{where} (the questions' hashes are keyed with it)")
    log.warning("no audit hash key of %d+ characters in %s: question hashes use the public development key",
                MIN_KEY_CHARS, where)
    return DEV_HASH_KEY


def question_hash(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest() if text else ""


def audit_record(s: Settings, reply: Reply, redactors: TenantRedactors | None = None,
                 key: bytes = DEV_HASH_KEY) -> AuditRecord:
    """``redactors``: the tenant's PII redaction also applies to a question text the audit keeps; ``key``: the
    question hash's key (``hash_key``)."""
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
        query_sha256=question_hash(key, text),
        query_text=kept,
        cites=[CitedDoc(doc_id=c.doc_id, version=c.version) for c in a.citations],
        generator=a.generator or ("cache" if a.cached else ""),
        model=a.model,
        status=a.status,
        cached=a.cached,
        latency_ms=round(answer_latency_ms(a.timings_ms), 3),
        fallback=list(a.fallback),
        variant=a.variant,
        **said(s, a, redactors, key),
    )


def said(s: Settings, a: Answer, redactors: TenantRedactors | None, key: bytes) -> dict[str, Any]:
    """What the answer said: its text (PII-redacted), or only its keyed hash for the tenants whose policy says so
    (STREAMRAG_AUDIT_ANSWER_HASH_TENANTS); the cited chunks with their scores, index version, usage, timings."""
    text: str | None = None
    mac = ""
    if a.answer and a.tenant in s.audit.answer_hash_tenants:
        mac = question_hash(key, a.answer)
    elif a.answer:
        text = a.answer if redactors is None else (redactors.redact(a.tenant, [a.answer]) or [a.answer])[0]
    return {
        "answer_text": text, "answer_hmac": mac, "index": a.index, "grounded": a.grounded, "usage": a.usage,
        "chunks": [AuditChunk(chunk_id=c.chunk_id, doc_id=c.doc_id, version=c.version, score=round(c.score, 6))
                   for c in a.citations],
        "timings_ms": {k: round(v, 3) for k, v in a.timings_ms.items()},
    }
