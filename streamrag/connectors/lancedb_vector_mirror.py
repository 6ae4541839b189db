"""The chunks table of a small index in the query process's memory, for the exact vector search and BM25.

Below ``STREAMRAG_ANN_INDEX_MIN_ROWS`` LanceDB searches vectors exhaustively: on 12k chunks that is 25-35 ms
of CPU per query (it reads and decodes the vector column each time), where a product with the same vectors
in memory takes 2-4 ms, the hits' rows included. The mirror answers the searches that LanceDB would answer exhaustively (no
vector index on the table, at most ``max_rows`` rows), restricted to a tenant and the principal's ACL tokens
exactly as the prefilter ``tenant = … AND array_has_any(acl, […])`` restricts them; anything else (metadata
or date filters, a table with an ANN index, a larger table) stays with LanceDB.

BM25 over the analysed columns (``terms``, ``title_terms``) is answered from postings built as fragments are read,
scored as LanceDB's FTS index scores them but with the statistics of the querying tenant's live rows only (N,
avgdl, document frequencies, computed per query from the postings and the tenant's row mask: core/bm25.py, issue
#34): LanceDB's search over both indexes cost 9-13 ms of CPU per query on 12k chunks, most of it in applying the
tenant + ACL prefilter, where the postings take well under 1 ms.

It follows the table's versions fragment by fragment: a new fragment (a write, a compaction) is read once,
a fragment that gained deletions has its live row addresses read again (a small read), a fragment gone is
dropped. Each search first asks the table for its latest version (the store's read consistency), so a
changed document is found as soon as LanceDB would find it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from streamrag.connectors.lancedb_schema import ANALYSIS_COLUMNS
from streamrag.connectors.lancedb_stats import column_postings
from streamrag.core.bm25 import FieldPostings, TermAnalyzer, TermStats, Vocabulary, field_scores
from streamrag.core.evidence import lower_thread_priority

log = logging.getLogger(__name__)

# a fragment of more rows has its BM25 postings built beside the searches (LanceDB answers BM25 until then): a
# query worker's first read of 12k chunks would otherwise wait ~0.5 s more for its first answer
_INLINE_TEXT_ROWS = 2_000
_FILL_AFTER_S = 1.0  # the thread starts after the searches that found the postings missing have answered
# scope masks kept per fragment: (tenant, ACL tokens) pairs seen recently
_MASKS_PER_BLOCK = 256


@dataclass
class _Block:
    """One fragment's rows: vectors and their norms, tenant and ACL columns, the columns hits return."""

    data_key: tuple[Any, ...]  # (fragment id, data files): a change of either means the rows changed
    deletions: tuple[int, int, int] | None  # the fragment's deletion file when read (None: none)
    addrs: np.ndarray  # the rows' addresses
    vectors: np.ndarray  # float32 (n, dim)
    norms: np.ndarray
    tenant: pa.Array
    acl: pa.Array
    rows: list[dict[str, Any]]  # the columns a hit carries, as Python rows (built once: a search only indexes them)
    alive: np.ndarray  # False for rows deleted since the fragment was read
    text: dict[str, FieldPostings] | None  # BM25 postings of the analysed columns (None: not built yet)
    masks: dict[tuple[str, tuple[str, ...] | None], np.ndarray] = field(default_factory=dict)
    source: Any = None  # the fragment as read (its analysed columns are read from it while text is None)

    def tenant_rows(self, tenant: str) -> np.ndarray:
        """Rows of ``tenant`` (deleted rows included: see ``alive``)."""
        return self.scope(tenant, None)

    def scope(self, tenant: str, tokens: tuple[str, ...] | None) -> np.ndarray:
        """Rows of ``tenant`` whose ACL holds one of ``tokens`` (None: whatever the ACL); deleted rows included (see
        ``alive``)."""
        key = (tenant, tokens)
        m = self.masks.get(key)
        if m is None:
            m = np.asarray(pc.fill_null(pc.equal(self.tenant, tenant), False), dtype=bool)
            if tokens is not None:
                flat = pc.list_flatten(self.acl)
                parents = np.asarray(pc.list_parent_indices(self.acl))
                has = np.asarray(pc.fill_null(pc.is_in(flat, value_set=pa.array(tokens, pa.string())), False),
                                 dtype=bool)
                in_acl = np.zeros(len(m), dtype=bool)
                in_acl[parents[has]] = True
                m = m & in_acl
            if len(self.masks) >= _MASKS_PER_BLOCK:
                self.masks.clear()  # (one call, safe while another search of the same block reads it)
            self.masks[key] = m
        return m


