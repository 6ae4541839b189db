"""Many questions at once (real Kafka, a real llama.cpp server batching the packaged small model):
no answer waits for another, a killed worker answers every query it had in flight after its restart,
and with every generation slot busy the worker reads no further records."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from streamrag.core.settings import Settings
from tests.integration.conftest import ROOT, produce, wait_for
from tests.integration.conftest import chunk_rows as rows
from tests.net import free_port

pytestmark = pytest.mark.integration
MODEL = "smollm2-135m-instruct"  # fast: this checks the plumbing, not the answers' quality
LONG = ("Explain at great length every travel rule: hotel nights in Berlin, flights in economy class, trains in "
        "second class and taxi receipts, one long paragraph for each rule.")
SHORT = "What is the wifi password?"


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """scripts/llm-server-up: llama.cpp's own server, 4 parallel sequences, continuous batching."""
    port = free_port()
    env = {**os.environ, "STREAMRAG_LLM_SERVER_PORT": str(port), "STREAMRAG_LLM_SERVER_MODEL": MODEL,
           "STREAMRAG_LLM_SERVER_PARALLEL": "4", "STREAMRAG_LLM_SERVER_CONTEXT": "2048",
           # every answer runs to its token limit: the small model ended the deliberately long answer on its own
           # now and then (within 2 s on a fast CI machine), too soon to see the one slot busy
           "STREAMRAG_LLM_SERVER_ARGS": "--ignore-eos",
           "STREAMRAG_LOCAL_DIR": str(tmp_path_factory.mktemp("llm-server"))}
    subprocess.run(["bash", "scripts/llm-server-up"], env=env, cwd=ROOT, check=True, timeout=1800)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        subprocess.run(["bash", "scripts/llm-server-down"], env=env, cwd=ROOT, check=False, timeout=60)


@pytest.fixture(scope="module")
def indexed(settings: Settings, start_worker: Any) -> Any:
    produce(settings, settings.topics.documents, [
        ("acme/travel", {"op": "upsert", "tenant": "acme", "doc_id": "travel", "version": 1, "title": "Travel policy",
                         "text": "A hotel night in Berlin is reimbursed up to 180 euros. Flights are booked in economy "
                                 "class. Trains are booked in second class. Taxis need a receipt."}),
        ("acme/office", {"op": "upsert", "tenant": "acme", "doc_id": "office", "version": 1, "title": "Office",
                         "text": "The office wifi password is tulip42. The office opens at eight."}),
    ])
    ingest = start_worker("ingest")
    wait_for(lambda: len({r["doc_id"] for r in rows(settings)}) >= 2, timeout=180)
    return ingest


def generating(url: str, concurrency: int, **extra: str) -> dict[str, str]:
    return {"STREAMRAG_GENERATOR": "openai", "STREAMRAG_OPENAI_BASE_URL": url, "STREAMRAG_OPENAI_MODEL": MODEL,
            "STREAMRAG_UNGROUNDED": "flag", "STREAMRAG_CACHE_ENABLED": "false", "STREAMRAG_ANSWER_MAX_TOKENS": "250",
            "STREAMRAG_GENERATION_TIMEOUT_MS": "120000", "STREAMRAG_ANSWER_MIN_SCORE": "0", "STREAMRAG_GENERATION_CONCURRENCY": str(concurrency), **extra}


