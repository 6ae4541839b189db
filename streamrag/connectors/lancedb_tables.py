"""The LanceDB tables of one index version (chunk rows, one state row per document) and the connection the
store's roles share: ``LanceSearch`` reads, ``LanceMaintenance`` keeps the indexes, ``LanceStore`` writes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pyarrow as pa
from cachetools import LRUCache

from streamrag.connectors import lancedb_connect
from streamrag.connectors.lancedb_ann import PqProbe
from streamrag.connectors.lancedb_errors import lance_errors
from streamrag.connectors.lancedb_filters import equals, one_of
from streamrag.connectors.lancedb_schema import ANALYSIS_COLUMNS, CHUNKS, DOCS, chunk_schema
from streamrag.connectors.lancedb_stats import index_stats
from streamrag.connectors.lancedb_vector_mirror import VectorMirror
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.ports import DocState


class LanceTables:
    """Embedded LanceDB (a folder, ``memory://``, or an object-store URI): the connection and the tables."""

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
        mirror_max_rows: int = 0,
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
        self._fts_cols: tuple[str, str] | None = None  # the columns BM25 indexes (fts_columns)
        self._title_checked_at = -1e9
        self._place_cols: list[str] = []  # page / section, once the chunks table has them
        self._place_checked_at = -1e9
        self._scalar_built = False
        self.nprobes = nprobes
        self.title_boost = 1.0
        self.refine_factor = refine_factor  # > 0: PQ candidates re-ranked by exact distance
        self.maintenance_failures = 0
        self.fold_every_rows = fold_every_rows  # rows written between folds into the join-key indexes
        self._unfolded = 0
        self._folds = 0
        # (doc_key, version) -> its document row, for enrichment (a version's row never changes)
        self._doc_rows_seen: LRUCache[tuple[str, int], dict[str, Any]] = LRUCache(10_000)
        self._doc_rows_lock = threading.Lock()
        self._doc_rows_loaded = False  # a small docs table is read whole into it at the first enrichment
        # the chunks table in memory for exact vector searches while it is small and has no vector index (0: off)
        self.mirror = VectorMirror(mirror_max_rows)

    # -- connection -------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        if self._db is None:
            try:
                interval = None if self.read_consistency_s is None else timedelta(seconds=self.read_consistency_s)
                self._db = lancedb_connect.connect(self.uri, read_consistency_interval=interval)
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
                rows = t.search().where(one_of("doc_key", part)).select(cols).limit(len(part) + 1) \
                    .to_arrow().to_pylist()
            yield from rows

    def doc_states(self, doc_keys: Iterable[str]) -> dict[str, DocState]:
        return {
            r["doc_key"]: DocState(r["doc_key"], int(r["version"]), bool(r["deleted"]), r["content_hash"],
                                   int(r["chunk_count"] or 0))
            for r in self._doc_rows(doc_keys, ["doc_key", "version", "deleted", "content_hash", "chunk_count"])
        }

    def fts_columns(self, t: Any) -> tuple[str, str]:
        """The columns BM25 indexes, text and title: their analysed forms where the table has them (any script),
        else the raw ones (a table made before them: English analysis, words split at spaces and punctuation).
        Known once per table: a table has them from its creation or never."""
        if self._fts_cols is None:
            self._fts_cols = ("terms", "title_terms") if set(ANALYSIS_COLUMNS) <= set(t.schema.names) else ("text", "title")
        return self._fts_cols

    def _fts_built(self, t: Any) -> bool:
        """Both FTS indexes (chunk text, and document title: see ``fts_columns``) exist."""
        if self._has_fts_index:
            return True
        try:
            names = {c for i in t.list_indices() if getattr(i, "index_type", "") == "FTS" for c in getattr(i, "columns", [])}
        except Exception:
            return False
        text, title = self.fts_columns(t)
        self._has_fts_index = {text, title} <= names
        self._has_title_fts = title in names
        return self._has_fts_index

    def drop(self) -> None:
        """Remove this index's tables (the registry refuses to drop the active index)."""
        with self._lock:
            for name in (self.chunks_name, self.docs_name):
                if name in self._table_names():
                    self.db.drop_table(name)
                self._tables.pop(name, None)
            self._fts_cols = None
            self.mirror = VectorMirror(self.mirror.max_rows)  # a table made again under the name restarts its versions

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
            q = q.where(equals("tenant", tenant))
        have = set(t.schema.names)  # a table made before a column was added to the schema lacks it
        cols = [c for c in chunk_schema(1).names if c != "vector" and c in have]
        return list(q.select(cols).limit(None).to_arrow().to_pylist())

