"""``streamrag bench query`` and ``bench cache``: publish -> answer round trips through a real query worker."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from streamrag.connectors.embedding_cache import CachingEmbedder
from streamrag.connectors.kafka_admin import client_config, ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.cache.vector_index import VectorIndex
from streamrag.core.percentiles import percentile, percentiles
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_store
from streamrag.tools.bench_common import Log, bench_env, machine, start_workers, stop
from streamrag.tools.evaluate import corpus_records, index_corpus, load_beir


class QueryRig:
    """A query worker over the dataset's index (built once with the embedding cache), and a
    client that publishes queries and times each answer."""

    def __init__(self, s: Settings, dataset: Path, workdir: Path, log: Log, extra_env: dict[str, str] | None = None,
                 logdir: Path | None = None) -> None:
        corpus, self.queries, _ = load_beir(dataset)
        # a local index in the work folder, or one under the object store's prefix (STREAMRAG_LANCEDB_URI=s3://...,
        # credentials from AWS_*), one per dataset, built once either way; the embedding cache is a local file in both
        local = s.lancedb_is_local
        db: Path | str = workdir / f"query-index-{dataset.name}" if local else f"{s.index.lancedb_uri}/bench-query-{dataset.name}"
        self.store_kind = "local" if local else s.index.lancedb_uri.split("://")[0]
        is_ = s.model_copy(update={"lancedb_uri": str(db), "optimize_every_s": 1e9})
        store = make_store(is_)
        if store.table("chunks") is None:
            cache_dir = Path(s.lancedb_path()).parent if local else workdir.parent
            emb = CachingEmbedder(embedder_for(is_), cache_dir / "embcache.sqlite")
            index_corpus(is_, store, emb, corpus_records(corpus))
            store.maintain(force=True)
        self.chunks = store.table("chunks").count_rows()  # type: ignore[union-attr]
        log(f"index: {self.chunks} chunks at {db}")
        self.tag = uuid.uuid4().hex[:6]
        self.bs, env = bench_env(s, self.tag, db, 2)
        env["STREAMRAG_REDIS_URL"] = s.redis.url
        env["STREAMRAG_CACHE_REDIS_PREFIX"] = f"streamrag:bench-{self.tag}:"  # a cold cache for every run
        env["STREAMRAG_CACHE_TTL_S"] = "900"
        # the retrieval and cache path: answers written by the extractive tier unless a caller asks for a model
        # (the local model takes seconds per question on CPU: bench generate and bench load measure it)
        env["STREAMRAG_GENERATOR"] = "extractive"
        self.generator = (extra_env or {}).get("STREAMRAG_GENERATOR", "extractive")
        ensure_topics(self.bs.kafka, self.bs.topic_layout, 2)
        self.workdir = logdir or workdir  # the worker's log: query-0.log
        self.launched = time.perf_counter()
        self.procs = start_workers("query", env, 1, self.workdir, extra_env)
        self.got: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._consume, daemon=True)
        self._th.start()
        self.prod = JsonProducer(self.bs.kafka, self.bs.worker)

    def _consume(self) -> None:
        c = Consumer(client_config(self.bs.kafka, **{"group.id": f"bench-{self.tag}", "enable.auto.commit": False}))
        c.assign([TopicPartition(self.bs.topics.answers, p, 0) for p in range(2)])
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
            self.prod.send(self.bs.topics.queries, qid, {"query_id": qid, "tenant": "eval", "text": "warm up",
                                                        "options": {"use_cache": False}})
            self.prod.flush()
            time.sleep(1.0)
            if qid in self.got:
                return
            if time.monotonic() > deadline or self.procs[0].poll() is not None:
                raise RuntimeError(f"query worker did not answer (logs in {self.workdir})")

    def settle(self, timeout_s: float = 240.0, busy: float = 0.2) -> float:
        """Wait until the worker's background work after its first question is done (the fusion evidence of the
        tenant, measured once an hour: hundreds of texts embedded, tens of seconds of CPU here): its CPU under
        ``busy`` of a core over 2 s. Seconds waited (Linux: /proc; elsewhere none)."""
        t0 = time.monotonic()
        before = _cpu_s(self.procs[0].pid)
        while before is not None and time.monotonic() - t0 < timeout_s:
            time.sleep(2.0)
            now = _cpu_s(self.procs[0].pid)
            if now is None or now - before < 2.0 * busy:
                break
            before = now
        return time.monotonic() - t0

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
            self.prod.send(self.bs.topics.queries, qid, body)
            self.prod.producer.flush(1)
        deadline = time.monotonic() + 60
        while len([q for q in sent if q in self.got]) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        return [((self.got[q][0] - t) * 1000, self.got[q][1]) for q, t in sent.items() if q in self.got]

    def close(self) -> None:
        self._stop.set()
        stop(self.procs)


def _cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of a process so far, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pcts(lat: list[float]) -> dict[str, float]:
    return percentiles(lat) if lat else {}


def bench_query(s: Settings, dataset: Path, n: int, rate: float, workdir: Path, log: Log) -> dict[str, Any]:
    """Round trip publish -> answer (cache off) at a steady rate, with per-stage timings."""
    rig = QueryRig(s, dataset, workdir, log)
    try:
        rig.warm()
        log(f"worker settled after its first question in {rig.settle():.0f} s (fusion evidence measured)")
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
        "machine": machine(s), "store": rig.store_kind, "chunks": rig.chunks, "generator": rig.generator, "queries": n,
        "answered": len(lat),
        "rate_per_s": rate,
        "round_trip_ms": _pcts(lat),
        "stage_mean_ms": {k: round(float(np.mean(v)), 2) for k, v in stages.items()},
        "stage_p95_ms": {k: percentile(v, 95, 2) for k, v in stages.items()},
        "_latencies": lat,
    }
    log(f"round trip over {len(lat)}/{n} answers at {rate}/s (generator {rig.generator}): {res['round_trip_ms']}  "
        f"stages(mean) {res['stage_mean_ms']}")
    return res


PARAPHRASES = ["{q}", "{ql}?", "Is it true that {ql}?", "Evidence for: {q}", "{q} Is that right?"]


def bench_cache(s: Settings, dataset: Path, n_base: int, rate: float, workdir: Path, log: Log) -> dict[str, Any]:
    """Cache-hit round trip via Kafka, hit rate on paraphrases, semantic lookup latency vs entries."""
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
        "machine": machine(s), "chunks": rig.chunks, "generator": rig.generator, "threshold": s.cache.threshold,
        "rate_per_s": rate,
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
        m = VectorIndex(384)
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
