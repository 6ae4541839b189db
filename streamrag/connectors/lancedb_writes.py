"""The write path's helpers: what a batch leaves behind in the chunk table, found without scanning
it, and new rows folded into the join-key indexes so that upserts stay index joins as the table grows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamrag.connectors.lancedb_filters import one_of
from streamrag.core.ports import DocWrite


def stale_chunk_filter(writes: Sequence[DocWrite], before: dict[str, int]) -> str:
    """A filter for the chunk rows these writes leave behind ('' when none): every chunk of a deleted
    document, and chunk_no >= the new count of a document that had more chunks before."""
    gone = [w.doc_key for w in writes if not w.chunk_rows]
    parts = [one_of("doc_key", gone)] if gone else []
    parts += [
        f"({one_of('doc_key', [w.doc_key])} AND chunk_no >= {len(w.chunk_rows)})"
        for w in writes
        if w.chunk_rows and before.get(w.doc_key, 0) > len(w.chunk_rows)
    ]
    return " OR ".join(parts)


def fold_into_indexes(table: Any, columns: Sequence[str], fold_no: int) -> None:
    """Add the rows written since the last fold to the scalar indexes on ``columns``.

    An upsert joins on the id index for indexed rows and scans the rest, so without this its cost
    grows with the rows written since the last full optimize (250k rows: 4x slower batches). Each
    fold writes a small delta index and merges deltas like a binary counter (fold ``n`` merges the
    newest ``trailing_zeros(n)`` of them), so a table holds O(log folds) deltas and each row is
    rewritten O(log folds) times: lookups and folds both stay cheap as the table grows.
    """
    names = [i.name for i in table.list_indices() if set(getattr(i, "columns", ())) & set(columns)]
    if names:
        merge = (fold_no & -fold_no).bit_length() - 1 if fold_no > 0 else 0
        table.to_lance().optimize.optimize_indices(index_names=names, num_indices_to_merge=merge)
        table.checkout_latest()
