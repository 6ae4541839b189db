"""``streamrag bench replay``: replay throughput beside the raw encoder (same chunks, same run), the
speed-up from reused embeddings, and the longest gap without answers while a promote happens
under a steady query load."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer

from streamrag.connectors.kafka_admin import client_config, ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.percentiles import percentile
from streamrag.core.settings import Settings
from streamrag.tools import index_admin
from streamrag.tools.bench_common import (
    Log,
    bench_env,
    load_docs,
    machine,
    raw_encoder_rate,
    start_workers,
    stop,
)
from streamrag.tools.replay import replay


class AnswerClock:
    """Receive times of answers (a consumer thread on the answers topic)."""

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.received: dict[str, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        c = Consumer(client_config(self.s.kafka, **{"group.id": f"bench-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "latest",
                                              "enable.auto.commit": False}))
        c.subscribe([self.s.topics.answers])
        try:
            while not self._stop.is_set():
                for m in c.consume(100, 0.05):
                    key = m.key() if m.error() is None else None
                    if key:
                        self.received.setdefault(key.decode(), time.time())
        finally:
            c.close()

    def start(self) -> AnswerClock:
        self._t.start()
        time.sleep(3)  # assigned before the first query
        return self

    def stop(self) -> None:
        self._stop.set()
        self._t.join(10)


def _promote_gap(s: Settings, env: dict[str, str], workdir: Path, target: str, rate: float, seconds: float,
                 log: Log) -> dict[str, Any]:
    procs = start_workers("query", {**env, "STREAMRAG_GENERATOR": "extractive", "STREAMRAG_CACHE_ENABLED": "false"},
                          1, workdir)
    clock = AnswerClock(s).start()
    prod = JsonProducer(s.kafka, s.worker)
    sent: dict[str, float] = {}
    promoted_at = 0.0
    try:
        warm = f"warm-{uuid.uuid4().hex}"
        prod.send(s.topics.queries, warm, {"query_id": warm, "tenant": "bench", "text": "warm up"})
        prod.flush()
        deadline = time.monotonic() + 300
        while warm not in clock.received:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"query worker did not answer (logs in {workdir})")
            time.sleep(0.2)
        t0 = time.time()
        i = 0
        while time.time() - t0 < seconds:
            qid = uuid.uuid4().hex
            prod.send(s.topics.queries, qid, {"query_id": qid, "tenant": "bench", "text": f"what is known about topic {i % 50}?"})
            prod.flush()
            sent[qid] = time.time()
            i += 1
            if not promoted_at and time.time() - t0 >= seconds / 2:
                index_admin.promote(s, target, force=True)
                promoted_at = time.time()
            time.sleep(max(0.0, t0 + i / rate - time.time()))
        end = time.time() + 15
        while time.time() < end and not set(sent) <= set(clock.received):
            time.sleep(0.2)
    finally:
        clock.stop()
        stop(procs)
    got = sorted(clock.received[q] for q in sent if q in clock.received)
    gaps = np.diff(got) if len(got) > 1 else np.array([0.0])
    lat = np.array([clock.received[q] - t for q, t in sent.items() if q in clock.received]) * 1000
    around = [clock.received[q] - t for q, t in sent.items() if q in clock.received and abs(t - promoted_at) < 2]
    out = {"queries": len(sent), "answered": len(got), "rate_per_s": rate,
           "longest_gap_ms": round(float(gaps.max()) * 1000, 1), "send_interval_ms": round(1000 / rate, 1),
           "latency_p50_ms": percentile(lat, 50, 1), "latency_p95_ms": percentile(lat, 95, 1),
           "latency_max_within_2s_of_promote_ms": round(max(around, default=0.0) * 1000, 1)}
    log(f"promote under {rate:g} q/s: longest gap between answers {out['longest_gap_ms']} ms (sending every "
        f"{out['send_interval_ms']} ms), latency p50 {out['latency_p50_ms']} / p95 {out['latency_p95_ms']} ms, "
        f"worst within 2 s of the promote {out['latency_max_within_2s_of_promote_ms']} ms, "
        f"{out['answered']}/{out['queries']} answered")
    return out


def bench_replay(s: Settings, dataset: Path | None, n_docs: int, workdir: Path, log: Log,
                 rate: float = 10.0, seconds: float = 20.0) -> dict[str, Any]:
    docs = load_docs(dataset, n_docs)
    tag = uuid.uuid4().hex[:6]
    bs, env = bench_env(s, tag, workdir / f"replay-{tag}", 2)
    ensure_topics(bs.kafka, bs.topic_layout, 2)
    prod = JsonProducer(bs.kafka, bs.worker)
    for d in docs:
        prod.send(bs.topics.documents, f"bench/{d['doc_id']}", {"op": "upsert", "tenant": "bench", "version": 1, **d})
    prod.flush()
    n_chunks, _, raw = raw_encoder_rate(bs, docs)
    log(f"raw encoder: {n_chunks} chunks at {raw:.1f} chunks/s")
    first = replay(bs, "blue")
    rate_first = first.encoded / first.seconds
    log(f"replay into a new index: {first.read} records, {first.encoded} chunks encoded in {first.seconds:.1f} s "
        f"= {rate_first:.1f} chunks/s (ratio to the raw encoder {rate_first / raw:.2f})")
    second = replay(bs, "green")
    log(f"replay into another index of the same model and chunking: {second.reused} chunks reused, "
        f"{second.encoded} encoded in {second.seconds:.1f} s ({first.seconds / second.seconds:.1f}x faster)")
    gap = _promote_gap(bs, env, workdir, "green", rate, seconds, log)
    return {
        "machine": machine(s), "docs": len(docs), "chunks": n_chunks, "chunk_size": s.chunk.size,
        "raw_chunks_per_s": round(raw, 1), "replay": first.as_dict(), "replay_chunks_per_s": round(rate_first, 1),
        "ratio_to_raw": round(rate_first / raw, 3), "reuse": second.as_dict(),
        "reuse_speedup": round(first.seconds / second.seconds, 1), "promote": gap,
    }
