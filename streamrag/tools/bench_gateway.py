"""``streamrag bench gateway``: the HTTP gateway's cost over asking Kafka directly, and the requests/s one
gateway process sustains.

One query worker (extractive answers, cache off: generation and cache hits do not hide the overhead) over a
small index; one gateway process. Round trips are measured alternately, same run, same questions: straight
to Kafka (publish with reply_to, wait on a reply topic read by a long-lived consumer, as the gateway does) and
through the gateway (``POST /v1/query`` on a kept-alive HTTP connection). Then C clients in parallel for a
fixed time, each way, and ``GET /healthz`` alone (the HTTP layer's own ceiling).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from streamrag.connectors.kafka_admin import ensure_topics
from streamrag.connectors.kafka_replies import ReplyRouter
from streamrag.connectors.kafka_reply_topics import ensure_reply_topic
from streamrag.core.percentiles import percentiles
from streamrag.core.settings import Settings
from streamrag.flows.local import index_paths
from streamrag.schemas.models import Query
from streamrag.tools.bench_common import Log, bench_env, load_docs, machine, start_workers, stop

TENANT = "bench"
QUESTIONS = ["how is the stream indexed", "which tenant owns the cache", "what does the query answer",
             "where is the vector model", "why does the kafka latency grow", "when is a chunk embedded"]


class DirectClient:
    """Queries straight to Kafka: one reply topic, one consumer, waiters by query_id (what the gateway does)."""

    def __init__(self, s: Settings, topic: str) -> None:
        self.s, self.topic = s, topic
        ensure_reply_topic(s.kafka, topic)
        self.router = ReplyRouter(s.kafka, [topic])
        self.router.start()

    def ask(self, text: str, timeout: float = 30.0) -> float:
        qid = uuid.uuid4().hex
        done = threading.Event()
        self.router.register(qid, lambda item: done.set() if isinstance(item, dict) and item.get("kind") != "delta" else None)
        q = Query(query_id=qid, tenant=TENANT, text=text, reply_to=self.topic)
        t0 = time.perf_counter()
        try:
            self.router.send(self.s.topics.queries, qid, q.model_dump_json(exclude_none=True).encode(), qid)
            if not done.wait(timeout):
                raise TimeoutError(f"no answer to {qid} within {timeout} s")
            return time.perf_counter() - t0
        finally:
            self.router.unregister(qid)


class HttpClient:
    """One kept-alive connection per thread to the gateway."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return c

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, float]:
        c = self._conn()
        data = json.dumps(body).encode() if body is not None else None
        t0 = time.perf_counter()
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0

    def ask(self, text: str) -> float:
        status, el = self.request("POST", "/v1/query", {"tenant": TENANT, "text": text})
        if status != 200:
            raise RuntimeError(f"gateway answered {status}")
        return el


def _pcts(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000
    return {"n": len(xs), **percentiles(a, suffix="_ms"), "mean_ms": round(float(a.mean()), 2)}


def _throughput(fn: Any, clients: int, seconds: float) -> dict[str, float]:
    stop_at = time.monotonic() + seconds
    counts = [0] * clients
    errors = [0] * clients

    def loop(i: int) -> None:
        k = 0
        while time.monotonic() < stop_at:
            try:
                fn(QUESTIONS[(i + k) % len(QUESTIONS)])
                counts[i] += 1
            except Exception:
                errors[i] += 1
            k += 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(loop, range(clients)))
    el = time.perf_counter() - t0
    return {"clients": clients, "seconds": round(el, 1), "requests": sum(counts), "errors": sum(errors),
            "requests_per_s": round(sum(counts) / el, 1)}


def _wait_ready(http_client: HttpClient, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the gateway exited (see its log)")
        try:
            http_client.ask("warm up")
            return
        except (OSError, RuntimeError):
            http_client.local.c = None
            time.sleep(0.5)
    raise RuntimeError("the gateway did not answer in time")


def bench_gateway(s: Settings, n: int, clients: int, seconds: float, workdir: Path, log: Log) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    db = workdir / f"gateway-{tag}"
    bs, env = bench_env(s, tag, db / "lancedb", 2)
    bs = bs.model_copy(update={"topic_feedback": f"bench-{tag}.feedback", "state_dir": str(db / "state")})
    env.update({"STREAMRAG_GENERATOR": "extractive", "STREAMRAG_CACHE_ENABLED": "false", "STREAMRAG_METRICS_PORT": "0",
                "STREAMRAG_TOPIC_FEEDBACK": bs.topics.feedback, "STREAMRAG_STATE_DIR": str(db / "state"),
                "STREAMRAG_GATEWAY_RATE_LIMIT": "", "STREAMRAG_REDIS_URL": s.redis.url})
    ensure_topics(bs.kafka, bs.topic_layout, 2)
    docs_dir = db / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    for d in load_docs(None, 40):
        (docs_dir / f"{d['doc_id']}.md").write_text(f"# {d['title']}\n\n{d['text']}\n")
    index_paths(bs, [docs_dir], TENANT)
    log(f"index: 40 synthetic documents at {db}")
    workers = start_workers("query", env, 1, db)
    port = 20000 + os.getpid() % 20000
    gw_env = {**os.environ, **env, "STREAMRAG_GATEWAY_REPLY_TOPIC": f"streamrag.replies.bench-{tag}-gw", "HF_HUB_OFFLINE": "1"}
    gw = subprocess.Popen([sys.executable, "-m", "streamrag.cli", "gateway", "--port", str(port)], env=gw_env,
                          stdout=(db / "gateway.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        direct = DirectClient(bs, f"streamrag.replies.bench-{tag}-direct")
        web = HttpClient(port)
        _wait_ready(web, gw)
        for q in QUESTIONS:  # both paths warm
            direct.ask(q)
            web.ask(q)
        log(f"round trips: {n} each way, alternating")
        d_lat: list[float] = []
        g_lat: list[float] = []
        for i in range(n):
            q = QUESTIONS[i % len(QUESTIONS)]
            d_lat.append(direct.ask(q))
            g_lat.append(web.ask(q))
        log(f"throughput: {clients} clients x {seconds:g} s each way, then /healthz")
        tp_gateway = _throughput(web.ask, clients, seconds)
        tp_direct = _throughput(direct.ask, clients, seconds)
        tp_health = _throughput(lambda _q: web.request("GET", "/healthz"), clients, seconds / 2)
        direct.router.stop()
        dp, gp = _pcts(d_lat), _pcts(g_lat)
        return {
            "machine": machine(s), "chunks": None, "generator": "extractive", "cache": "off",
            "direct_kafka": dp, "gateway": gp,
            "overhead_ms": {"p50": round(gp["p50_ms"] - dp["p50_ms"], 2), "p95": round(gp["p95_ms"] - dp["p95_ms"], 2)},
            "throughput": {"gateway_query": tp_gateway, "direct_kafka_query": tp_direct, "gateway_healthz": tp_health},
        }
    finally:
        stop([gw, *workers])
