"""The LanceDB store: chunk rows (vectors, text, ACL tokens) and one state row per document.

Writes are batched: one ``merge_insert`` per batch upserts the chunks by id (an index join whose
cost does not grow with the table), a delete removes what a shrunk or deleted document left behind,
then the document table records versions and tombstones so that an older version arriving later is
ignored.
Filters are built only from validated tenants and generated hex tokens (see security.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from streamrag.connectors.lancedb_errors import lance_errors
from streamrag.connectors.lancedb_filters import one_of
from streamrag.connectors.lancedb_maintenance import LanceMaintenance
from streamrag.connectors.lancedb_schema import ANALYSIS_COLUMNS, DOC_SCHEMA, PLACE_FIELDS, chunk_schema
from streamrag.connectors.lancedb_search import LanceSearch
from streamrag.connectors.lancedb_writes import fold_into_indexes, stale_chunk_filter
from streamrag.core.analysis import bm25_terms
from streamrag.core.ports import DocWrite, StoredChunk

log = logging.getLogger(__name__)


class LanceStore(LanceSearch, LanceMaintenance):
    """One index version: its writes here (``IndexWriter``), its reads (``LanceSearch``) and its upkeep
    (``LanceMaintenance``) in classes of their own over the one connection (``LanceTables``)."""

    # -- writes -----------------------------------------------------------------------------
    def apply(self, writes: Sequence[DocWrite], dim: int) -> None:
        """Apply a batch of document writes: chunks upserted by id, then the doc rows.

        The upsert is one commit joined on the chunk-id index, so its cost does not grow with the
        table. Rows a write leaves behind (a deleted document's chunks, the tail of a document that
        shrank, known from its doc row's chunk count) go in one delete commit after it, only in the
        batches that have any: between the two commits a shrinking document shows its old tail
        for a moment. The doc rows come last, so a crash before them replays the whole batch.
        """
        if not writes:
            return
        keys = [w.doc_key for w in writes]
        if len(set(keys)) != len(keys):
            raise ValueError("a batch must hold each document once")
        rows = [r for w in writes for r in w.chunk_rows]
        with self._lock, lance_errors("index write"):
            chunks = self._ensure(self.chunks_name, chunk_schema(dim))
            schema = self._with_place_columns(chunks, dim)
            if all(w.prior_chunks is not None for w in writes):  # read with the stale check: no second read
                before = {w.doc_key: w.prior_chunks or 0 for w in writes}
            else:
                before = {r["doc_key"]: int(r["chunk_count"]) for r in self._doc_rows(keys, ["doc_key", "chunk_count"])}
            stale = stale_chunk_filter(writes, before)
            if rows:
                if "terms" in schema.names:  # a writer that did not analyse its rows (tools, benchmarks)
                    rows = [r if "terms" in r else {**r, "terms": bm25_terms(r.get("text") or ""),
                                                    "title_terms": bm25_terms(r.get("title") or "")} for r in rows]
                data = pa.Table.from_pylist(rows, schema=schema)
                chunks.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
            if stale:
                chunks.delete(stale)
            docs = self._ensure(self.docs_name, DOC_SCHEMA)
            doc_data = pa.Table.from_pylist([w.doc_row for w in writes], schema=DOC_SCHEMA)
            docs.merge_insert("doc_key").when_matched_update_all().when_not_matched_insert_all().execute(doc_data)
            self._unfolded += len(rows) + len(writes)
            if self.fold_every_rows and self._unfolded >= self.fold_every_rows and self._scalar_built:
                self._fold()

    def _with_place_columns(self, chunks: Any, dim: int) -> pa.Schema:
        """The schema rows are written with: the chunk schema, once a table made before the page and section
        columns has gained them (all null; one small commit). Should that fail, rows go without them."""
        have = set(chunks.schema.names)
        fields = list(chunk_schema(dim))
        if not set(ANALYSIS_COLUMNS) <= have:  # a table made before them: its rows go without the BM25 terms
            fields = [f for f in fields if f.name not in ANALYSIS_COLUMNS]
        missing = [f for f in PLACE_FIELDS if f.name not in have]
        if missing:
            try:
                chunks.add_columns(missing)
                log.warning("chunks table %s: added columns %s", self.chunks_name, ", ".join(f.name for f in missing))
            except Exception as exc:  # written without them: pages and sections are not stored
                log.warning("chunks table %s: could not add %s (%s); rows are written without them",
                            self.chunks_name, ", ".join(f.name for f in missing), str(exc).splitlines()[0][:200])
                return pa.schema([f for f in fields if f.name in have])
        return pa.schema(fields)

    def _fold(self) -> None:
        """New rows into the id / doc_key indexes (a failure only defers it: counted and logged)."""
        try:
            for name in (self.chunks_name, self.docs_name):
                t = self.table(name)
                if t is not None:
                    fold_into_indexes(t, ("id", "doc_key"), self._folds + 1)
            self._unfolded = 0
            self._folds += 1
        except Exception as exc:  # a commit conflict with another writer's optimize: the next batch tries again
            self.maintenance_failures += 1
            log.warning("index fold deferred: %s", str(exc).splitlines()[0][:200])

    def doc_versions(self) -> dict[str, tuple[int, bool]]:
        """Every document's (version, deleted): blue and green compared before a promote."""
        t = self.table(self.docs_name)
        if t is None:
            return {}
        tbl = t.search().select(["doc_key", "version", "deleted"]).limit(None).to_arrow()
        return {k: (int(v), bool(d)) for k, v, d in zip(
            tbl.column("doc_key").to_pylist(), tbl.column("version").to_pylist(), tbl.column("deleted").to_pylist(),
            strict=True,
        )}

    def stored_vectors(self, doc_keys: Sequence[str]) -> dict[str, StoredChunk]:
        """The stored chunks of these documents by chunk id: unchanged chunks skip the encoder."""
        t = self.table(self.chunks_name)
        wanted = sorted(set(doc_keys))
        if t is None or not wanted:
            return {}
        out: dict[str, StoredChunk] = {}
        for i in range(0, len(wanted), 200):
            part = wanted[i : i + 200]
            rows = (
                t.search().where(one_of("doc_key", part))
                .select(["id", "title", "text", "chunk_no", "vector"]).limit(None).to_arrow().to_pylist()
            )
            for r in rows:
                out[r["id"]] = StoredChunk(r["title"] or "", r["text"] or "", int(r["chunk_no"]), r["vector"])
        return out

