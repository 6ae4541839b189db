"""The LanceDB store: chunk rows (vectors, text, ACL tokens) and one state row per document.

Writes are batched: one ``merge_insert`` per batch upserts the chunks by id (an index join whose
cost does not grow with the table), a delete removes what a shrunk or deleted document left behind,
then the document table records versions and tombstones so that an older version arriving later is
ignored.
Filters are built only from validated tenants and generated hex tokens (see security.py).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.query import MatchQuery, MultiMatchQuery

from streamrag.connectors.lancedb_ann import PqProbe, build_ann
from streamrag.connectors.lancedb_errors import lance_errors
from streamrag.connectors.lancedb_schema import CHUNKS, DOC_SCHEMA, DOCS, chunk_schema
from streamrag.connectors.lancedb_stats import index_stats
from streamrag.connectors.lancedb_writes import fold_into_indexes, stale_chunk_filter
from streamrag.core.errors import SearchFailed, ServiceUnavailable
from streamrag.core.ports import DocState, DocWrite, Hit, StoredChunk
from streamrag.core.security import doc_key, in_list_literal, tenant_literal

log = logging.getLogger(__name__)

class LanceStore:
    """Embedded LanceDB (a folder, ``memory://``, or an object-store URI)."""

    def __init__(
        self,
        uri: str,
        *,
        ann_index_min_rows: int = 100_000,
        fts_rebuild_every_s: float = 0.0,
        optimize_every_s: float = 120.0,
        read_consistency_s: float | None = 0.0,
        nprobes: int = 32,
        chunks_table: str = CHUNKS,
        docs_table: str = DOCS,
        pq_min_rows: int = 500_000,
        refine_factor: int = 10,
        fold_every_rows: int = 10_000,
    ) -> None:
        self.pq_min_rows = pq_min_rows
        self.pq_probe = PqProbe()
        self.chunks_name = chunks_table
        self.docs_name = docs_table
        self.read_consistency_s = read_consistency_s
        self.uri = uri
        self.ann_index_min_rows = ann_index_min_rows
        self.fts_rebuild_every_s = fts_rebuild_every_s
        self.optimize_every_s = optimize_every_s
        self._db: Any = None
        self._tables: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._last_fts = 0.0
        self._last_optimize = time.monotonic()
        self._fts_version = -1  # chunks table version the FTS index was last built at
        self._has_fts_index = False
        self._has_title_fts = False
        self._title_checked_at = -1e9
        self._scalar_built = False
        self.nprobes = nprobes
        self.title_boost = 1.0
        self.refine_factor = refine_factor  # > 0: PQ candidates re-ranked by exact distance
        self.maintenance_failures = 0
        self.fold_every_rows = fold_every_rows  # rows written between folds into the join-key indexes
        self._unfolded = 0
        self._folds = 0

    # -- connection -------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        if self._db is None:
            try:
                interval = None if self.read_consistency_s is None else timedelta(seconds=self.read_consistency_s)
                self._db = lancedb.connect(self.uri, read_consistency_interval=interval)
            except Exception as exc:
                raise ServiceUnavailable(f"LanceDB at {self.uri!r} could not be opened: {exc}") from exc
        return self._db

    def _table_names(self) -> list[str]:
        res = self.db.list_tables() if hasattr(self.db, "list_tables") else self.db.table_names()
        names = getattr(res, "tables", res)
        return list(names)

    def table(self, name: str) -> Any | None:
        with self._lock:
            t = self._tables.get(name)
            if t is None and name in self._table_names():
                try:
                    t = self.db.open_table(name)
                except (ValueError, FileNotFoundError):
                    return None  # being created by another process right now
                self._tables[name] = t
            return t

    def _ensure(self, name: str, schema: pa.Schema) -> Any:
        with self._lock:
            t = self.table(name)
            if t is None:
                t = self.db.create_table(name, schema=schema, exist_ok=True)
                self._tables[name] = t
            return t

    # -- document state ---------------------------------------------------------------------
    def _doc_rows(self, doc_keys: Iterable[str], cols: list[str]) -> Iterator[dict[str, Any]]:
        """Columns of the documents' rows, looked up by the doc_key index 500 keys at a time."""
        keys = sorted(set(doc_keys))
        t = self.table(self.docs_name)
        if t is None:
            return
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            with lance_errors("reading document rows"):
                rows = t.search().where(f"doc_key IN {in_list_literal(part)}").select(cols).limit(len(part) + 1) \
                    .to_arrow().to_pylist()
            yield from rows

    def doc_states(self, doc_keys: Iterable[str]) -> dict[str, DocState]:
        return {
            r["doc_key"]: DocState(r["doc_key"], int(r["version"]), bool(r["deleted"]), r["content_hash"],
                                   int(r["chunk_count"] or 0))
            for r in self._doc_rows(doc_keys, ["doc_key", "version", "deleted", "content_hash", "chunk_count"])
        }

    def live_versions(self, tenant: str, doc_ids: Iterable[str]) -> dict[str, int]:
        """doc_id -> live version, for those of ``doc_ids`` that exist and are not deleted."""
        keys = {doc_key(tenant, d): d for d in set(doc_ids)}
        return {keys[k]: st.version for k, st in self.doc_states(keys).items() if not st.deleted}

    def cites_current(self, tenant: str, cites: Sequence[tuple[str, int]]) -> bool:
        """True when every cited (doc_id, version) is still the document's live version."""
        if not cites:
            return True
        live = self.live_versions(tenant, (d for d, _ in cites))
        return all(live.get(d) == v for d, v in cites)

    def docs(self, doc_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Document rows (title, version, metadata) for the enrichment stage."""
        keys = sorted(set(doc_keys))
        t = self.table(self.docs_name)
        if t is None or not keys:
            return {}
        rows = t.search().where(f"doc_key IN {in_list_literal(keys)}").limit(len(keys) + 1).to_arrow().to_pylist()
        return {r["doc_key"]: r for r in rows}

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
                t.search().where(f"doc_key IN {in_list_literal(part)}")
                .select(["id", "title", "text", "chunk_no", "vector"]).limit(None).to_arrow().to_pylist()
            )
            for r in rows:
                out[r["id"]] = StoredChunk(r["title"] or "", r["text"] or "", int(r["chunk_no"]), r["vector"])
        return out

    def drop(self) -> None:
        """Remove this index's tables (the registry refuses to drop the active index)."""
        with self._lock:
            for name in (self.chunks_name, self.docs_name):
                if name in self._table_names():
                    self.db.drop_table(name)
                self._tables.pop(name, None)

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
            if all(w.prior_chunks is not None for w in writes):  # read with the stale check: no second read
                before = {w.doc_key: w.prior_chunks or 0 for w in writes}
            else:
                before = {r["doc_key"]: int(r["chunk_count"]) for r in self._doc_rows(keys, ["doc_key", "chunk_count"])}
            stale = stale_chunk_filter(writes, before)
            if rows:
                data = pa.Table.from_pylist(rows, schema=chunk_schema(dim))
                chunks.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data)
            if stale:
                chunks.delete(stale)
            docs = self._ensure(self.docs_name, DOC_SCHEMA)
            doc_data = pa.Table.from_pylist([w.doc_row for w in writes], schema=DOC_SCHEMA)
            docs.merge_insert("doc_key").when_matched_update_all().when_not_matched_insert_all().execute(doc_data)
            self._unfolded += len(rows) + len(writes)
            if self.fold_every_rows and self._unfolded >= self.fold_every_rows and self._scalar_built:
                self._fold()

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

    # -- indexes and housekeeping -----------------------------------------------------------
    def maintain(self, force: bool = False) -> None:
        """Keep the FTS index fresh, build the ANN index past a size, optimize on a schedule.

        Never raises: another process may be doing the same (a commit conflict); the next
        call tries again. Rows not yet in an index are still searched (flat).
        """
        try:
            self._maintain(force)
        except Exception as exc:  # retried on the next call; counted for status and metrics
            self.maintenance_failures += 1
            log.warning("index maintenance deferred: %s", str(exc).splitlines()[0][:200])

    def _maintain(self, force: bool) -> None:
        t = self.table(self.chunks_name)
        if t is None:
            return
        now = time.monotonic()
        with self._lock:
            # Build the FTS index once; after that optimize() folds new rows into it, and rows not
            # yet indexed are searched flat, so they are found immediately.
            if not self._scalar_built:
                self.build_scalar_indexes()
            if force or not self._fts_built(t) or (
                self.fts_rebuild_every_s > 0 and t.version != self._fts_version and now - self._last_fts >= self.fts_rebuild_every_s
            ):
                self.build_fts()
            if force or now - self._last_optimize >= self.optimize_every_s:
                self.optimize()

    SCALAR = {CHUNKS: {"tenant": "BITMAP", "acl": "LABEL_LIST", "meta": "LABEL_LIST", "doc_key": "BTREE", "id": "BTREE"},
              DOCS: {"doc_key": "BTREE", "tenant": "BITMAP"}}

    def _named(self, kind: str) -> str:
        return self.chunks_name if kind == CHUNKS else self.docs_name

    def build_scalar_indexes(self) -> None:
        """Indexes for the prefilters (tenant, ACL tokens, metadata tokens) and doc-key lookups."""
        for kind, cols in self.SCALAR.items():
            t = self.table(self._named(kind))
            if t is None:
                return
            have = {c for i in t.list_indices() for c in getattr(i, "columns", [])}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for col, kind in cols.items():
                    if col not in have:
                        t.create_scalar_index(col, index_type=kind, replace=True)
        self._scalar_built = True

    def _fts_built(self, t: Any) -> bool:
        """Both FTS indexes (chunk text, and document title) exist."""
        if self._has_fts_index:
            return True
        try:
            names = {c for i in t.list_indices() if getattr(i, "index_type", "") == "FTS" for c in getattr(i, "columns", [])}
        except Exception:
            return False
        self._has_fts_index = {"text", "title"} <= names
        self._has_title_fts = "title" in names
        return self._has_fts_index

    def build_fts(self) -> None:
        t = self.table(self.chunks_name)
        if t is None:
            return
        opts = {"replace": True, "with_position": False, "stem": True, "remove_stop_words": True}
        t.create_fts_index("text", **opts)
        t.create_fts_index("title", **opts)  # BM25 over the document title too (every chunk row carries it)
        self._has_fts_index = self._has_title_fts = True
        self._last_fts = time.monotonic()
        self._fts_version = t.version

    def optimize(self) -> None:
        """Compact fragments, fold new rows into indexes, drop old versions; build ANN past a size."""
        t = self.table(self.chunks_name)
        if t is None:
            return
        n = t.count_rows()
        has_vec_index = any(getattr(i, "index_type", "").startswith("IVF") for i in t.list_indices())
        if n >= self.ann_index_min_rows and not has_vec_index:
            build_ann(t, n, self.pq_min_rows)
        for name in (self.chunks_name, self.docs_name):
            tb = self.table(name)
            if tb is not None:
                tb.optimize(cleanup_older_than=timedelta(minutes=10))
        self._last_optimize = time.monotonic()

    # -- reads ------------------------------------------------------------------------------
    _COLS = ["id", "doc_key", "doc_id", "chunk_no", "version", "title", "text", "acl"]

    def _hits(self, rows: list[dict[str, Any]], score_of: Any) -> list[Hit]:
        return [
            Hit(
                r["id"], r["doc_key"], r["doc_id"], int(r["chunk_no"]), int(r["version"]),
                r["title"] or "", r["text"] or "", float(score_of(r)), tuple(r.get("acl") or ()),
            )
            for r in rows
        ]

    def vector_search(self, vector: Sequence[float], where: str, limit: int, exact: bool = False) -> list[Hit]:
        """Nearest chunks within ``where`` (prefiltered); ``exact`` bypasses the ANN index (ground truth)."""
        t = self.table(self.chunks_name)
        if t is None:
            return []
        pq = self.pq_probe.uses_pq(t)
        q = (
            t.search(list(map(float, vector)), vector_column_name="vector")
            .distance_type("cosine")
            .nprobes(self.pq_probe.nprobes(self.nprobes))
            .where(where, prefilter=True)
            .select([*self._COLS, "_distance"])
            .limit(limit)
        )
        if self.refine_factor and pq:
            q = q.refine_factor(self.refine_factor)
        if exact:
            q = q.bypass_vector_index()
        try:
            rows = q.to_arrow().to_pylist()
        except Exception as exc:
            raise SearchFailed(f"vector search failed: {type(exc).__name__}: {exc}") from exc
        return self._hits(rows, lambda r: 1.0 - r["_distance"])

    def text_search(self, text: str, where: str, limit: int, titles: bool = True) -> list[Hit]:
        """BM25 over chunk text and, once its index exists, the document title (``titles``)."""
        t = self.table(self.chunks_name)
        if t is None or not text.strip():
            return []
        if titles and not self._has_title_fts and time.monotonic() - self._title_checked_at > 30:
            self._title_checked_at = time.monotonic()  # an older index gains it at its next FTS build
            self._fts_built(t)
        query: Any = text
        if self._has_title_fts:  # two FTS indexes: say which columns (pydantic dataclasses: mypy sees no defaults)
            query = (MultiMatchQuery(text, ["text", "title"], boosts=[1.0, self.title_boost])  # type: ignore[call-arg]
                     if titles else MatchQuery(text, "text"))  # type: ignore[call-arg]
        try:
            q = t.search(query, query_type="fts").where(where, prefilter=True).select([*self._COLS, "_score"]).limit(limit)
            rows = q.to_arrow().to_pylist()
        except Exception as exc:
            if not self._has_text_fts(t):  # a new table before its first FTS build: nothing can match yet
                return []
            raise SearchFailed(f"BM25 search failed: {type(exc).__name__}: {exc}") from exc
        return self._hits(rows, lambda r: r["_score"])

    def _has_text_fts(self, t: Any) -> bool:
        if self._has_fts_index:
            return True
        return any(getattr(i, "index_type", "") == "FTS" and "text" in getattr(i, "columns", [])
                   for i in t.list_indices())

    # -- status -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Table versions and documents / chunks per tenant (status, /metrics)."""
        return index_stats(self.uri, {n: self.table(n) for n in (self.chunks_name, self.docs_name)},
                           self.table(self.docs_name), self.table(self.chunks_name))

    def chunk_rows(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """All chunk rows without vectors (tests and tooling)."""
        t = self.table(self.chunks_name)
        if t is None:
            return []
        q = t.search()
        if tenant is not None:
            q = q.where(f"tenant = {tenant_literal(tenant)}")
        cols = [c for c in chunk_schema(1).names if c != "vector"]
        return list(q.select(cols).limit(None).to_arrow().to_pylist())

