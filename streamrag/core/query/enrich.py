"""Second stage of an answer: document rows (title, metadata, updated_at) for the cited documents only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from streamrag.core.ports import IndexReader
from streamrag.core.security import doc_key
from streamrag.schemas.models import Citation


def enrich(store: IndexReader, tenant: str, cites: list[Citation]) -> list[Citation]:
    keys = {c.doc_id: doc_key(tenant, c.doc_id) for c in cites}
    rows = store.docs(keys.values(), versions={keys[c.doc_id]: c.version for c in cites})
    out = []
    for c in cites:
        r = rows.get(keys[c.doc_id])
        if r is None:
            out.append(c)
            continue
        upd = datetime.fromtimestamp(r["updated_ms"] / 1000, UTC) if r.get("updated_ms") else None
        out.append(c.model_copy(update={
            "title": r.get("title") or c.title, "metadata": json.loads(r.get("metadata_json") or "{}"),
            "updated_at": upd,
        }))
    return out