class AnswerWatch:
    """Everything on the answers topic from now on, with the time each message was seen."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        self.c = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"w-{uuid.uuid4().hex[:6]}",
                           "enable.auto.commit": False})
        topic = settings.topics.answers
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.c.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self.poll(2.0)  # the assignment takes effect (OFFSET_END resolved) before anything is sent

    def poll(self, secs: float = 0.2) -> None:
        import json

        end = time.monotonic() + secs
        while time.monotonic() < end:
            for m in self.c.consume(100, 0.1):
                if m.error() is None and m.value():
                    self.seen.append((time.monotonic(), {**json.loads(m.value()), "_ts": m.timestamp()[1]}))

    def until(self, cond: Any, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.poll()
            if cond():
                return
        raise AssertionError(f"not seen within {timeout}s: {[m for _, m in self.seen][-5:]}")

    def finals(self) -> dict[str, tuple[float, dict[str, Any]]]:
        return {m["query_id"]: (t, m) for t, m in self.seen if m.get("kind") == "final"}

    def first_delta(self, qid: str) -> bool:
        return any(m.get("kind") == "delta" and m["query_id"] == qid for _, m in self.seen)

    def close(self) -> None:
        self.c.close()


def ask(settings: Settings, qid: str, text: str, **extra: Any) -> None:
    produce(settings, settings.topics.queries, [(qid, {"query_id": qid, "tenant": "acme", "text": text, "top_k": 2,
                                                       **extra})])


def test_a_short_question_is_not_held_behind_a_long_answer(settings: Settings, indexed: Any, start_worker: Any,
                                                            llm_server: str) -> None:
    # the long answer takes well over the short one's deadline (with a small prompt, 250 tokens took ~8 s)
    worker = start_worker("query", overrides=generating(llm_server, 4, STREAMRAG_ANSWER_MAX_TOKENS="500"))
    watch = AnswerWatch(settings)
    try:
        ask(settings, "warm", SHORT)  # the worker is up and the server warm
        watch.until(lambda: "warm" in watch.finals(), timeout=300)
        ask(settings, "long", LONG)
        watch.until(lambda: watch.first_delta("long"), timeout=120)  # the long answer is being written
        # the small model writes up to the token limit whatever it is asked: the short question is made short
        # by its own deadline (a user who wants an answer within 5 s), the long one has none
        ask(settings, "short", SHORT, deadline_ms=5000, sent_at=datetime.now(UTC).isoformat())
        watch.until(lambda: {"long", "short"} <= set(watch.finals()), timeout=300)
        finals = watch.finals()
        short_first = min(t for t, m in watch.seen if m["query_id"] == "short" and m.get("kind") == "delta")
        t0 = min(t for t, m in watch.seen if m["query_id"] == "long")
        trace = [(round(t - t0, 2), m["_ts"], m["query_id"], m.get("kind"), m.get("seq")) for t, m in watch.seen
                 if m["query_id"] in ("long", "short")]
        assert short_first < finals["long"][0], ("the model did not write the short answer while the long one was written",
                                                 finals["short"][1], trace)
        assert finals["short"][0] < finals["long"][0], (
            "the short question waited for the long one", finals["short"][1], finals["long"][1]["timings_ms"])
        assert finals["long"][1]["status"] == "ok" and finals["long"][1]["usage"]["completion_tokens"] == 500
    finally:
        watch.close()
        worker.kill()


def test_a_killed_worker_answers_every_query_it_had_in_flight(settings: Settings, indexed: Any, start_worker: Any,
                                                               llm_server: str) -> None:
    env = generating(llm_server, 8, STREAMRAG_QUERY_GROUP=f"kill-{uuid.uuid4().hex[:6]}", STREAMRAG_ANSWER_MAX_TOKENS="160")
    watch = AnswerWatch(settings)
    try:
        first = start_worker("query", overrides=env)
        ids = [f"k{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
        for i, qid in enumerate(ids):
            ask(settings, qid, LONG if i % 2 else SHORT)
        # some answered, and their offsets had time to be committed (every 5 s), while others are in flight
        watch.until(lambda: set(ids) & set(watch.finals()), timeout=300)
        time.sleep(6)
        first.kill(signal.SIGKILL)
        before = set(watch.finals()) & set(ids)
        assert len(before) < 8, "everything was answered before the kill: nothing was in flight"
        second = start_worker("query", overrides=env)
        watch.until(lambda: set(ids) <= set(watch.finals()), timeout=600)
        assert all(watch.finals()[q][1]["status"] in ("ok", "no_answer") for q in ids)
        second.kill()
    finally:
        watch.close()


def read_offset(port: int, topic: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("streamrag_query_read_offset{") and f'topic="{topic}"' in line)


def test_with_every_slot_busy_the_worker_reads_no_further_records(settings: Settings, indexed: Any,
                                                                   start_worker: Any, llm_server: str) -> None:
    # the query worker serves STREAMRAG_METRICS_PORT + 1: that port is the free one found, not its neighbour (Linux
    # hands out odd ports to bind(0) and even ones to connect(): an even neighbour was sometimes a Kafka client's
    # local port, the metrics endpoint did not start, and the test waited for it in vain)
    port = free_port()
    base = port - 1
    env = generating(llm_server, 1, STREAMRAG_QUERY_GROUP=f"bp-{uuid.uuid4().hex[:6]}", STREAMRAG_METRICS_PORT=str(base),
                     STREAMRAG_ANSWER_MAX_TOKENS="1500",  # the long answer keeps the one slot busy for seconds even on a fast machine
                     STREAMRAG_GENERATION_QUEUE="0")  # no queries waiting beyond the slots (tests/unit/test_answer_sources.py has the queue)
    watch = AnswerWatch(settings)
    try:
        worker = start_worker("query", overrides=env)
        topic = settings.topics.queries
        wait_for(lambda: read_offset(port, topic) >= 0 and worker.alive(), timeout=300)
        ask(settings, "bp-long", LONG)
        watch.until(lambda: watch.first_delta("bp-long"), timeout=300)  # the one slot is busy
        held = read_offset(port, topic)
        waiting = [f"bp-{i}" for i in range(3)]
        for qid in waiting:
            ask(settings, qid, SHORT)
        time.sleep(2)
        watch.poll()
        assert "bp-long" not in watch.finals(), "the long answer ended too soon to see the slot busy"
        assert read_offset(port, topic) == held, "records were read while every slot was busy"
        watch.until(lambda: set(waiting) <= set(watch.finals()), timeout=600)
        wait_for(lambda: read_offset(port, topic) >= held + 3, timeout=30)  # it resumed when the slot freed
        assert watch.finals()["bp-long"][0] < min(watch.finals()[q][0] for q in waiting)
    finally:
        watch.close()
