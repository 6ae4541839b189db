"""The ``document_history`` LanceDB table: one row per applied version of a document (core.ingest.history),
shared by every index version of the store. Rows older than the retention are deleted by the writer (at most
once an hour); rows are looked up by their generated doc key (a hex token), never by raw input."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pyarrow as pa

from streamrag.connectors import lancedb_connect
from streamrag.connectors.lancedb_errors import lance_errors
from streamrag.connectors.lancedb_filters import one_of
from streamrag.core.ingest.history import DAY_MS, key_of

log = logging.getLogger(__name__)
HISTORY = "document_history"
PRUNE_EVERY_S = 3600.0
MAX_ROWS = 10_000  # versions listed per document, newest first

HISTORY_SCHEMA = pa.schema([
    pa.field("doc_key", pa.string(), nullable=False),
    pa.field("tenant", pa.string(), nullable=False),
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("version", pa.int64(), nullable=False),
    pa.field("op", pa.string()),
    pa.field("content_hash", pa.string()),
    pa.field("title", pa.string()),
    pa.field("text", pa.string()),
    pa.field("metadata_json", pa.string()),
    pa.field("acl_json", pa.string()),
    pa.field("publisher", pa.string()),
    pa.field("index", pa.string()),
    pa.field("applied_ms", pa.int64()),
    pa.field("chunk_count", pa.int32()),
])


class LanceHistory:
    """``HistoryWriter`` and ``HistoryReader`` over the table; ``retention_days`` 0: nothing is written."""

    def __init__(self, uri: str, retention_days: float = 90.0) -> None:
        self.uri = uri
        self.retention_days = retention_days
        self._db: Any = None
        self._table: Any = None
        self._lock = threading.Lock()
        self._pruned_at = -1e9

    def _open(self, create: bool) -> Any:
        with self._lock:
            if self._table is None:
                if self._db is None:
                    self._db = lancedb_connect.connect(self.uri, read_consistency_interval=timedelta(0))
                res = self._db.list_tables() if hasattr(self._db, "list_tables") else self._db.table_names()
                if HISTORY in list(getattr(res, "tables", res)):
                    self._table = self._db.open_table(HISTORY)
                elif create:
                    self._table = self._db.create_table(HISTORY, schema=HISTORY_SCHEMA, exist_ok=True)
            return self._table

    @property
    def enabled(self) -> bool:
        return self.retention_days > 0

    def record(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append the applied versions (a version applied again, after a replay, is kept once)."""
        if not rows or not self.enabled:
            return
        t = self._open(create=True)
        with lance_errors("writing document history"):
            data = pa.Table.from_pylist(list(rows), schema=HISTORY_SCHEMA)
            (t.merge_insert(["doc_key", "version"]).when_not_matched_insert_all().execute(data))
            if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                self.prune()

    def prune(self, now_ms: int | None = None) -> None:
        """Delete the rows applied before the retention."""
        t = self._open(create=False)
        if t is None or not self.enabled:
            return
        cutoff = (now_ms if now_ms is not None else int(time.time() * 1000)) - int(self.retention_days * DAY_MS)
        self._pruned_at = time.monotonic()
        t.delete(f"applied_ms < {int(cutoff)}")
        try:  # one small fragment per batch: compacted, old table versions dropped, doc_key lookups indexed
            t.optimize(cleanup_older_than=timedelta(minutes=10))
            if not any("doc_key" in getattr(i, "columns", ()) for i in t.list_indices()):
                t.create_scalar_index("doc_key")
        except Exception as exc:  # upkeep only: the next prune tries again
            log.warning("document history upkeep deferred: %s", str(exc).splitlines()[0][:200] if str(exc) else exc)

    def versions(self, tenant: str, doc_id: str) -> list[dict[str, Any]]:
        """Every kept version of the document, newest first (with its text)."""
        t = self._open(create=False)
        if t is None:
            return []
        with lance_errors("reading document history"):
            rows = (t.search().where(one_of("doc_key", [key_of(tenant, doc_id)])).limit(MAX_ROWS)
                    .to_arrow().to_pylist())
        return sorted(rows, key=lambda r: -int(r["version"]))
