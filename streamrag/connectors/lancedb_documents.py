"""One document as the active index holds it (the gateway's ``GET /v1/documents/{doc_id}``): its state row and
its chunks, read from the LanceDB tables of the index version the registry names active."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streamrag.connectors.lancedb_errors import lance_errors
from streamrag.connectors.lancedb_filters import equals
from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_schema import CHUNKS, DOCS
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.security import doc_key

SNIPPET_CHARS = 300


def _iso(ms: int | None) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if ms else None


class DocumentReader:
    """Reads the active index version's rows of one document (a store per version, opened when first named)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.registry = LanceIndexRegistry(uri)
        self._tables: dict[str, LanceStore] = {}

    def _active(self) -> tuple[str, LanceStore]:
        name = self.registry.active()
        t = self._tables.get(name)
        if t is None:
            m = self.registry.manifests().get(name)
            t = self._tables[name] = LanceStore(self.uri, chunks_table=m.chunks_table if m else CHUNKS,
                                                 docs_table=m.docs_table if m else DOCS)
        return name, t

    def reachable(self) -> bool:
        """The store opens and names its active index (readiness)."""
        self._active()
        return True

    def document(self, tenant: str, doc_id: str) -> dict[str, Any] | None:
        """State, version and chunks of ``doc_id``, or None when the index has never seen it."""
        index, t = self._active()
        key = doc_key(tenant, doc_id)
        states = t.doc_states([key])
        st = states.get(key)
        if st is None:
            return None
        row = t.docs([key]).get(key, {})
        chunks: list[dict[str, Any]] = []
        table = t.table(t.chunks_name)
        if table is not None and not st.deleted:
            with lance_errors("reading chunk rows"):
                found = (table.search().where(equals("doc_key", key)).select(["id", "chunk_no", "version", "text"])
                         .limit(None).to_arrow().to_pylist())
            chunks = [{"chunk_id": r["id"], "chunk_no": int(r["chunk_no"]), "version": int(r["version"]),
                       "snippet": (r["text"] or "")[:SNIPPET_CHARS]} for r in sorted(found, key=lambda r: r["chunk_no"])]
        return {
            "tenant": tenant, "doc_id": doc_id, "index": index, "version": st.version,
            "state": "deleted" if st.deleted else "indexed", "title": row.get("title") or "",
            "content_hash": st.content_hash, "chunk_count": len(chunks),
            "indexed_at": _iso(row.get("indexed_ms")), "updated_at": _iso(row.get("updated_ms")), "chunks": chunks,
        }
