"""The store's write path stays an index join as the table grows (no full scans per batch)."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from streamrag.connectors.lancedb_ann import build_ann
from streamrag.connectors.lancedb_store import LanceStore
from tests.builders import DIM, doc_writes


def test_new_rows_are_folded_into_the_id_index_and_deltas_stay_few(tmp_path: Path) -> None:
    store = LanceStore(str(tmp_path / "db"), read_consistency_s=None, fold_every_rows=16)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, DIM)).astype(np.float32)
    batches = 40
    for b in range(batches):
        store.apply(doc_writes(rng, centres, b * 4, 4, tenants=3), DIM)  # 4 documents, 16 chunks + 4 doc rows
        if b == 0:
            store.build_scalar_indexes()
    table = store.table(store.chunks_name)
    assert table is not None
    stats = table.to_lance().stats.index_stats("id_idx")
    assert stats["num_unindexed_rows"] <= 16, stats  # every fold covered what was written before it
    folds = batches - 1
    assert stats["num_indices"] <= math.log2(folds) + 2, stats  # deltas merged like a binary counter
    assert len(store.chunk_rows()) == batches * 16 and store.maintenance_failures == 0


def test_small_tables_are_searched_exactly_and_ivf_gets_sqrt_n_partitions(tmp_path: Path) -> None:
    # a selective tenant + ACL prefilter leaves few rows per IVF partition: exact search below the
    # threshold, and few (sqrt n) partitions above it so that nprobes covers a large share of them
    store = LanceStore(str(tmp_path / "db"), read_consistency_s=None, ann_index_min_rows=1_200)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, DIM)).astype(np.float32)
    store.apply(doc_writes(rng, centres, 0, 200, tenants=3), DIM)  # 800 chunks
    store.optimize()
    table = store.table(store.chunks_name)
    assert table is not None
    assert not [i for i in table.list_indices() if "ivf" in str(i.index_type).lower()]  # below: exact search
    store.apply(doc_writes(rng, centres, 200, 200, tenants=3), DIM)  # 1,600 chunks
    store.optimize()
    assert [i for i in table.list_indices() if "ivf" in str(i.index_type).lower()], table.list_indices()

    asked: dict[str, Any] = {}

    class Table:  # what build_ann asks LanceDB for at 1M rows (LanceDB itself trims partitions on small tables)
        schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), DIM))])

        def create_index(self, **kw: Any) -> None:
            asked.update(kw)

    build_ann(Table(), 400_000, pq_min_rows=500_000)
    assert (asked["index_type"], asked["num_partitions"]) == ("IVF_FLAT", 632)  # sqrt(n); n/200 gave 2,000


def test_a_batch_reads_the_docs_table_once_and_still_drops_a_shrunk_tail(tmp_path: Path, monkeypatch: Any) -> None:
    from streamrag.core.ingest.stages import IngestStages
    from streamrag.core.settings import Settings
    from tests.conftest import change, rec
    from tests.fakes import HashEmbedder, count_searches

    s = Settings(lancedb_uri=str(tmp_path / "db"), chunk_size=20, chunk_overlap=4, _env_file=None)  # type: ignore[call-arg]
    store = LanceStore(s.lancedb_path(), fts_rebuild_every_s=0)
    stages = IngestStages.from_settings(s, store, HashEmbedder())
    long = " ".join(f"Sentence {i} is about topic{i}." for i in range(30))
    stages.process_batch([rec(change("d1", 1, long))])
    assert len(store.chunk_rows()) > 3
    reads = count_searches(monkeypatch, store, store.docs_name)
    stages.process_batch([rec(change("d1", 2, "now it is short"))])
    assert len(reads) == 1  # the stale check's read carries the chunk count the write needs
    assert [(r["chunk_no"], r["version"]) for r in store.chunk_rows()] == [(0, 2)]
