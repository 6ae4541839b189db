"""Per-query BM25 search time on a synthetic 12k-chunk table of 4 tenants (issue #34, docs/security.md).

    python docs/bench/bm25_tenants.py build DIR      # the table (once; any version of the code reads it)
    python docs/bench/bm25_tenants.py time DIR       # median / p95 ms of ``text_search`` per path, as JSON

Paths: the vector mirror's postings (a tenant + ACL scope), LanceDB (the mirror off: LanceDB's search, and on this
branch its candidates scored again with the tenant's statistics), LanceDB with a metadata filter."""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.scope import Scope, filter_conditions
from streamrag.core.settings import Settings
from streamrag.schemas.models import QueryFilters
from tests.conftest import Indexer, change, rec
from tests.fakes import HashEmbedder

rng = np.random.default_rng(7)
VOCAB = [f"w{i}" for i in range(6000)]
P = 1.0 / np.arange(1, len(VOCAB) + 1) ** 1.05
P /= P.sum()


def _text(n: int) -> str:
    return " ".join(VOCAB[i] for i in rng.choice(len(VOCAB), n, p=P))


def _settings(d: str) -> Settings:
    return Settings(lancedb_uri=f"{d}/db", chunk_size=60, chunk_overlap=0, _env_file=None)  # type: ignore[call-arg]


def build(d: str) -> None:
    s = _settings(d)
    store = LanceStore(s.lancedb_path())
    ing = Indexer(s, store, HashEmbedder())
    for b in range(12):  # 12 batches of 250 documents of ~4 chunks
        ing.process_batch([rec(change(f"d{b}-{i}", 1, _text(230), tenant=f"t{i % 4}", title=_text(5),
                                      metadata={"kind": "a" if i % 2 else "b"})) for i in range(250)])
    store.maintain(force=True)
    t = store.table("chunks")
    print("rows", t.count_rows() if t is not None else 0)


def _time(store: LanceStore, scopes: list, queries: list[str]) -> dict[str, float]:
    for q in queries[:20]:  # warm: the mirror read, postings built, the tenant's statistics read
        for sc in scopes:
            store.text_search(q, sc, 100)
    ms, cpu = [], []
    for q in queries:
        for sc in scopes:
            t0, c0 = time.perf_counter(), time.thread_time()
            store.text_search(q, sc, 100)
            ms.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)  # (this thread's: LanceDB's own threads not counted)
    return {"p50_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "thread_cpu_p50_ms": round(float(np.median(cpu)), 2), "n": len(ms)}


def timing(d: str) -> None:
    s = _settings(d)
    queries = [_text(8) for _ in range(100)]
    plain_scopes = [Scope.of(f"t{i}", ["*"]) for i in range(4)]
    filtered = [Scope.of(f"t{i}", ["*"], filter_conditions(QueryFilters(metadata={"kind": "a"}))) for i in range(4)]
    mirrored = LanceStore(s.lancedb_path(), mirror_max_rows=50_000)
    _time(mirrored, plain_scopes, queries[:5])
    for _ in range(600):  # the postings built beside the searches (a first read of large fragments)
        if mirrored.mirror.text_answers:
            break
        mirrored.text_search(queries[0], plain_scopes[0], 100)
        time.sleep(0.1)
    out = {"mirror": _time(mirrored, plain_scopes, queries), "mirror_answers": mirrored.mirror.text_answers,
           "lancedb": _time(LanceStore(s.lancedb_path()), plain_scopes, queries),
           "lancedb_metadata_filter": _time(LanceStore(s.lancedb_path()), filtered, queries)}
    print(json.dumps(out))


if __name__ == "__main__":
    {"build": build, "time": timing}[sys.argv[1]](sys.argv[2])
