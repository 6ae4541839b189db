"""Keeping an index version's indexes: scalar indexes for the prefilters, FTS, the ANN index past a size, and
``optimize()`` on a schedule. One maintainer per index (concurrent ``optimize()`` calls conflict)."""

from __future__ import annotations

import logging
import time
import warnings
from datetime import timedelta
from typing import Any

from streamrag.connectors.lancedb_ann import build_ann
from streamrag.connectors.lancedb_schema import CHUNKS, DOCS
from streamrag.connectors.lancedb_tables import LanceTables

log = logging.getLogger(__name__)


# LanceDB's FTS index over the analysed columns (``terms``, ``title_terms``)
FTS_OPTIONS: dict[str, Any] = {"replace": True, "with_position": False, "stem": True, "remove_stop_words": True,
                               "base_tokenizer": "whitespace"}


class LanceMaintenance(LanceTables):
    """Index upkeep (``streamrag worker maintain`` or the ingest worker's maintenance thread)."""

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

    def build_fts(self) -> None:
        t = self.table(self.chunks_name)
        if t is None:
            return
        text, title = self.fts_columns(t)
        opts: dict[str, Any] = {"replace": True, "with_position": False, "stem": True, "remove_stop_words": True}
        if text != "text":  # analysed columns (core/analysis.py): terms separated by spaces, English stemmed
            opts = FTS_OPTIONS  # (the vector mirror's BM25 in memory scores as this index: core/bm25.py)
        t.create_fts_index(text, **opts)
        t.create_fts_index(title, **opts)  # BM25 over the document title too (every chunk row carries it)
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

