"""The store's write path stays an index join as the table grows (no full scans per batch)."""

import math
from pathlib import Path

import numpy as np

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.tools.bench_scale import DIM, _rows


def test_new_rows_are_folded_into_the_id_index_and_deltas_stay_few(tmp_path: Path) -> None:
    store = LanceStore(str(tmp_path / "db"), read_consistency_s=None, fold_every_rows=16)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, DIM)).astype(np.float32)
    batches = 40
    for b in range(batches):
        store.apply(_rows(rng, centres, b * 4, 4, tenants=3), DIM)  # 4 documents, 16 chunks + 4 doc rows
        if b == 0:
            store.build_scalar_indexes()
    table = store.table(store.chunks_name)
    assert table is not None
    stats = table.to_lance().stats.index_stats("id_idx")
    assert stats["num_unindexed_rows"] <= 16, stats  # every fold covered what was written before it
    folds = batches - 1
    assert stats["num_indices"] <= math.log2(folds) + 2, stats  # deltas merged like a binary counter
    assert len(store.chunk_rows()) == batches * 16 and store.maintenance_failures == 0
