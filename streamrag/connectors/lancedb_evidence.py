"""Fusion evidence in a small LanceDB table beside the index (``streamrag_fusion_evidence``): one row per index
version and tenant, replaced at each measurement, read by every process that answers on that version (a query
worker after a restart, a one-off ``streamrag ask``) instead of measuring it again (core/evidence.py)."""

from __future__ import annotations

import hashlib
import threading

import pyarrow as pa

from streamrag.connectors import lancedb_connect
from streamrag.connectors.lancedb_filters import one_of
from streamrag.core.evidence import Evidence

TABLE = "streamrag_fusion_evidence"
SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False), pa.field("index", pa.string()), pa.field("tenant", pa.string()),
    pa.field("measured_at", pa.float64()), pa.field("dense", pa.float64()), pa.field("bm25", pa.float64()),
    pa.field("samples", pa.int64()),
])


def _key(index: str, tenant: str) -> str:
    """A hex key (safe in a filter whatever the names hold)."""
    return hashlib.sha256("\x1f".join((index, tenant)).encode()).hexdigest()


class LanceEvidenceStore:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._side = lancedb_connect.SideTable(uri, TABLE)
        self._lock = threading.Lock()

    def load(self, index: str, tenant: str) -> tuple[float, Evidence] | None:
        t = self._side.open()
        if t is None:
            return None
        rows = (t.search().where(one_of("key", [_key(index, tenant)]))
                .select(["measured_at", "dense", "bm25", "samples"]).limit(1).to_arrow().to_pylist())
        if not rows:
            return None
        r = rows[0]
        return float(r["measured_at"]), Evidence(float(r["dense"]), float(r["bm25"]), int(r["samples"]))

    def save(self, index: str, tenant: str, measured_at: float, evidence: Evidence) -> None:
        row = {"key": _key(index, tenant), "index": index, "tenant": tenant, "measured_at": measured_at,
               "dense": evidence.dense, "bm25": evidence.bm25, "samples": evidence.samples}
        with self._lock:
            t = self._side.open_or_create(SCHEMA)
            (t.merge_insert("key").when_matched_update_all().when_not_matched_insert_all()
             .execute(pa.Table.from_pylist([row], schema=SCHEMA)))
