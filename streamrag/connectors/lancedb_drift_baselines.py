"""Drift baselines in a small LanceDB table beside the index (``streamrag_drift_baselines``): one row per index
version, kind and tenant, written once when its reference window fills (the first writer wins, so replicas and
restarts share it) and read by every later query worker of that index version."""

from __future__ import annotations

import hashlib
import threading

import pyarrow as pa

from streamrag.connectors import lancedb_connect
from streamrag.connectors.lancedb_filters import one_of
from streamrag.core.drift import Baseline

TABLE = "streamrag_drift_baselines"
SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False), pa.field("index", pa.string()), pa.field("kind", pa.string()),
    pa.field("tenant", pa.string()), pa.field("size", pa.int64()), pa.field("ref_sum", pa.list_(pa.float64())),
])


def _key(index: str, kind: str, tenant: str) -> str:
    """A hex key (safe in a filter whatever the names hold)."""
    return hashlib.sha256("\x1f".join((index, kind, tenant)).encode()).hexdigest()


class LanceDriftBaselines:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._side = lancedb_connect.SideTable(uri, TABLE)
        self._lock = threading.Lock()

    def load(self, index: str, kind: str, tenant: str) -> Baseline | None:
        t = self._side.open()
        if t is None:
            return None
        where = one_of("key", [_key(index, kind, tenant)])
        rows = t.search().where(where).select(["size", "ref_sum"]).limit(1).to_arrow().to_pylist()
        return Baseline(list(rows[0]["ref_sum"]), int(rows[0]["size"])) if rows else None

    def save(self, index: str, kind: str, tenant: str, baseline: Baseline) -> None:
        row = {"key": _key(index, kind, tenant), "index": index, "kind": kind, "tenant": tenant,
               "size": baseline.size, "ref_sum": [float(x) for x in baseline.ref_sum]}
        with self._lock:
            t = self._side.open_or_create(SCHEMA)
            t.merge_insert("key").when_not_matched_insert_all().execute(pa.Table.from_pylist([row], schema=SCHEMA))
