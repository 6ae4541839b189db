"""``streamrag bench scale``: the store at 100k and 1M chunks over 100 tenants with ACLs.

SYNTHETIC DATA: vectors are drawn around random cluster centres (384 dimensions, normalised) and texts
are short word salads; no encoder runs, so the figures are the store's alone (write path, ANN index,
prefiltered search). Each size reports: write throughput through the store's own batched write
(``LanceStore.apply``: an upsert joined on the chunk-id index, 2,000 chunks a batch, its index folds
included) over the first 10k chunks and over the last 10 % of the load, the maintenance optimize, index build
time, and query p50/p95 and recall@10 against exact search with the tenant + ACL prefilter of every query.
"""

from __future__ import annotations

import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from streamrag.connectors.lancedb_ann import build_ann
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.percentiles import percentile
from streamrag.core.ports import DocWrite
from streamrag.core.records import RawRecord
from streamrag.core.scope import Scope
from streamrag.core.security import acl_tokens, chunk_id, doc_key, principal_tokens
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_ingest_stages
from streamrag.flows.local import ingest_records
from streamrag.schemas.models import Acl, Principal
from streamrag.tools.bench_common import Log

DIM = 384
CHUNKS_PER_DOC = 4
WORDS = np.array(["stream", "index", "vector", "query", "answer", "tenant", "kafka", "lance", "chunk", "embed", "latency", "cache", "model", "token", "policy", "travel", "budget", "invoice", "contract", "renewal", "audit", "signal", "replay", "version"])


