"""``streamrag bench ingest``: chunks/s from the documents topic to searchable, beside the raw encoder."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from streamrag.connectors.kafka_admin import ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.settings import Settings
from streamrag.tools.bench_common import (
    Log,
    bench_env,
    count_chunks,
    load_docs,
    machine,
    raw_encoder_rate,
    start_workers,
    stop,
)


def bench_ingest(s: Settings, dataset: Path | None, n_docs: int, processes: list[int], workdir: Path, log: Log) -> dict[str, Any]:
    docs = load_docs(dataset, n_docs)
    n_chunks, raw_s, raw = raw_encoder_rate(s, docs)
    log(f"raw encoder: {n_chunks} chunks in {raw_s:.1f}s = {raw:.1f} chunks/s")
    runs = []
    for p in processes:
        tag = uuid.uuid4().hex[:6]
        # an object-store index (STREAMRAG_LANCEDB_URI=s3://..., credentials from AWS_*): each run under a prefix of its own
        db: Path | str = workdir / f"ingest-{tag}" if s.lancedb_is_local else f"{s.index.lancedb_uri}/bench-ingest-{tag}"
        bs, env = bench_env(s, tag, db, max(p, 2))
        ensure_topics(bs.kafka, bs.topic_layout, max(p, 2))
        threads = {"STREAMRAG_TORCH_THREADS": str(max(1, (os.cpu_count() or 1) // p))}
        procs = start_workers("ingest", env, p, workdir, threads)
        try:
            prod = JsonProducer(bs.kafka, bs.worker)
            # warm every worker: a few docs on every partition, wait until searchable
            for i in range(4 * p):
                prod.send(bs.topics.documents, f"warm/w{i}", {"op": "upsert", "tenant": "warm", "doc_id": f"w{i}", "version": 1, "text": "warm up text."})
            prod.flush()
            deadline = time.monotonic() + 300
            while count_chunks(db, "warm") < 4 * p:
                if time.monotonic() > deadline or any(x.poll() is not None for x in procs):
                    raise RuntimeError(f"ingest workers did not start (logs in {workdir})")
                time.sleep(0.2)
            t0 = time.perf_counter()
            for d in docs:
                prod.send(bs.topics.documents, f"bench/{d['doc_id']}", {"op": "upsert", "tenant": "bench", "version": 1, **d})
            prod.flush()
            while (got := count_chunks(db, "bench")) < n_chunks:
                if time.perf_counter() - t0 > 1800:
                    raise RuntimeError(f"only {got}/{n_chunks} chunks searchable after 30 min")
                time.sleep(0.25)
            el = time.perf_counter() - t0
        finally:
            stop(procs)
        rate = n_chunks / el
        runs.append({"processes": p, "seconds": round(el, 2), "chunks_per_s": round(rate, 1), "ratio_to_raw": round(rate / raw, 3)})
        log(f"pipeline, {p} process(es): {n_chunks} chunks Kafka -> searchable in {el:.1f}s = {rate:.1f} chunks/s "
            f"(ratio {rate / raw:.2f})")
    return {"machine": machine(s), "store": "local" if s.lancedb_is_local else s.index.lancedb_uri.split("://")[0],
            "brokers": len(s.brokers), "docs": len(docs), "chunks": n_chunks, "chunk_size": s.chunk.size,
            "batch_size": s.index.batch_size, "raw_chunks_per_s": round(raw, 1), "pipeline": runs}
