"""Benchmarks (scripts that print figures, not timed tests): ingest and query through real Kafka."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from streamrag.connectors.kafka import JsonProducer, client_config, ensure_topics
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.security import tenant_literal
from streamrag.core.settings import Settings

Log = Callable[[str], None]


def machine(settings: Settings) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "gpu": gpu,
            "device": "cuda" if gpu and settings.device in ("auto", "cuda") else "cpu",
            "model": settings.embedding_model, "python": platform.python_version(), "torch": torch.__version__}


def load_docs(dataset: Path | None, n: int) -> list[dict[str, str]]:
    docs: list[dict[str, str]] = []
    if dataset is not None:
        from streamrag.tools.evaluate import _open, load_beir

        corpus, _, _ = load_beir(dataset)
        with _open(corpus) as f:
            for line in f:
                o = json.loads(line)
                docs.append({"doc_id": str(o["_id"]), "title": o.get("title", ""), "text": o.get("text") or "(empty)"})
                if len(docs) >= n:
                    break
        return docs
    rng = np.random.default_rng(0)
    words = ["stream", "index", "vector", "query", "answer", "tenant", "kafka", "lance", "chunk", "embed", "latency", "cache", "model", "token"]
    for i in range(n):
        text = ". ".join(" ".join(rng.choice(words, 12)) for _ in range(14)) + "."
        docs.append({"doc_id": f"syn{i}", "title": f"Synthetic {i}", "text": text})
    return docs


def bench_env(s: Settings, tag: str, db: Path, partitions: int) -> tuple[Settings, dict[str, str]]:
    env = {
        "STREAMRAG_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "STREAMRAG_LANCEDB_URI": str(db),
        "STREAMRAG_INGEST_GROUP": f"bench-{tag}", "STREAMRAG_KAFKA_PARTITIONS": str(partitions),
        "STREAMRAG_CHUNK_SIZE": str(s.chunk_size), "STREAMRAG_CHUNK_OVERLAP": str(s.chunk_overlap),
        "STREAMRAG_BATCH_SIZE": str(s.batch_size), "STREAMRAG_EMBEDDING_MODEL": s.embedding_model,
        "STREAMRAG_DEVICE": s.device,
    }
    for t in ("documents", "queries", "answers", "cache", "index_events", "dead_letters"):
        env[f"STREAMRAG_TOPIC_{t.upper()}"] = f"bench-{tag}.{t}"
    bs = Settings(**{k.removeprefix("STREAMRAG_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    return bs, env


def start_workers(kind: str, env: dict[str, str], n: int, logdir: Path, extra_env: dict[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
    base = 23000 + (os.getpid() % 1000) * 4
    addrs = ";".join(f"127.0.0.1:{base + i}" for i in range(n))
    procs = []
    for i in range(n):
        args = [sys.executable, "-m", "streamrag.cli", "worker", kind]
        if n > 1:
            args += ["-i", str(i), "-a", addrs]
        log = (logdir / f"{kind}-{i}.log").open("ab")
        procs.append(subprocess.Popen(args, env={**os.environ, **env, **(extra_env or {}), "HF_HUB_OFFLINE": "1"},
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


_STORES: dict[Path, LanceStore] = {}


def _count(db: Path, tenant: str) -> int:
    store = _STORES.setdefault(db, LanceStore(str(db)))
    t = store.table("chunks")
    if t is None:
        return 0
    return int(t.count_rows(f"tenant = {tenant_literal(tenant)}"))


def bench_ingest(s: Settings, dataset: Path | None, n_docs: int, processes: list[int], workdir: Path, log: Log) -> dict[str, Any]:
    from streamrag.core.chunking import chunk_text
    from streamrag.flows.components import embedder_for

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
            while _count(db, "warm") < 4 * p:
                if time.monotonic() > deadline or any(x.poll() is not None for x in procs):
                    raise RuntimeError(f"ingest workers did not start (logs in {workdir})")
                time.sleep(0.2)
            t0 = time.perf_counter()
            for d in docs:
                prod.send(bs.topic_documents, f"bench/{d['doc_id']}", {"op": "upsert", "tenant": "bench", "version": 1, **d})
            prod.flush()
            while (got := _count(db, "bench")) < len(texts):
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


class QueryRig:
    """A query worker over the dataset's index (built once with the embedding cache), and a
    client that publishes queries and times each answer."""

    def __init__(self, s: Settings, dataset: Path, workdir: Path, log: Log, extra_env: dict[str, str] | None = None) -> None:
        from streamrag.flows.components import embedder_for, make_store
        from streamrag.connectors.embedding_cache import CachingEmbedder
        from streamrag.tools.evaluate import corpus_records, index_corpus, load_beir

        corpus, self.queries, _ = load_beir(dataset)
        db = workdir / "query-index"
        is_ = s.model_copy(update={"lancedb_uri": str(db), "optimize_every_s": 1e9})
        store = make_store(is_)
        if store.table("chunks") is None:
            emb = CachingEmbedder(embedder_for(is_), Path(s.lancedb_path()).parent / "embcache.sqlite")
            index_corpus(is_, store, emb, corpus_records(corpus))
            store.maintain(force=True)
        self.chunks = store.table("chunks").count_rows()  # type: ignore[union-attr]
        log(f"index: {self.chunks} chunks at {db}")
        self.tag = uuid.uuid4().hex[:6]
        self.bs, env = bench_env(s, self.tag, db, 2)
        env["STREAMRAG_REDIS_URL"] = s.redis_url
        env["STREAMRAG_CACHE_REDIS_PREFIX"] = f"streamrag:bench-{self.tag}:"  # a cold cache for every run
        env["STREAMRAG_CACHE_TTL_S"] = "900"
        ensure_topics(self.bs, 2)
        self.procs = start_workers("query", env, 1, workdir, extra_env)
        self.workdir = workdir
        self.got: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._consume, daemon=True)
        self._th.start()
        self.prod = JsonProducer(self.bs)

    def _consume(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        c = Consumer(client_config(self.bs, **{"group.id": f"bench-{self.tag}", "enable.auto.commit": False}))
        c.assign([TopicPartition(self.bs.topic_answers, p, 0) for p in range(2)])
        while not self._stop.is_set():
            m = c.poll(0.05)  # poll returns on the first message; consume(n, t) would wait for n or t
            if m is not None and m.error() is None and m.value():
                now = time.perf_counter()
                a = json.loads(m.value() or b"{}")
                self.got[a["query_id"]] = (now, a)
        c.close()

    def warm(self) -> None:
        deadline = time.monotonic() + 300
        while True:
            qid = f"warm-{uuid.uuid4().hex[:6]}"
            self.prod.send(self.bs.topic_queries, qid, {"query_id": qid, "tenant": "eval", "text": "warm up",
                                                        "options": {"use_cache": False}})
            self.prod.flush()
            time.sleep(1.0)
            if qid in self.got:
                return
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"query worker did not answer (logs in {self.workdir})")

    def run(self, texts: list[str], rate: float, use_cache: bool = True) -> list[tuple[float, dict[str, Any]]]:
        """Send texts at a steady rate; return (round trip ms, answer) per query."""
        sent: dict[str, float] = {}
        interval = 1.0 / rate
        t_next = time.perf_counter()
        for i, text in enumerate(texts):
            qid = f"q{i}-{uuid.uuid4().hex[:8]}"
            now = time.perf_counter()
            if now < t_next:
                time.sleep(t_next - now)
            t_next += interval
            sent[qid] = time.perf_counter()
            body = {"query_id": qid, "tenant": "eval", "text": text, "options": {"use_cache": use_cache}}
            self.prod.send(self.bs.topic_queries, qid, body)
            self.prod.producer.flush(1)
        deadline = time.monotonic() + 60
        while len([q for q in sent if q in self.got]) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [((self.got[q][0] - t) * 1000, self.got[q][1]) for q, t in sent.items() if q in self.got]

    def close(self) -> None:
        self._stop.set()
        stop(self.procs)


def _pcts(lat: list[float]) -> dict[str, float]:
    return {f"p{p}": round(float(np.percentile(lat, p)), 2) for p in (50, 95, 99)} if lat else {}


def bench_query(s: Settings, dataset: Path, n: int, rate: float, workdir: Path, log: Log) -> dict[str, Any]:
    """Round trip publish -> answer (cache off) at a steady rate, with per-stage timings."""
    rig = QueryRig(s, dataset, workdir, log)
    try:
        rig.warm()
        texts = list(rig.queries.values())
        results = rig.run([texts[i % len(texts)] for i in range(n)], rate, use_cache=False)
    finally:
        rig.close()
    lat = [r[0] for r in results]
    stages: dict[str, list[float]] = {}
    for _, a in results:
        for k, v in a.get("timings_ms", {}).items():
            stages.setdefault(k, []).append(v)
    res = {
        "machine": machine(s), "chunks": rig.chunks, "queries": n, "answered": len(lat), "rate_per_s": rate,
        "round_trip_ms": _pcts(lat),
        "stage_mean_ms": {k: round(float(np.mean(v)), 2) for k, v in stages.items()},
        "stage_p95_ms": {k: round(float(np.percentile(v, 95)), 2) for k, v in stages.items()},
        "_latencies": lat,
    }
    log(f"round trip over {len(lat)}/{n} answers at {rate}/s: {res['round_trip_ms']}  stages(mean) {res['stage_mean_ms']}")
    return res


PARAPHRASES = ["{q}", "{ql}?", "Is it true that {ql}?", "Evidence for: {q}", "{q} Is that right?"]


def bench_cache(s: Settings, dataset: Path, n_base: int, rate: float, workdir: Path, log: Log) -> dict[str, Any]:
    """Cache-hit round trip via Kafka, hit rate on paraphrases, semantic lookup latency vs entries."""
    from streamrag.core.cache.semantic_cache import _Matrix

    rig = QueryRig(s, dataset, workdir, log)
    try:
        rig.warm()
        base = list(rig.queries.values())[:n_base]
        fill = rig.run(base, rate)  # fill the cache (misses, unless two questions are near-duplicates)
        time.sleep(0.5)
        repeat = rig.run([base[i % len(base)] for i in range(4 * n_base)], rate)
        paraphrased = [p.format(q=q, ql=q[0].lower() + q[1:].rstrip(".")) for q in base for p in PARAPHRASES[1:]]
        para = rig.run(paraphrased, rate)
    finally:
        rig.close()
    hit_lat = [ms for ms, a in repeat if a.get("cached")]
    para_hits = [a for _, a in para if a.get("cached")]
    # a first-time paraphrase embeds the question before its semantic lookup: its own figure
    sem_lat = [ms for ms, a in para if a.get("cache_lookup") == "semantic"]
    res: dict[str, Any] = {
        "machine": machine(s), "chunks": rig.chunks, "threshold": s.cache_threshold, "rate_per_s": rate,
        "hit_round_trip_ms": _pcts(hit_lat), "repeat_hit_rate": round(len(hit_lat) / max(len(repeat), 1), 4),
        "repeat_lookups": {k: sum(1 for _, a in repeat if a.get("cache_lookup") == k) for k in ("exact", "semantic")},
        "semantic_hit_round_trip_ms": _pcts(sem_lat),
        "paraphrase_hit_rate": round(len(para_hits) / max(len(para), 1), 4),
        "paraphrase_semantic_hits": sum(1 for a in para_hits if a.get("cache_lookup") == "semantic"),
        "paraphrase_exact_hits": sum(1 for a in para_hits if a.get("cache_lookup") == "exact"),
        "paraphrases": len(para), "_latencies": hit_lat,
        # distinct questions served another question's answer (SciFact has claim / counter-claim
        # pairs at cosine 0.97+; the polarity guard refuses those)
        "distinct_questions_served_semantically": sum(1 for _, a in fill if a.get("cached")),
    }
    log(f"cache hit round trip: {res['hit_round_trip_ms']} (repeat hit rate {res['repeat_hit_rate']}, "
        f"{res['repeat_lookups']}); paraphrase hit rate {res['paraphrase_hit_rate']} of {len(para)}; "
        f"first semantic hit round trip (embedding included): {res['semantic_hit_round_trip_ms']}")
    rng = np.random.default_rng(0)
    lookup: dict[str, dict[str, float]] = {}
    for n in (1_000, 10_000, 100_000):
        m = _Matrix(384)
        vs = rng.normal(size=(n, 384)).astype(np.float32)
        vs /= np.linalg.norm(vs, axis=1, keepdims=True)
        for i in range(n):
            m.add(f"k{i}", vs[i])
        qs = vs[rng.integers(0, n, 200)] + rng.normal(scale=0.01, size=(200, 384)).astype(np.float32)
        times = []
        for qv in qs:
            t = time.perf_counter()
            m.search(qv / np.linalg.norm(qv), 0.92)
            times.append((time.perf_counter() - t) * 1000)
        lookup[str(n)] = _pcts(times)
        log(f"semantic lookup at {n} entries: {lookup[str(n)]} ms")
    res["semantic_lookup_ms"] = lookup
    return res


def plot_latencies(lat: list[float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=40)
    for p in (50, 95, 99):
        v = float(np.percentile(lat, p))
        ax.axvline(v, linestyle="--", color="k", linewidth=0.8)
        ax.text(v, ax.get_ylim()[1] * 0.9, f"p{p}", rotation=90, fontsize=8)
    ax.set_xlabel("round trip (ms)")
    ax.set_ylabel("queries")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_scaling(runs: list[dict[str, Any]], raw: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["processes"] for r in runs], [r["chunks_per_s"] for r in runs], marker="o", label="pipeline")
    ax.axhline(raw, linestyle="--", color="gray", label="raw encoder (1 process)")
    ax.set_xlabel("ingest worker processes")
    ax.set_ylabel("chunks/s (Kafka -> searchable)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
