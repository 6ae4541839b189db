"""Index statistics for ``streamrag status`` and the per-tenant size gauges."""

from __future__ import annotations

from collections import Counter
from typing import Any


def index_stats(uri: str, tables: dict[str, Any | None], docs: Any | None, chunks: Any | None) -> dict[str, Any]:
    """Each table's version, and live documents and chunks per tenant."""
    out: dict[str, Any] = {"uri": uri, "tenants": {}, "versions": {n: t.version for n, t in tables.items() if t is not None}}
    tenants: dict[str, dict[str, int]] = {}
    if docs is not None:
        tbl = docs.search().where("deleted = false").select(["tenant"]).limit(None).to_arrow()
        for tenant, n in Counter(tbl.column("tenant").to_pylist()).items():
            tenants.setdefault(tenant, {"documents": 0, "chunks": 0})["documents"] = n
    if chunks is not None:
        tbl = chunks.search().select(["tenant"]).limit(None).to_arrow()
        for tenant, n in Counter(tbl.column("tenant").to_pylist()).items():
            tenants.setdefault(tenant, {"documents": 0, "chunks": 0})["chunks"] = n
    out["tenants"] = tenants
    return out
