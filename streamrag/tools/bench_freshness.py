"""``streamrag bench freshness``: a changed document, published, until a query through the query worker finds it.

One ingest and one query worker run against Kafka over an index of real abstracts (seeded in-process with
the embedding cache). One document is changed N times, each time with a new unique token; after each
publish a client asks the query worker, one question at a time, until an answer cites the new text.

Each change's time is split by stage: Kafka to the worker and batch wait (publish to the ingest batch's
start), the ingest stages (the worker's ``streamrag_stage_seconds`` histograms, read from its /metrics
before and after: a quiet stream makes each change a batch of its own), index visibility on the query side
(from the write's end until the question that found the change was sent) and that question's round trip.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from streamrag.connectors.embedding_cache import CachingEmbedder
from streamrag.connectors.kafka_admin import client_config, ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.percentiles import percentiles
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_store
from streamrag.schemas.vocabulary import INGEST_STAGES
from streamrag.tools.bench_common import Log, bench_env, machine, start_workers, stop
from streamrag.tools.evaluate import TENANT, corpus_records, index_corpus, load_beir

PROBE = "freshness-probe"
PROBE_TEXT = "{token} is the calibration code of the glacier turbine's flow meter, logged at {at}."
QUESTION = "What is the calibration code of the glacier turbine flow meter {token}?"


def stage_sums(url: str) -> dict[str, float]:
    """The ingest worker's seconds per stage so far, from its /metrics."""
    with urllib.request.urlopen(url, timeout=5) as r:  # a local worker's /metrics
        return stage_sums_of(r.read().decode())


def stage_sums_of(text: str) -> dict[str, float]:
    """Seconds per ingest stage in a /metrics page (sums of ``streamrag_stage_seconds{flow="ingest"}``)."""
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "streamrag_stage_seconds":
            for smp in fam.samples:
                if smp.name.endswith("_sum") and smp.labels.get("flow") == "ingest":
                    out[smp.labels["stage"]] = smp.value
    return out


class FreshnessRig:
    """An index of ``docs`` abstracts, an ingest and a query worker on their own topics, and a client."""

    def __init__(self, s: Settings, dataset: Path | None, docs: int, workdir: Path, log: Log) -> None:
        self.log, self.workdir = log, workdir
        db = workdir / "fresh-index"
        is_ = s.model_copy(update={"lancedb_uri": str(db)})
        store = make_store(is_)
        self.chunks = 0
        if dataset is not None and docs:
            corpus = load_beir(dataset)[0]
            emb = CachingEmbedder(embedder_for(is_), Path(s.lancedb_path()).parent / "embcache.sqlite")
            self.chunks = index_corpus(is_, store, emb, islice(corpus_records(corpus), docs))["chunks"]
            store.maintain(force=True)
        log(f"index: {self.chunks} chunks of {docs} documents at {db}")
        self.tag = uuid.uuid4().hex[:6]
        self.bs, env = bench_env(s, f"fresh-{self.tag}", db, 1)
        base = 25000 + (os.getpid() % 1000) * 3  # metrics ports of this run's workers (others may run beside it)
        env.update({"STREAMRAG_METRICS_PORT": str(base), "STREAMRAG_GENERATOR": "extractive",
                    "STREAMRAG_CACHE_ENABLED": "false", "STREAMRAG_QUERY_GROUP": f"bench-fresh-q-{self.tag}",
                    "STREAMRAG_STATE_DIR": str(workdir / "state")})
        self.metrics_url = f"http://127.0.0.1:{base}/metrics"
        ensure_topics(self.bs.kafka, self.bs.topic_layout, 1)
        self.procs = start_workers("ingest", env, 1, workdir) + start_workers("query", env, 1, workdir)
        self.answers: dict[str, tuple[float, dict[str, Any]]] = {}
        self.events: dict[int, tuple[float, dict[str, Any]]] = {}  # probe version -> (seen at, event)
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._consume, daemon=True)
        self._th.start()
        self.prod = JsonProducer(self.bs.kafka, self.bs.worker)

    def wait_evidence(self, timeout_s: float) -> None:
        """Until the query worker has measured the tenant's fusion evidence (its log says so), which it does in
        the background after the first question (and again an hour later): the steady state is what is timed."""
        logfile, deadline = self.workdir / "query-0.log", time.monotonic() + timeout_s
        while time.monotonic() < deadline and "fusion evidence for" not in logfile.read_text(errors="replace"):
            time.sleep(0.2)

    def _consume(self) -> None:
        c = Consumer(client_config(self.bs.kafka, **{"group.id": f"bench-{self.tag}", "enable.auto.commit": False}))
        c.assign([TopicPartition(self.bs.topics.answers, 0, 0), TopicPartition(self.bs.topics.index_events, 0, 0)])
        while not self._stop.is_set():
            m = c.poll(0.01)
            if m is None or m.error() is not None or not m.value():
                continue
            now = time.time()
            v = json.loads(m.value() or b"{}")
            if m.topic() == self.bs.topics.answers:
                self.answers[v["query_id"]] = (now, v)
            elif v.get("doc_id") == PROBE:
                self.events[int(v["version"])] = (now, v)
        c.close()

    def _alive(self) -> None:
        if any(p.poll() is not None for p in self.procs):
            raise RuntimeError(f"a worker stopped (logs in {self.workdir})")

    def publish(self, token: str, version: int) -> float:
        text = PROBE_TEXT.format(token=token, at=datetime.now().isoformat(timespec="seconds"))
        body = {"op": "upsert", "tenant": TENANT, "doc_id": PROBE, "version": version, "title": "Turbine log", "text": text}
        t = time.time()
        self.prod.send(self.bs.topics.documents, f"{TENANT}/{PROBE}", body)
        self.prod.producer.flush(5)
        return t

    def ask(self, token: str, timeout_s: float = 30.0) -> tuple[float, float, dict[str, Any]]:
        """(sent at, answered at, answer) of one question through the query worker."""
        qid = uuid.uuid4().hex
        body = {"query_id": qid, "tenant": TENANT, "text": QUESTION.format(token=token), "top_k": 3,
                "options": {"use_cache": False}}
        sent = time.time()
        self.prod.send(self.bs.topics.queries, qid, body)
        self.prod.producer.flush(5)
        deadline = time.monotonic() + timeout_s
        while qid not in self.answers:
            if time.monotonic() > deadline:
                self._alive()
                raise RuntimeError(f"no answer within {timeout_s} s (logs in {self.workdir})")
            time.sleep(0.001)
        at, a = self.answers.pop(qid)
        return sent, at, a

    def wait_event(self, version: int, timeout_s: float) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while version not in self.events:
            if time.monotonic() > deadline:
                self._alive()
                raise RuntimeError(f"no index event for version {version} within {timeout_s} s (logs in {self.workdir})")
            time.sleep(0.005)
        return self.events[version]

    def close(self) -> None:
        self._stop.set()
        stop(self.procs)


