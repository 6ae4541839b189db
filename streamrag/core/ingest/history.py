"""A document's history: every version the ingest flow applied (its text, title, metadata and ACL, who published
it, the index version it went into), kept for STREAMRAG_HISTORY_RETENTION_DAYS so that it can be listed and an
older one restored (``rollback``: its content published again as a new, higher version through the documents
topic, so that caches, audit and every index version follow as for any other change)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from streamrag.core.ingest.changes import Pending
from streamrag.core.security import doc_key
from streamrag.schemas.models import DocumentChange

DAY_MS = 24 * 3600 * 1000


class HistoryWriter(Protocol):
    """Where applied versions are kept (connectors.lancedb_history)."""

    def record(self, rows: Sequence[dict[str, Any]]) -> None: ...


class HistoryReader(Protocol):
    def versions(self, tenant: str, doc_id: str) -> list[dict[str, Any]]: ...


def history_row(p: Pending, applied_ms: int) -> dict[str, Any]:
    """One applied version as the history keeps it (the text after extraction and PII redaction)."""
    ch = p.change
    return {
        "doc_key": p.key, "tenant": ch.tenant, "doc_id": ch.doc_id, "version": ch.version, "op": ch.op,
        "content_hash": p.content_hash, "title": ch.title, "text": ch.text if ch.op == "upsert" else "",
        "metadata_json": json.dumps(ch.metadata, sort_keys=True, default=str),
        "acl_json": ch.acl.model_dump_json(), "publisher": p.rec.publisher, "index": p.index,
        "applied_ms": applied_ms, "chunk_count": len(p.chunks),
    }


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A history row as listed (``documents history``, the gateway): everything but the text, which is long."""
    return {k: row[k] for k in ("version", "op", "content_hash", "title", "publisher", "index", "applied_ms",
                                "chunk_count") if k in row} | {"chars": len(row.get("text") or "")}


class RollbackRefused(ValueError):
    """The version asked for cannot be restored: ``missing`` (not in the history) or a delete."""

    def __init__(self, message: str, *, missing: bool) -> None:
        super().__init__(message)
        self.missing = missing


def restored_change(rows: Sequence[dict[str, Any]], to: int, current: int) -> DocumentChange:
    """The change that restores version ``to`` of a document (``rows``: its history) as version ``current`` + 1
    (``current``: the highest version the index or the history knows)."""
    row = next((r for r in rows if int(r["version"]) == to), None)
    if row is None:
        known = ", ".join(str(r["version"]) for r in rows) or "none"
        raise RollbackRefused(f"version {to} is not in the document's history (kept: {known})", missing=True)
    if row["op"] != "upsert":
        raise RollbackRefused(f"version {to} is a delete: nothing to restore", missing=False)
    newest = max([current, *(int(r["version"]) for r in rows)])
    return DocumentChange.model_validate({
        "op": "upsert", "tenant": row["tenant"], "doc_id": row["doc_id"], "version": newest + 1,
        "title": row["title"] or "", "text": row["text"], "metadata": json.loads(row["metadata_json"] or "{}"),
        "acl": json.loads(row["acl_json"] or "{}"),
    })


def key_of(tenant: str, doc_id: str) -> str:
    return doc_key(tenant, doc_id)
