"""``streamrag publish``: validated document changes onto the documents topic (files over
STREAMRAG_MAX_DOC_BYTES are not sent: the workers would refuse them)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_index_events import IndexEventWatcher
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.extraction import b64_size
from streamrag.core.ingest.changes import parse_change
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter


def publish_records(
    s: Settings, records: Iterable[RawRecord], skipped: Callable[[RawRecord, str], None], wait_s: float = 0.0,
    tenant: str | None = None, applied: Callable[[int, int], None] | None = None,
) -> int:
    """Publish the valid changes (key tenant/doc_id); report each invalid one to ``skipped``; with
    ``wait_s``, return only once the ingest worker has applied them (their index events arrived), calling
    ``applied(done, total)`` as they are. With ``tenant`` (``--tenant``), a change of another tenant is refused."""
    good = []
    for r in records:
        parsed = parse_change(r, s.json_limits)
        if isinstance(parsed, DeadLetter):
            skipped(r, parsed.error)
        elif tenant is not None and parsed.tenant != tenant:
            skipped(r, f"the change names tenant {parsed.tenant!r}, not --tenant {tenant!r}: not sent")
        elif parsed.content_b64 and b64_size(parsed.content_b64) > s.index.max_doc_bytes:  # refused by any worker
            skipped(r, f"file too large: more than STREAMRAG_MAX_DOC_BYTES={s.index.max_doc_bytes} bytes")
        else:
            good.append(parsed)
    if good:
        check_reachable(s.kafka)
        watcher = IndexEventWatcher(s.kafka, s.topics) if wait_s > 0 else None
        p = JsonProducer(s.kafka, s.worker)
        for ch in good:
            p.send(s.topics.documents, ch.key, ch.wire_json())
        p.flush()
        if watcher is not None:
            if applied is not None:
                applied(0, len(good))
            watcher.wait({ch.key: ch.version for ch in good}, wait_s, applied)
    return len(good)
