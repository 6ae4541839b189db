"""``streamrag publish``: validated document changes onto the documents topic."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.ingest.changes import parse_change
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter


def publish_records(s: Settings, records: Iterable[RawRecord], skipped: Callable[[RawRecord, str], None]) -> int:
    """Publish the valid changes (key tenant/doc_id); report each invalid one to ``skipped``."""
    good = []
    for r in records:
        parsed = parse_change(r)
        if isinstance(parsed, DeadLetter):
            skipped(r, parsed.error)
        else:
            good.append(parsed)
    if good:
        check_reachable(s)
        p = JsonProducer(s)
        for ch in good:
            p.send(s.topic_documents, ch.key, ch.model_dump_json(exclude_none=True))
        p.flush()
    return len(good)
