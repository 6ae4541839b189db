"""``streamrag bench load``: open-loop (Poisson) arrivals at each offered rate through one query worker.

The tool starts its own query worker (``--generator``: the in-process local model, or the OpenAI-compatible
server in STREAMRAG_OPENAI_*, e.g. scripts/llm-server-up), on its own consumer group, over the index
the settings name (publish documents first, e.g. ``streamrag publish docs/ --tenant acme``). For each rate it
sends questions at exponential inter-arrival times for ``duration`` seconds, reads the answers topic,
and reports per query the time to its sources (the first message of a streamed answer, sent right after
retrieval: ``sources_ms``), to the first delta (TTFT) and to the final answer: p50/p95/p99,
answers/s, errors, expired and fallback answers. Arrivals never wait for answers (open loop), so past
the worker's capacity the latencies grow without bound: where the curve bends is the capacity.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from streamrag.connectors.kafka_admin import check_reachable, client_config, ensure_topics
from streamrag.core.errors import StreamragError
from streamrag.core.percentiles import percentiles
from streamrag.core.settings import Settings, settings_env
from streamrag.schemas.vocabulary import ErrorCode

QUESTIONS = [
    "What happens when an older version of a document arrives after a newer one?",
    "Who can see a document that has no ACL?",
    "How do I scale embedding throughput?",
    "How are temporary failures retried?",
    "What does the semantic cache key contain?",
    "How is a stale version handled?",
    "What goes to the dead-letter topic?",
    "When is an ANN index built?",
]
# the answers counted as expired: too old when read, or past their deadline before an answer
EXPIRED_CODES: frozenset[ErrorCode] = frozenset({"expired", "deadline_exceeded"})


# every question streams: its sources, then its deltas, then its final answer
STREAM = {"stream": True}


@dataclass
class Sent:
    at: float
    sources: float | None = None
    first: float | None = None
    final: float | None = None
    answer: dict[str, Any] = field(default_factory=dict)


def _pct(xs: list[float]) -> dict[str, float | None]:
    got: dict[str, float | None] = {"p50": None, "p95": None, "p99": None}
    got.update(percentiles(xs, digits=1))
    return got


class Answers:
    def __init__(self, s: Settings) -> None:
        self.c = Consumer(client_config(s.kafka, **{"group.id": f"bench-load-{uuid.uuid4().hex[:6]}",
                                                    "enable.auto.commit": False}))
        topic = s.topics.answers
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.c.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
        self.poll(1.0)

    def poll(self, secs: float, sent: dict[str, Sent] | None = None) -> None:
        end = time.monotonic() + secs
        while True:
            for m in self.c.consume(200, max(0.0, min(0.05, end - time.monotonic()))):
                value = m.value()
                if m.error() is not None or not value or sent is None:
                    continue
                a = json.loads(value)
                q = sent.get(a.get("query_id", ""))
                if q is None:
                    continue
                now = time.monotonic()
                if a.get("kind") == "sources" and q.sources is None:
                    q.sources = now
                elif a.get("kind") == "delta" and q.first is None:
                    q.first = now
                elif a.get("kind") == "final" and q.final is None:
                    q.final, q.answer = now, a
            if time.monotonic() >= end:
                return


def _worker(s: Settings, generator: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings_env(s), "STREAMRAG_GENERATOR": generator, "STREAMRAG_CACHE_ENABLED": "false",
           "STREAMRAG_QUERY_GROUP": f"bench-load-{uuid.uuid4().hex[:8]}", "STREAMRAG_METRICS_PORT": "0",
           "STREAMRAG_STREAM_DELTAS": "true"}
    return subprocess.Popen([sys.executable, "-m", "streamrag.cli", "worker", "query"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _one_rate(s: Settings, p: Producer, answers: Answers, rate: float, duration: float, tenant: str,
              drain_s: float, rng: random.Random) -> dict[str, Any]:
    sent: dict[str, Sent] = {}
    t0 = time.monotonic()
    due = t0 + rng.expovariate(rate)
    while due < t0 + duration:
        answers.poll(max(0.0, due - time.monotonic()), sent)
        qid = f"load-{uuid.uuid4().hex[:10]}"
        body = {"query_id": qid, "tenant": tenant, "text": rng.choice(QUESTIONS), "top_k": 3, "options": STREAM}
        p.produce(s.topics.queries, key=qid.encode(), value=json.dumps(body).encode())
        p.poll(0)
        sent[qid] = Sent(time.monotonic())
        due += rng.expovariate(rate)
    p.flush(10)
    end = time.monotonic() + drain_s
    while time.monotonic() < end and any(q.final is None for q in sent.values()):
        answers.poll(0.5, sent)
    done = [q for q in sent.values() if q.final is not None]
    statuses = [q.answer.get("status") for q in done]
    span = (max(q.final for q in done if q.final) - t0) if done else 0.0
    return {
        "offered_per_s": rate, "sent": len(sent), "answered": len(done), "missing": len(sent) - len(done),
        "answers_per_s": round(len(done) / span, 3) if span else 0.0,
        # time to sources in milliseconds (retrieval's tens of ms; no model in the way)
        "sources_ms": _pct([(q.sources - q.at) * 1000 for q in done if q.sources is not None]),
        "ttft_s": _pct([q.first - q.at for q in done if q.first is not None]),
        "final_s": _pct([q.final - q.at for q in done if q.final is not None]),
        "errors": sum(1 for x in statuses if x == "error"),
        "expired": sum(1 for q in done if q.answer.get("code") in EXPIRED_CODES),
        "fallbacks": sum(1 for q in done if q.answer.get("fallback")),
        "fallback_reasons": sorted({r for q in done for r in q.answer.get("fallback") or []}),
        "no_answer": sum(1 for x in statuses if x == "no_answer"),
    }


def _burst(s: Settings, p: Producer, answers: Answers, n: int, tenant: str, drain_s: float) -> dict[str, Any]:
    """``n`` distinct questions at once: each one's first delta and final answer, in seconds from the send."""
    sent: dict[str, Sent] = {}
    for i in range(n):
        qid = f"burst-{i}-{uuid.uuid4().hex[:6]}"
        body = {"query_id": qid, "tenant": tenant, "text": QUESTIONS[i % len(QUESTIONS)], "top_k": 3, "options": STREAM}
        p.produce(s.topics.queries, key=qid.encode(), value=json.dumps(body).encode())
        sent[qid] = Sent(time.monotonic())
    p.flush(10)
    end = time.monotonic() + drain_s
    while time.monotonic() < end and any(q.final is None for q in sent.values()):
        answers.poll(0.5, sent)
    return {"burst": n, "queries": [
        {"sources_ms": None if q.sources is None else round((q.sources - q.at) * 1000, 1),
         "first_delta_s": None if q.first is None else round(q.first - q.at, 1),
         "final_s": None if q.final is None else round(q.final - q.at, 1),
         "status": q.answer.get("status"), "generator": q.answer.get("generator"), "fallback": q.answer.get("fallback"),
         "prompt_tokens": (q.answer.get("usage") or {}).get("prompt_tokens"),
         "completion_tokens": (q.answer.get("usage") or {}).get("completion_tokens")}
        for q in sorted(sent.values(), key=lambda q: q.final or float("inf"))]}


