"""``streamrag bench ingest``: chunks/s from the documents topic to searchable, beside the raw encoder."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from streamrag.connectors.kafka_admin import ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.chunking import chunk_text
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for
from streamrag.tools.bench_common import Log, bench_env, count_chunks, load_docs, machine, start_workers, stop


def bench_ingest(s: Settings, dataset: Path | None, n_docs: int, processes: list[int], workdir: Path, log: Log) -> dict[str, Any]:
    docs = load_docs(dataset, n_docs)
    emb = embedder_for(s)
    emb.embed(["warm up"])
    texts = []
    for d in docs:
        for c in chunk_text(d["text"], size=s.chunk_size, overlap=s.chunk_overlap, tokenize=emb.token_spans):
            texts.append(f"{d['title']}\n{c.text}" if d["title"] and c.chunk_no == 0 else c.text)
    t0 = time.perf_counter()
    emb.embed(texts)
    raw_s = time.perf_counter() - t0
    raw = len(texts) / raw_s
    log(f"raw encoder: {len(texts)} chunks in {raw_s:.1f}s = {raw:.1f} chunks/s")
    runs = []
    for p in processes:
        tag = uuid.uuid4().hex[:6]
        db = workdir / f"ingest-{tag}"
        bs, env = bench_env(s, tag, db, max(p, 2))
        ensure_topics(bs, max(p, 2))
        threads = {"STREAMRAG_TORCH_THREADS": str(max(1, (os.cpu_count() or 1) // p))}
        procs = start_workers("ingest", env, p, workdir, threads)
        try:
            prod = JsonProducer(bs)
            # warm every worker: a few docs on every partition, wait until searchable
            for i in range(4 * p):
                prod.send(bs.topic_documents, f"warm/w{i}", {"op": "upsert", "tenant": "warm", "doc_id": f"w{i}", "version": 1, "text": "warm up text."})
            prod.flush()
            deadline = time.monotonic() + 300
            while count_chunks(db, "warm") < 4 * p:
                if time.monotonic() > deadline or any(x.poll() is not None for x in procs):
                    raise RuntimeError(f"ingest workers did not start (logs in {workdir})")
                time.sleep(0.2)
            t0 = time.perf_counter()
            for d in docs:
                prod.send(bs.topic_documents, f"bench/{d['doc_id']}", {"op": "upsert", "tenant": "bench", "version": 1, **d})
            prod.flush()
            while (got := count_chunks(db, "bench")) < len(texts):
                if time.perf_counter() - t0 > 1800:
                    raise RuntimeError(f"only {got}/{len(texts)} chunks searchable after 30 min")
                time.sleep(0.25)
            el = time.perf_counter() - t0
        finally:
            stop(procs)
        rate = len(texts) / el
        runs.append({"processes": p, "seconds": round(el, 2), "chunks_per_s": round(rate, 1), "ratio_to_raw": round(rate / raw, 3)})
        log(f"pipeline, {p} process(es): {len(texts)} chunks Kafka -> searchable in {el:.1f}s = {rate:.1f} chunks/s "
            f"(ratio {rate / raw:.2f})")
    return {"machine": machine(s), "docs": len(docs), "chunks": len(texts), "chunk_size": s.chunk_size,
            "batch_size": s.batch_size, "raw_chunks_per_s": round(raw, 1), "pipeline": runs}
