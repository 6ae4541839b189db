"""Reading an index version: vector and BM25 searches restricted in the store, document rows, live versions.

Each search is restricted to a ``Scope`` (core/scope.py): the vector mirror answers a plain one (tenant + ACL) from
its row masks, LanceDB any other as the SQL prefilter ``lancedb_filters.render`` writes. A search that fails raises
``SearchFailed``; only a table with no FTS index yet answers BM25 with nothing.

BM25 scores are the querying tenant's own: from the vector mirror's postings with the tenant's statistics, or
LanceDB's candidates scored again with them (``_rescored``): LanceDB's index counts every tenant's rows, which would
let one tenant's documents change another's scores and ranking, and a tenant probe another's words (issue #34).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
from lancedb.query import MatchQuery, MultiMatchQuery

from streamrag.connectors.lancedb_filters import equals, one_of, render
from streamrag.connectors.lancedb_schema import PLACE_COLUMNS
from streamrag.connectors.lancedb_stats import TenantTextStats, analysed, column_postings
from streamrag.connectors.lancedb_tables import LanceTables
from streamrag.core.analysis import bm25_terms
from streamrag.core.bm25 import field_scores
from streamrag.core.errors import SearchFailed
from streamrag.core.ports import Hit
from streamrag.core.scope import Scope
from streamrag.core.security import doc_key

log = logging.getLogger(__name__)

# LanceDB's BM25 candidates scored again with the tenant's statistics: at least this many (the query path asks for
# STREAMRAG_MIN_CANDIDATES, 100, or more); every match in scope when there are fewer (docs/security.md)
RESCORE_POOL = 100


class LanceSearch(LanceTables):
    """The query path's reads (``IndexReader``)."""

    _COLS = ["id", "doc_key", "doc_id", "chunk_no", "version", "title", "text", "acl"]

    def _cols(self, t: Any) -> list[str]:
        """The columns a search returns: with page and section where the table has them (an older table gains
        them at its next write: looked for again every 30 s until then; columns are never removed)."""
        if not self._place_cols and time.monotonic() - self._place_checked_at > 30:
            names = set(t.schema.names)  # (the searches of a query run in parallel: set after it is known)
            self._place_cols = [c for c in PLACE_COLUMNS if c in names]
            self._place_checked_at = time.monotonic()
        return [*self._COLS, *self._place_cols]

    def _hits(self, rows: list[dict[str, Any]], score_of: Any) -> list[Hit]:
        return [
            Hit(
                r["id"], r["doc_key"], r["doc_id"], int(r["chunk_no"]), int(r["version"]),
                r["title"] or "", r["text"] or "", float(score_of(r)), tuple(r.get("acl") or ()),
                r.get("page"), r.get("section") or "",
            )
            for r in rows
        ]

    def vector_search(self, vector: Sequence[float], scope: Scope, limit: int, exact: bool = False) -> list[Hit]:
        """Nearest chunks within ``scope`` (prefiltered); ``exact`` bypasses the ANN index (ground truth)."""
        t = self.table(self.chunks_name)
        if t is None:
            return []
        if scope.plain and self.mirror.max_rows > 0:
            try:  # a small table without a vector index: exact search in memory (lancedb_vector_mirror.py)
                found = self.mirror.nearest(t, self._cols(t), vector, scope.tenant, scope.tokens, limit)
            except Exception as exc:  # LanceDB answers (it raises SearchFailed if it cannot either)
                log.warning("vector mirror: %s: %s; searching LanceDB", type(exc).__name__, exc)
                found = None
            if found is not None:
                return self._hits(found, lambda r: 1.0 - r["_distance"])
        pq = self.pq_probe.uses_pq(t)
        try:  # (a scope its renderer refuses fails as the search)
            q = (
                t.search(list(map(float, vector)), vector_column_name="vector")
                .distance_type("cosine")
                .nprobes(self.pq_probe.nprobes(self.nprobes))
                .where(render(scope), prefilter=True)
                .select([*self._cols(t), "_distance"])
                .limit(limit)
            )
            if self.refine_factor and pq:
                q = q.refine_factor(self.refine_factor)
            if exact:
                q = q.bypass_vector_index()
            rows = q.to_arrow().to_pylist()
        except Exception as exc:
            raise SearchFailed(f"vector search failed: {type(exc).__name__}: {exc}") from exc
        return self._hits(rows, lambda r: 1.0 - r["_distance"])

    def text_search(self, text: str, scope: Scope, limit: int, titles: bool = True) -> list[Hit]:
        """BM25 over chunk text and, once its index exists, the document title (``titles``)."""
        t = self.table(self.chunks_name)
        if t is None or not text.strip():
            return []
        if titles and not self._has_title_fts and time.monotonic() - self._title_checked_at > 30:
            self._title_checked_at = time.monotonic()  # an older index gains it at its next FTS build
            self._fts_built(t)
        col, title = self.fts_columns(t)
        if col != "text":  # analysed columns: the query analysed the same way (core/analysis.py)
            text = bm25_terms(text)
            if not text:
                return []
        fields = [(col, 1.0), (title, self.title_boost)] if titles and self._has_title_fts else [(col, 1.0)]
        found = self._mirror_text(t, text, fields, scope, limit) if col != "text" else None
        if found is not None:
            return self._hits(found, lambda r: r["_score"])
        query: Any = text
        if self._has_title_fts:  # two FTS indexes: say which columns (pydantic dataclasses: mypy sees no defaults)
            query = (MultiMatchQuery(text, [col, title], boosts=[1.0, self.title_boost])  # type: ignore[call-arg]
                     if titles else MatchQuery(text, col))  # type: ignore[call-arg]
        try:
            prefilter = render(scope)

            def search(n: int) -> Any:
                return t.search(query, query_type="fts").where(prefilter, prefilter=True).limit(n)

            return self._hits(self._rescored(t, search, text, fields, scope.tenant, limit), lambda r: r["_score"])
        except Exception as exc:
            if not self._has_text_fts(t):  # a new table before its first FTS build: nothing can match yet
                return []
            raise SearchFailed(f"BM25 search failed: {type(exc).__name__}: {exc}") from exc

    @cached_property
    def tenant_text(self) -> TenantTextStats:
        """BM25 statistics per tenant, for LanceDB's candidates (connectors/lancedb_stats.py)."""
        return TenantTextStats()

    def _rescored(self, t: Any, search: Any, terms: str, fields: list[tuple[str, float]], tenant: str,
                  limit: int) -> list[dict[str, Any]]:
        """LanceDB's BM25 candidates (``limit``, at least ``RESCORE_POOL``; every match in scope when fewer) scored again with the
        statistics of the tenant's rows, where LanceDB's index counts every tenant's (issue #34): the scores and
        their order are the tenant's own, equal to LanceDB's with one tenant (docs/security.md)."""
        names = [f for f, _ in fields]
        cols = self._cols(t)
        found = search(max(limit, RESCORE_POOL)).select([*cols, *(f for f in names if f not in cols), "_score"]).to_arrow()
        st = self.tenant_text
        postings = {f: column_postings(analysed(found.column(f), f), st.analyzer, st.vocab) for f in names}
        if names[0] == "text":  # a table without the analysed columns: the query analysed as they are here
            terms = bm25_terms(terms)
        query = st.vocab.find(st.analyzer.terms(terms))
        stats = st.of(t, tenant, names, query) if query else {}
        best: np.ndarray | None = None
        for f, boost in fields:
            s = field_scores(postings[f], stats[f], query) if query else None
            if s is not None:
                best = s * boost if best is None else np.maximum(best, s * boost)
        if best is None:
            return []
        ids = found.column("id").to_pylist()  # ties by chunk id (not LanceDB's order: its statistics decide that)
        order = sorted((i for i in range(len(ids)) if best[i] > 0), key=lambda i: (-best[i], ids[i]))[:limit]
        rows = found.select(cols).take(order).to_pylist()
        return [{**r, "_score": float(best[i])} for r, i in zip(rows, order, strict=True)]

    def _mirror_text(self, t: Any, terms: str, fields: list[tuple[str, float]], scope: Scope,
                     limit: int) -> list[dict[str, Any]] | None:
        """BM25 from the mirror's postings (lancedb_vector_mirror.py), scored as LanceDB's index would score them,
        for a plain tenant + ACL scope once the text index exists (before it LanceDB finds nothing); None: LanceDB."""
        if not (scope.plain and self.mirror.max_rows > 0 and self._has_text_fts(t)):
            return None
        try:
            return self.mirror.best_text(t, self._cols(t), terms, fields, scope.tenant, scope.tokens, limit)
        except Exception as exc:  # LanceDB answers (it raises SearchFailed if it cannot either)
            log.warning("vector mirror: %s: %s; BM25 in LanceDB", type(exc).__name__, exc)
            return None

    def _has_text_fts(self, t: Any) -> bool:
        if self._has_fts_index:
            return True
        col = self.fts_columns(t)[0]
        return any(getattr(i, "index_type", "") == "FTS" and col in getattr(i, "columns", [])
                   for i in t.list_indices())

    def sample_texts(self, tenant: str, limit: int) -> list[str]:
        """Up to ``limit`` of the tenant's chunk texts (self-retrieval evidence for fusion: core/evidence.py)."""
        t = self.table(self.chunks_name)
        if t is None:
            return []
        rows = t.search().where(equals("tenant", tenant)).select(["text"]).limit(limit).to_arrow()
        return [x or "" for x in rows.column("text").to_pylist()]

    def docs(self, doc_keys: Iterable[str], versions: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]]:
        """Document rows (title, version, metadata) for the enrichment stage. A row of the version wanted
        comes from memory once read (a version's row never changes): most answers cite documents cited before."""
        keys = sorted(set(doc_keys))
        out: dict[str, dict[str, Any]] = {}
        if versions:
            with self._doc_rows_lock:
                for k in keys:
                    r = self._doc_rows_seen.get((k, versions[k])) if k in versions else None
                    if r is not None:
                        out[k] = r
        missing = [k for k in keys if k not in out]
        t = self.table(self.docs_name) if missing else None
        if t is None:
            return out
        if versions and not self._doc_rows_loaded:
            self._load_doc_rows(t)
            return self.docs(keys, versions)
        rows = t.search().where(one_of("doc_key", missing)).limit(len(missing) + 1).to_arrow().to_pylist()
        with self._doc_rows_lock:
            for r in rows:
                out[r["doc_key"]] = r
                self._doc_rows_seen[(r["doc_key"], int(r["version"]))] = r
        return out

    def _load_doc_rows(self, t: Any) -> None:
        """Once: a docs table that fits in that memory read whole into it (one scan instead of a lookup per
        answer that cites a document not cited before; later versions are looked up as they are cited)."""
        self._doc_rows_loaded = True
        try:
            if t.count_rows() > self._doc_rows_seen.maxsize:
                return
            rows = t.search().limit(None).to_arrow().to_pylist()
        except Exception as exc:  # only a shortcut: documents are looked up as they are cited
            log.warning("reading the document rows whole failed: %s: %s", type(exc).__name__, exc)
            return
        with self._doc_rows_lock:
            for r in rows:
                self._doc_rows_seen[(r["doc_key"], int(r["version"]))] = r

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

