"""The index registry in two small LanceDB tables beside the index: manifests, and the history of
activations (the newest row names the active index). Every worker reading the same LanceDB URI
sees the same active index; a promote is one append (one commit), so it is atomic.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from streamrag.connectors import lancedb_connect
from streamrag.connectors.lancedb_filters import one_of
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.index_versions import DEFAULT_INDEX, Activation
from streamrag.schemas.models import IndexManifest

MANIFESTS = "streamrag_index_manifests"
ACTIVATIONS = "streamrag_index_activations"
MANIFEST_SCHEMA = pa.schema([pa.field("name", pa.string(), nullable=False), pa.field("manifest_json", pa.string())])
ACTIVATION_SCHEMA = pa.schema([
    pa.field("seq", pa.int64(), nullable=False), pa.field("name", pa.string(), nullable=False),
    pa.field("previous", pa.string()), pa.field("at_ms", pa.int64()), pa.field("reason", pa.string()),
])


class LanceIndexRegistry:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._db: Any = None
        self._lock = threading.Lock()

    @property
    def db(self) -> Any:
        if self._db is None:
            try:
                self._db = lancedb_connect.connect(self.uri, read_consistency_interval=None)
            except Exception as exc:
                raise ServiceUnavailable(f"LanceDB at {self.uri!r} could not be opened: {exc}") from exc
        return self._db

    def _table(self, name: str) -> Any | None:
        names = self.db.list_tables() if hasattr(self.db, "list_tables") else self.db.table_names()
        if name not in list(getattr(names, "tables", names)):
            return None
        return self.db.open_table(name)  # opened per call: the newest commit, whoever wrote it

    def _ensure(self, name: str, schema: pa.Schema) -> Any:
        return self._table(name) or self.db.create_table(name, schema=schema, exist_ok=True)

    # -- manifests ----------------------------------------------------------------------------
    def manifests(self) -> dict[str, IndexManifest]:
        t = self._table(MANIFESTS)
        if t is None:
            return {}
        rows = t.search().select(["name", "manifest_json"]).limit(None).to_arrow().to_pylist()
        return {r["name"]: IndexManifest.model_validate_json(r["manifest_json"]) for r in rows}

    def register(self, manifest: IndexManifest) -> None:
        with self._lock:
            t = self._ensure(MANIFESTS, MANIFEST_SCHEMA)
            data = pa.Table.from_pylist([{"name": manifest.name, "manifest_json": manifest.model_dump_json()}],
                                        schema=MANIFEST_SCHEMA)
            t.merge_insert("name").when_matched_update_all().when_not_matched_insert_all().execute(data)

    def remove(self, name: str) -> None:
        with self._lock:
            t = self._table(MANIFESTS)
            if t is not None:
                t.delete(one_of("name", [name]))

    # -- activations --------------------------------------------------------------------------
    def history(self) -> list[Activation]:
        t = self._table(ACTIVATIONS)
        if t is None:
            return []
        rows = t.search().limit(None).to_arrow().to_pylist()
        rows.sort(key=lambda r: r["seq"])
        return [Activation(int(r["seq"]), r["name"], r["previous"] or "",
                           datetime.fromtimestamp(r["at_ms"] / 1000, UTC), r["reason"] or "") for r in rows]

    def active(self) -> str:
        hist = self.history()
        return hist[-1].name if hist else DEFAULT_INDEX

    def activate(self, name: str, reason: str) -> Activation:
        with self._lock:
            t = self._ensure(ACTIVATIONS, ACTIVATION_SCHEMA)
            hist = self.history()
            prev = hist[-1].name if hist else DEFAULT_INDEX
            row = Activation(hist[-1].seq + 1 if hist else 1, name, prev, datetime.now(UTC), reason)
            t.add(pa.Table.from_pylist([{
                "seq": row.seq, "name": name, "previous": prev, "at_ms": int(time.time() * 1000), "reason": reason,
            }], schema=ACTIVATION_SCHEMA))
            return row