def _rows(rng: np.random.Generator, centres: np.ndarray, start: int, n_docs: int, tenants: int) -> list[DocWrite]:
    writes = []
    roles = ["sales", "hr", "eng", "legal", "ops"]
    for d in range(start, start + n_docs):
        tenant = f"t{d % tenants}"
        doc_id = f"d{d}"
        mix = d // tenants  # every tenant gets public documents and documents of each role
        acl = Acl() if mix % 2 == 0 else Acl(roles=[roles[mix % 5]])
        toks = acl_tokens(acl)
        key = doc_key(tenant, doc_id)
        c = centres[rng.integers(len(centres))]
        vecs = c + rng.normal(0, 0.35, (CHUNKS_PER_DOC, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        rows = [{"id": chunk_id(tenant, doc_id, i), "doc_key": key, "tenant": tenant, "doc_id": doc_id, "chunk_no": i,
                 "version": 1, "content_hash": "", "title": f"Doc {d}", "text": " ".join(rng.choice(WORDS, 30)),
                 "vector": vecs[i].tolist(), "acl": toks, "meta": [], "updated_ms": 0} for i in range(CHUNKS_PER_DOC)]
        writes.append(DocWrite(key, {"doc_key": key, "tenant": tenant, "doc_id": doc_id, "version": 1, "deleted": False,
                                     "content_hash": "", "title": f"Doc {d}", "chunk_count": CHUNKS_PER_DOC,
                                     "metadata_json": "{}", "updated_ms": 0, "indexed_ms": 0}, rows))
    return writes


def _optimize(store: LanceStore) -> None:
    t = store.table(store.chunks_name)
    if t is not None:
        t.optimize()


def _build_index(store: LanceStore, kind: str, n: int) -> float:
    t = store.table(store.chunks_name)
    assert t is not None, "the table was just written"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store.build_scalar_indexes()
        if kind == "store":  # the store's own policy: exact below STREAMRAG_ANN_INDEX_MIN_ROWS, then IVF_FLAT / IVF_PQ
            if n >= store.ann_index_min_rows:
                build_ann(t, n, store.pq_min_rows)
        elif kind == "ivf_pq":
            t.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ",
                           num_partitions=max(16, int(np.sqrt(n))), num_sub_vectors=DIM // 8)
        elif kind == "ivf_hnsw_sq":
            t.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_HNSW_SQ",
                           num_partitions=max(1, n // 100_000))
        elif kind == "none":
            pass  # prefiltered exact search: the tenant + ACL prefilter leaves few rows to scan
        elif kind == "ivf_flat":
            t.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_FLAT",
                           num_partitions=min(max(n // 200, 16), 4096))
    return time.perf_counter() - t0


def _vector_index(store: LanceStore) -> str:
    t = store.table(store.chunks_name)
    kinds = [str(getattr(i, "index_type", "")) for i in (t.list_indices() if t is not None else [])]
    return next((k for k in kinds if k.lower().startswith("ivf")), "none (exact)")


def _queries(store: LanceStore, rng: np.random.Generator, centres: np.ndarray, tenants: int, n: int,
             exact: dict[int, set[str]] | None) -> tuple[list[float], dict[int, set[str]]]:
    lat, found = [], {}
    for i in range(n):
        q = centres[i % len(centres)] + rng.normal(0, 0.35, DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        where = Scope.of(f"t{i % tenants}", principal_tokens(Principal(user=f"u{i}", roles=["hr"])))
        t0 = time.perf_counter()
        hits = store.vector_search(q, where, 10, exact=exact is None)
        lat.append((time.perf_counter() - t0) * 1000)
        found[i] = {h.id for h in hits}
    return lat, found


def ingest_rate(s: Settings, store: LanceStore, records: list[RawRecord]) -> dict[str, Any]:
    """Real documents through the real ingest stages (parse ... encoder ... write) into this store."""
    emb = embedder_for(s)
    emb.embed(["warm up"])
    t0 = time.perf_counter()
    counts = ingest_records(s, iter(records), stages=make_ingest_stages(s, embedder=emb, store=store)).counts()
    secs = time.perf_counter() - t0
    return {"documents": counts.get("indexed", 0), "chunks": counts["chunks"], "seconds": round(secs, 1),
            "chunks_per_s": round(counts["chunks"] / secs, 2)}


def bench_scale(sizes: list[int], workdir: Path, log: Log, *, tenants: int = 100, queries: int = 200,
                index: str = "store", nprobes: int = 32, refine: int = 10, batch_docs: int = 500,
                ingest: tuple[Settings, list[RawRecord]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"data": "synthetic vectors (clustered, 384-d) and texts; store figures only",
                           "tenants": tenants, "index": index, "nprobes": nprobes, "refine_factor": refine, "sizes": {}}
    for size in sizes:
        rng = np.random.default_rng(size)
        centres = rng.normal(0, 1, (256, DIM)).astype(np.float32)
        db = workdir / f"scale-{size}"
        shutil.rmtree(db, ignore_errors=True)
        store = LanceStore(str(db), read_consistency_s=None, nprobes=nprobes)
        n_docs = size // CHUNKS_PER_DOC
        rates: list[float] = []
        secs: list[float] = []  # per batch, the store's own index folds included
        t_load = time.perf_counter()
        for start in range(0, n_docs, batch_docs):
            writes = _rows(rng, centres, start, min(batch_docs, n_docs - start), tenants)
            t0 = time.perf_counter()
            store.apply(writes, DIM)
            secs.append(time.perf_counter() - t0)
            rates.append(len(writes) * CHUNKS_PER_DOC / secs[-1])
            # what the ingest worker's maintenance thread does: scalar indexes once (the id index keeps
            # merge_insert from scanning the table), then new rows folded into them now and then
            if start == 0:
                store.build_scalar_indexes()
            elif start % (125 * batch_docs) == 0:  # every 250k chunks
                _optimize(store)
            if start and start % (n_docs // 10 or 1) < batch_docs:
                log(f"{size:,}: {start * CHUNKS_PER_DOC:,} chunks written, {rates[-1]:.0f} chunks/s now")
        load_s = time.perf_counter() - t_load
        t_opt = time.perf_counter()
        _optimize(store)  # what the maintenance thread does within STREAMRAG_OPTIMIZE_EVERY_S of the load
        optimize_s = time.perf_counter() - t_opt
        build_s = _build_index(store, index, size)
        store.refine_factor = refine if index in ("ivf_pq", "store") else 0  # applied only to a PQ index
        store.pq_probe.checked_at = -1e9  # the index was just built: look again
        exact_lat, truth = _queries(store, np.random.default_rng(7), centres, tenants, queries, None)
        lat, got = _queries(store, np.random.default_rng(7), centres, tenants, queries, truth)
        recall = float(np.mean([len(got[i] & truth[i]) / len(truth[i]) for i in truth if truth[i]]))
        # the rate over the first 10k chunks, and over the last 10 % of the load (the store's index folds,
        # which come in sizes like a binary counter's carries, averaged in)
        per = batch_docs * CHUNKS_PER_DOC
        w_head, w_tail = max(1, 10_000 // per), max(1, len(secs) // 10)
        head, tail = w_head * per / sum(secs[:w_head]), w_tail * per / sum(secs[-w_tail:])
        row: dict[str, Any] = {"chunks": size, "load_s": round(load_s, 1), "write_chunks_per_s_first": round(head, 1),
               "write_chunks_per_s_last": round(tail, 1), "write_ratio_last_to_first": round(tail / head, 3),
               "optimize_s": round(optimize_s, 1), "index_build_s": round(build_s, 1), "p50": percentile(lat, 50, 2),
               "p95": percentile(lat, 95, 2), "recall": round(recall, 4),
               "exact_p95": percentile(exact_lat, 95, 2), "vector_index": _vector_index(store)}
        if ingest is not None:  # end to end: real documents, the real encoder, into the store of this size
            rate = ingest_rate(ingest[0], store, ingest[1])
            row["ingest"] = rate
            log(f"{size:,}: real ingest of {rate['documents']} documents: {rate['chunks_per_s']} chunks/s")
        out["sizes"][str(size)] = row
        log(f"{size:,} chunks ({index}, nprobes {nprobes}): p50 {row['p50']} ms, p95 {row['p95']} ms, recall@10 "
            f"{row['recall']} (exact search p95 {row['exact_p95']} ms); writes {head:.0f} -> {tail:.0f} chunks/s; "
            f"index built in {build_s:.0f} s")
        shutil.rmtree(db, ignore_errors=True)
    return out