def run_load(s: Settings, rates: list[float], duration: float, generator: str, tenant: str = "acme",
             drain_s: float = 300.0, seed: int = 0, log_dir: Path = Path(".local"),
             bursts: list[int] | None = None,
             closed_loop: Callable[[Producer, Answers], dict[str, Any]] | None = None) -> dict[str, Any]:
    """``closed_loop``: instead of rates or bursts, a measurement of its own against the warm worker."""
    if not bursts and not closed_loop and (not rates or any(r <= 0 for r in rates)):
        raise StreamragError("--rates takes positive queries per second, e.g. 0.05,0.1,0.2")
    check_reachable(s.kafka)
    ensure_topics(s.kafka, s.topic_layout)
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = _worker(s, generator, log_dir / "bench-load-worker.log")
    p = Producer(client_config(s.kafka, **{"linger.ms": 0}))
    answers = Answers(s)
    rng = random.Random(seed)
    try:
        qid = f"load-warm-{uuid.uuid4().hex[:6]}"
        warm = {qid: Sent(time.monotonic())}  # the worker is up, its models loaded, before the clock starts
        p.produce(s.topics.queries, key=qid.encode(),
                  value=json.dumps({"query_id": qid, "tenant": tenant, "text": QUESTIONS[0]}).encode())
        p.flush(10)
        end = time.monotonic() + 900
        while warm[qid].final is None:
            if time.monotonic() > end or proc.poll() is not None:
                raise StreamragError(f"the query worker did not answer (see {log_dir / 'bench-load-worker.log'})")
            answers.poll(0.5, warm)
        if warm[qid].answer.get("status") == "no_answer":
            raise StreamragError(f"tenant {tenant!r} has no documents that answer: publish some first")
        if closed_loop is not None:
            return {"generator": generator, "concurrency": s.generation.generation_concurrency,
                    **closed_loop(p, answers)}
        if bursts:
            return {"generator": generator, "concurrency": s.generation.generation_concurrency,
                    "bursts": [_burst(s, p, answers, n, tenant, drain_s) for n in bursts]}
        runs = [_one_rate(s, p, answers, r, duration, tenant, drain_s, rng) for r in rates]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return {"generator": generator, "concurrency": s.generation.generation_concurrency, "duration_s": duration,
            "tenant": tenant, "runs": runs}


def plot_load(rep: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = rep["runs"]
    x = [r["answers_per_s"] for r in runs]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, style in (("final_s", "-o"), ("ttft_s", "--s")):
        for pct in ("p50", "p95"):
            ax.plot(x, [r[key][pct] for r in runs], style, label=f"{key.split('_')[0]} {pct}")
    ax.set_xlabel("answers/s delivered")
    ax.set_ylabel("seconds")
    ax.set_title(f"bench load: {rep['generator']}, concurrency {rep['concurrency']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
