"""``streamrag documents history`` and ``documents rollback`` (and the gateway's routes of the same): a document's
kept versions, and one of them restored by publishing its content again as a new, higher version onto the
documents topic (the normal path: the ingest worker applies it, caches are invalidated, answers cite it)."""

from __future__ import annotations

from typing import Any

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_index_events import IndexEventWatcher
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.lancedb_documents import DocumentReader
from streamrag.connectors.lancedb_history import LanceHistory
from streamrag.core.errors import StreamragError
from streamrag.core.ingest.history import RollbackRefused, public, restored_change
from streamrag.core.records import PUBLISHER_HEADER
from streamrag.core.settings import Settings
from streamrag.schemas.models import DocumentChange


class HistoryRefused(StreamragError):
    """No such version to restore, or no history kept."""


def split_key(key: str) -> tuple[str, str]:
    """``TENANT/DOC`` -> (tenant, doc_id); the doc id may hold further slashes."""
    tenant, sep, doc_id = key.partition("/")
    if not sep or not tenant or not doc_id:
        raise HistoryRefused(f"give the document as TENANT/DOC_ID, not {key[:200]!r}")
    return tenant, doc_id


def _history(s: Settings) -> LanceHistory:
    if s.index.history_retention_days <= 0:
        raise HistoryRefused("no document history is kept (STREAMRAG_HISTORY_RETENTION_DAYS=0)")
    return LanceHistory(s.lancedb_path(), s.index.history_retention_days)


def document_history(s: Settings, tenant: str, doc_id: str) -> dict[str, Any]:
    """The document's current state in the active index and its kept versions (newest first, without text)."""
    rows = _history(s).versions(tenant, doc_id)
    current = DocumentReader(s.lancedb_path()).document(tenant, doc_id)
    return {"tenant": tenant, "doc_id": doc_id, "retention_days": s.index.history_retention_days,
            "current": None if current is None else {k: current[k] for k in ("version", "state", "index", "content_hash")},
            "versions": [public(r) for r in rows]}


def rollback_change(s: Settings, tenant: str, doc_id: str, to: int) -> DocumentChange:
    """The change restoring version ``to`` as the next version (above both the index's and the history's)."""
    rows = _history(s).versions(tenant, doc_id)
    current = DocumentReader(s.lancedb_path()).document(tenant, doc_id)
    try:
        return restored_change(rows, to, int(current["version"]) if current else 0)
    except RollbackRefused as exc:
        raise HistoryRefused(f"cannot roll {tenant}/{doc_id} back: {exc}") from exc


def rollback(s: Settings, tenant: str, doc_id: str, to: int, publisher: str, wait_s: float = 0.0) -> dict[str, Any]:
    """Publish the restoring change (header streamrag-publisher: ``publisher``); with ``wait_s``, return once the
    ingest worker applied it."""
    ch = rollback_change(s, tenant, doc_id, to)
    check_reachable(s.kafka)
    watcher = IndexEventWatcher(s.kafka, s.topics) if wait_s > 0 else None
    p = JsonProducer(s.kafka, s.worker)
    p.send(s.topics.documents, ch.key, ch.wire_json(), headers=[(PUBLISHER_HEADER, publisher.encode("utf-8")[:200])])
    p.flush()
    status = watcher.wait({ch.key: ch.version}, wait_s).get(ch.key) if watcher is not None else None
    return {"tenant": tenant, "doc_id": doc_id, "restored": to, "version": ch.version,
            "status": status or "published"}