def found(a: dict[str, Any], token: str) -> bool:
    return any(token in (c.get("snippet") or "") for c in a.get("citations", []))


def one_change(rig: FreshnessRig, version: int, timeout_s: float = 30.0) -> dict[str, float]:
    """Publish a change; ask until an answer has it. Times in ms, by stage."""
    token = f"zq{uuid.uuid4().hex[:10]}"
    before = stage_sums(rig.metrics_url)
    t_pub = rig.publish(token, version)
    deadline = time.monotonic() + timeout_s
    while True:
        sent, at, a = rig.ask(token)
        if found(a, token):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"change v{version} not found within {timeout_s} s")
    _, ev = rig.wait_event(version, 10)
    indexed_at = datetime.fromisoformat(ev["indexed_at"]).timestamp()
    after = stage_sums(rig.metrics_url)
    stages = {k: (after.get(k, 0.0) - before.get(k, 0.0)) * 1000 for k in INGEST_STAGES}
    ingest_ms = (indexed_at - t_pub) * 1000
    search = {k: float(v) for k, v in (a.get("timings_ms") or {}).items()}
    return {
        "total": (at - t_pub) * 1000,
        "kafka_and_batch_wait": ingest_ms - sum(stages.values()),
        "parse_to_stale_check": sum(stages[k] for k in INGEST_STAGES[: INGEST_STAGES.index("chunk")]),
        "chunk_embed": stages["chunk"] + stages["embed"],
        "write_commit": stages["write"],
        "visibility": max((sent - indexed_at) * 1000, 0.0),  # from the write's end to the question that found it
        "query_round_trip": (at - sent) * 1000,
        "query_worker_ms": sum(search.values()),
        **{f"query.{k}": v for k, v in search.items()},
    }


def _pcts(v: list[float]) -> dict[str, float]:
    return {**percentiles(v, (50, 95), digits=1),
            "mean": round(float(np.mean(v)), 1)} if v else {}


def bench_freshness(s: Settings, dataset: Path | None, docs: int, changes: int, workdir: Path, log: Log,
                    pause_s: float = 0.3) -> dict[str, Any]:
    """``changes`` changes of one document, one at a time on a quiet stream: publish -> found, by stage."""
    rig = FreshnessRig(s, dataset, docs, workdir, log)
    runs: list[dict[str, float]] = []
    t_start = time.monotonic()
    try:
        version = int(time.time() * 1000)
        rig.publish("warmup", version)
        rig.wait_event(version, 300)  # the ingest worker is up (its model loaded)
        while not found(rig.ask("warmup", timeout_s=300)[2], "warmup"):  # the query worker is up and sees the index
            time.sleep(0.1)
        log(f"workers ready after {time.monotonic() - t_start:.1f} s")
        rig.wait_evidence(120)  # the tenant's fusion evidence, measured once an hour in the background: not timed
        for i in range(changes):
            time.sleep(pause_s)  # a quiet stream between changes
            runs.append(one_change(rig, version + 1 + i))
    finally:
        rig.close()
    keys = list(runs[0]) if runs else []
    res: dict[str, Any] = {
        "machine": machine(s), "chunks": rig.chunks, "changes": len(runs),
        "freshness_ms": _pcts([r["total"] for r in runs]),
        "stages_ms": {k: _pcts([r.get(k, 0.0) for r in runs]) for k in keys if k != "total"},
        "_latencies": [r["total"] for r in runs],
    }
    log(f"freshness over {len(runs)} changes ({rig.chunks} chunks): {res['freshness_ms']}")
    for k, v in res["stages_ms"].items():
        log(f"  {k}: {v}")
    return res