class VectorMirror:
    """Exact cosine search over one chunks table in memory (``nearest``), kept at the table's version."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.columns: list[str] = []  # the columns of a hit row the blocks hold
        self.version: int | None = None  # the table version the blocks are of
        self.usable = False  # the table at that version is one the mirror answers for
        self._blocks: list[_Block] = []
        self._lock = threading.Lock()
        self.text_fields: tuple[str, ...] = ()  # the analysed columns the blocks hold postings of
        self._analyzer = TermAnalyzer()
        self._vocab = Vocabulary()
        self._filling = False  # a thread builds the postings of blocks read without them
        self.refreshes = 0  # table versions followed (tests, status)
        self.text_answers = 0  # BM25 searches answered from memory (tests)
        self.blocks_read = 0  # fragments read into memory (tests: a new version reads only its new fragments)
        self.inline_text_rows = _INLINE_TEXT_ROWS  # a larger fragment gets its postings beside the searches

    def nearest(self, t: Any, columns: Sequence[str], vector: Sequence[float], tenant: str, tokens: Sequence[str],
                limit: int) -> list[dict[str, Any]] | None:
        """The ``limit`` rows (``columns`` and ``_distance``, cosine) nearest ``vector`` among the tenant's rows
        that one of ``tokens`` may see, nearest first; None when LanceDB must answer (see the module's text)."""
        if self.max_rows <= 0:
            return None
        blocks = self._current(t, list(columns))
        if blocks is None:
            return None
        q = np.asarray(vector, dtype=np.float32)
        qn = float(np.linalg.norm(q))
        toks = tuple(sorted(set(tokens)))
        cand: list[tuple[float, int, int]] = []  # (distance, block, row in block)
        for bi, b in enumerate(blocks):
            idx = np.flatnonzero(b.scope(tenant, toks) & b.alive)
            if not len(idx):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                # every row's product (cheaper than copying some rows), in one thread: BLAS's threads spin
                # on the cores that the other stages of this and the next query need (2.2 vs 6 ms of CPU)
                dist = 1.0 - np.einsum("ij,j->i", b.vectors, q)[idx] / (b.norms[idx] * qn)
            ok = ~np.isnan(dist)  # a row without a vector (or a zero one) has no distance: never found
            idx, dist = idx[ok], dist[ok]
            if len(idx) > limit:
                keep = np.argpartition(dist, limit - 1)[:limit]
                idx, dist = idx[keep], dist[keep]
            cand.extend(zip(dist.tolist(), [bi] * len(idx), idx.tolist(), strict=True))
        cand.sort()
        cand = cand[:limit]
        rows = _take([(blocks[bi], i) for _, bi, i in cand])
        return [{**r, "_distance": d} for r, (d, _, _) in zip(rows, cand, strict=True)]

    def best_text(self, t: Any, columns: Sequence[str], text: str, fields: Sequence[tuple[str, float]], tenant: str,
                  tokens: Sequence[str], limit: int) -> list[dict[str, Any]] | None:
        """The ``limit`` rows (``columns`` and ``_score``) of the tenant that one of ``tokens`` may see with the best
        BM25 score for ``text`` over ``fields`` ((column, boost): the best boosted column score), best first; None
        when LanceDB must answer (the table not held, or a column without postings)."""
        if self.max_rows <= 0:
            return None
        with self._lock:  # the blocks of one version
            blocks = self._current_locked(t, list(columns))
        if blocks is None or any(f not in self.text_fields for f, _ in fields):
            return None
        if any(b.text is None for b in blocks):
            self._fill_text_later()
            return None
        query = self._vocab.find(self._analyzer.terms(text))
        toks = tuple(sorted(set(tokens)))
        # N, avgdl and document frequencies of the tenant's live rows only (core/bm25.py)
        mine = [b.tenant_rows(tenant) & b.alive for b in blocks]
        stats = {f: sum((b.text[f].tenant_stats(m, query) for b, m in zip(blocks, mine, strict=True)  # type: ignore[index]
                         ), TermStats()) for f, _ in fields}
        cand: list[tuple[float, str, int, int]] = []  # (-score, chunk id, block, row in block)
        for bi, b in enumerate(blocks):
            best: np.ndarray | None = None
            for f, boost in fields:
                s = field_scores(b.text[f], stats[f], query)  # type: ignore[index]
                if s is not None:
                    best = s * boost if best is None else np.maximum(best, s * boost)
            if best is None:
                continue
            idx = np.flatnonzero((best > 0) & b.scope(tenant, toks) & mine[bi])
            sc = best[idx]
            if len(idx) > limit:  # the best ``limit`` and every row tied with the last (cut by chunk id below)
                keep = sc >= np.partition(sc, len(sc) - limit)[len(sc) - limit]
                idx, sc = idx[keep], sc[keep]
            cand.extend(zip((-sc).tolist(), [b.rows[i]["id"] for i in idx.tolist()], [bi] * len(idx), idx.tolist(),
                            strict=True))
        cand.sort()  # ties by chunk id: an order no other tenant's rows (or the fragments' layout) can change
        cand = cand[:limit]
        rows = _take([(blocks[bi], i) for _, _, bi, i in cand])
        self.text_answers += 1
        return [{**r, "_score": -s} for r, (s, _, _, _) in zip(rows, cand, strict=True)]

    # -- following the table ------------------------------------------------------------------
    def _current(self, t: Any, columns: list[str]) -> list[_Block] | None:
        version = t.version  # the latest (the store's read consistency interval decides how fresh)
        if version == self.version and columns == self.columns:
            return self._blocks if self.usable else None
        with self._lock:
            return self._current_locked(t, columns)

    def _current_locked(self, t: Any, columns: list[str]) -> list[_Block] | None:
        if t.version != self.version or columns != self.columns:
            self._follow(t, columns)
        return self._blocks if self.usable else None

    def _follow(self, t: Any, columns: list[str]) -> None:
        """The blocks of the table's latest version (set last, version last of all: a search that sees the new
        version sees its blocks)."""
        ds = t.to_lance()
        self.refreshes += 1
        frags = ds.get_fragments()
        if sum(f.metadata.physical_rows for f in frags) > self.max_rows or _has_vector_index(t):
            self._blocks, self.usable, self.columns, self.version = [], False, columns, ds.version
            return
        fields = tuple(c for c in ANALYSIS_COLUMNS if c in ds.schema.names)
        old = self._blocks if columns == self.columns and fields == self.text_fields else []
        have = {b.data_key: b for b in old}
        blocks = []
        for f in frags:
            md = f.metadata
            key = (f.fragment_id, tuple(getattr(d, "path", str(d)) for d in md.files))
            d = md.deletion_file
            deletions = None if d is None else (d.id, d.read_version, d.num_deleted_rows)
            b = have.get(key)
            if b is None:
                now = md.physical_rows <= self.inline_text_rows
                b = _read_block(f, key, deletions, columns, fields if now else (), self._analyzer, self._vocab)
                self.blocks_read += 1
            elif deletions != b.deletions:  # rows of the fragment deleted since: its live addresses again
                live = np.asarray(f.to_table(columns=[], with_row_address=True).column("_rowaddr"))
                b = replace(b, deletions=deletions, alive=np.isin(b.addrs, live))
            if len(b.addrs):
                blocks.append(b)
        self.text_fields = fields
        self._blocks, self.usable, self.columns, self.version = blocks, True, columns, ds.version


    def _fill_text_later(self) -> None:
        with self._lock:
            if self._filling:
                return
            self._filling = True
        threading.Thread(target=self._fill_text, name="mirror-postings", daemon=True).start()

    def _fill_text(self) -> None:
        """The postings of the blocks read without them, one block at a time beside the searches (at nice 19)."""
        try:
            time.sleep(_FILL_AFTER_S)
            lower_thread_priority()
            while True:
                with self._lock:
                    todo = next((b for b in self._blocks if b.text is None), None)
                    fields = self.text_fields
                if todo is None:
                    return
                tbl = todo.source.to_table(columns=list(fields), with_row_address=True)
                if not np.array_equal(np.asarray(tbl.column("_rowaddr")), todo.addrs):
                    raise ValueError(f"fragment {todo.data_key[0]} read again has other rows")
                text = {c: column_postings(tbl.column(c), self._analyzer, self._vocab) for c in fields}
                with self._lock:  # the block may have been replaced meanwhile: then its successor is next
                    if any(b is todo for b in self._blocks) and fields == self.text_fields:
                        done = replace(todo, text=text)
                        self._blocks = [done if b is todo else b for b in self._blocks]
        except Exception as exc:  # BM25 stays with LanceDB for these blocks
            log.warning("vector mirror: BM25 postings not built: %s: %s", type(exc).__name__, exc)
        finally:
            self._filling = False


def _has_vector_index(t: Any) -> bool:
    return any(str(getattr(i, "index_type", "")).upper().startswith("IVF") for i in t.list_indices())


def _read_block(f: Any, key: tuple[Any, ...], deletions: Any, columns: Sequence[str], fields: Sequence[str],
                analyzer: TermAnalyzer, vocab: Vocabulary) -> _Block:
    tbl = f.to_table(columns=[*columns, "tenant", "vector", *fields], with_row_address=True)
    n = tbl.num_rows
    vcol = tbl.column("vector").combine_chunks()
    dim = vcol.type.list_size
    if vcol.null_count == 0:
        vectors = np.asarray(vcol.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, dim)
    else:  # a row without a vector: no distance, never found
        vectors = np.asarray([v if v is not None else [np.nan] * dim for v in vcol.to_pylist()],
                             dtype=np.float32).reshape(n, dim)
    text = {c: column_postings(tbl.column(c), analyzer, vocab) for c in fields}
    return _Block(
        key, deletions, np.asarray(tbl.column("_rowaddr")), vectors, np.linalg.norm(vectors, axis=1),
        tbl.column("tenant").combine_chunks(), tbl.column("acl").combine_chunks(),
        tbl.select(list(columns)).to_pylist(), np.ones(n, dtype=bool), text if fields else None, source=f,
    )


def _take(at: Sequence[tuple[_Block, int]]) -> list[dict[str, Any]]:
    """The rows at (block, row) places, in their order (shared: callers copy a row before adding to it).
    Converting 200 arrow rows per query to Python held the GIL ~1.6 ms while the question's encoder waited."""
    return [b.rows[i] for b, i in at]
