"""``streamrag audit show`` and ``audit search``: audit records read back from the audit topic (beginning to end
now, committing nothing): what one answer said, and which answers a user was given since a time."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_topic_reader import TopicReader
from streamrag.core.errors import ConfigError
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.schemas.models import AuditRecord

log = logging.getLogger(__name__)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def since_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (2026-11-22T10:00:00Z; UTC when it names no zone), or a time ago: 30m, 12h, 7d."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m:
        return (now or datetime.now(UTC)) - timedelta(seconds=float(m.group(1)) * UNITS[m.group(2)])
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"--since wants an ISO 8601 time (2026-11-22T10:00:00Z) or a time ago (30m, 12h, 7d), "
                          f"got {text[:100]!r}") from exc
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def scan(s: Settings, keep: Callable[[RawRecord], bool], timeout_s: float = 60.0) -> list[AuditRecord]:
    """The audit records up to the topic's end now whose raw record passes ``keep`` (oldest first per partition)."""
    check_reachable(s.kafka)
    reader = TopicReader(s.kafka, s.topics.audit, f"streamrag-audit-{uuid.uuid4().hex[:8]}", start="beginning")
    out: list[AuditRecord] = []
    skipped = 0
    try:
        ends = reader.ends()
        deadline = time.monotonic() + timeout_s
        while reader.behind(ends) > 0 and time.monotonic() < deadline:
            for rec in reader.read(1000, 0.5):
                if rec.value is None or not keep(rec):
                    continue
                try:
                    out.append(AuditRecord.model_validate_json(rec.value))
                except ValidationError:
                    skipped += 1
    finally:
        reader.close()
    if skipped:
        log.warning("%s: %d records that are not audit records skipped", s.topics.audit, skipped)
    return out


def audit_show(s: Settings, query_id: str) -> AuditRecord | None:
    """The audit record of one answer (its key is the query id), or None."""
    key = query_id.encode("utf-8")
    found = scan(s, lambda r: r.key == key)
    return max(found, key=lambda a: a.at) if found else None


def audit_search(s: Settings, *, user: str | None, since: datetime | None, tenant: str | None,
                 limit: int = 100) -> list[AuditRecord]:
    """Audit records of ``user`` (the verified principal) and/or ``tenant`` at or after ``since``, newest first."""
    if user is None and tenant is None and since is None:
        raise ConfigError("give --user, --tenant or --since (the audit topic holds every answer)")
    found = [a for a in scan(s, lambda r: True)
             if (user is None or a.principal == user) and (tenant is None or a.tenant == tenant)
             and (since is None or a.at >= since)]
    return sorted(found, key=lambda a: a.at, reverse=True)[:limit]
