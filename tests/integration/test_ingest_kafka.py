"""Ingest on real Kafka: the worker keeps LanceDB current with the documents topic."""

from __future__ import annotations

import base64
import json
import signal
from typing import Any

import pytest

from streamrag.connectors.kafka_admin import ensure_topics
from streamrag.core.settings import Settings
from tests.integration.conftest import chunk_rows, produce, read_topic, wait_for

pytestmark = pytest.mark.integration

LONG = " ".join(f"Paragraph {i} explains how stream processing keeps indexes current." for i in range(40))


def doc(doc_id: str, version: int, text: str = "", op: str = "upsert", tenant: str = "acme") -> tuple[str, dict[str, Any]]:
    return f"{tenant}/{doc_id}", {"op": op, "tenant": tenant, "doc_id": doc_id, "version": version, "text": text,
                                  "title": doc_id}


def events_for(settings: Settings, n: int) -> list[Any]:
    return read_topic(settings, settings.topics.index_events, lambda m: len(m) >= n, timeout=120)


@pytest.fixture(scope="module")
def worker(start_worker: Any) -> Any:
    return start_worker("ingest")


def test_documents_become_chunks_replay_is_identical(settings: Settings, worker: Any) -> None:
    produce(settings, settings.topics.documents, [doc("a", 1, LONG), doc("b", 1, "A short note about Kafka."),
                                                 doc("c", 1, "LanceDB stores vectors.")])
    ev = events_for(settings, 3)
    assert sorted((e["doc_id"], e["status"]) for e in ev[:3]) == [("a", "indexed"), ("b", "indexed"), ("c", "indexed")]
    rows = chunk_rows(settings, "acme")
    by_doc: dict[str, int] = {}
    for r in rows:
        by_doc[r["doc_id"]] = by_doc.get(r["doc_id"], 0) + 1
    assert by_doc["a"] == next(e["chunk_count"] for e in ev if e["doc_id"] == "a") and by_doc["a"] > 3
    assert by_doc["b"] == by_doc["c"] == 1
    assert len({r["id"] for r in rows}) == len(rows)

    # republishing everything leaves identical rows
    produce(settings, settings.topics.documents, [doc("a", 1, LONG), doc("b", 1, "A short note about Kafka."),
                                                 doc("c", 1, "LanceDB stores vectors.")])
    ev = events_for(settings, 6)
    assert {e["status"] for e in ev[3:6]} == {"unchanged"}
    assert chunk_rows(settings, "acme") == rows


def test_shrink_delete_and_stale(settings: Settings, worker: Any) -> None:
    before = {r["id"] for r in chunk_rows(settings, "acme") if r["doc_id"] == "a"}
    produce(settings, settings.topics.documents, [doc("a", 2, "Now a single short paragraph.")])
    wait_for(lambda: [r for r in chunk_rows(settings, "acme") if r["doc_id"] == "a" and r["version"] == 2])
    after = [r for r in chunk_rows(settings, "acme") if r["doc_id"] == "a"]
    assert len(after) == 1 and len(before) > 1  # stale chunks gone

    produce(settings, settings.topics.documents, [doc("b", 2, op="delete")])
    wait_for(lambda: not [r for r in chunk_rows(settings, "acme") if r["doc_id"] == "b"])

    produce(settings, settings.topics.documents, [doc("a", 1, LONG), doc("b", 1, "resurrected?")])
    ev = read_topic(settings, settings.topics.index_events,
                    lambda m: sum(1 for e in m if e["status"] == "stale") >= 2, timeout=90)
    assert sum(1 for e in ev if e["status"] == "stale") >= 2
    rows = chunk_rows(settings, "acme")
    assert [r["version"] for r in rows if r["doc_id"] == "a"] == [2]
    assert not [r for r in rows if r["doc_id"] == "b"]


def test_thousand_bad_events_go_to_dead_letters(settings: Settings, worker: Any) -> None:
    bad_kinds: list[bytes | dict[str, Any]] = [
        b"{oops", b"[]", b"\xff\xfe\x00",
        {"op": "upsert", "doc_id": "x", "version": 1, "text": "no tenant"},
        {"op": "upsert", "tenant": "acme", "version": 1, "text": "no doc id"},
        {"op": "upsert", "tenant": "acme", "doc_id": "x", "version": "one", "text": "bad version"},
        {"op": "upsert", "tenant": "acme", "doc_id": "x", "version": 1, "text": "  "},
        {"op": "rename", "tenant": "acme", "doc_id": "x", "version": 1, "text": "unknown op"},
        {"op": "upsert", "tenant": "acme", "doc_id": "x", "version": 1, "text": "x" * (settings.index.max_doc_chars + 1)},
    ]
    items: list[tuple[str | None, Any]] = []
    good = 0
    for i in range(1000):
        items.append((f"bad{i}", bad_kinds[i % len(bad_kinds)]))
        if i % 100 == 0:
            items.append(doc(f"good{good}", 1, f"Good document number {good} between bad ones."))
            good += 1
    produce(settings, settings.topics.documents, items)
    dead = read_topic(settings, settings.topics.dead_letters, lambda m: len(m) >= 1000, timeout=120)
    assert len(dead) == 1000
    assert all(d["error"] and d["stage"] in {"parse", "validate"} for d in dead)
    sent = {f"bad{i}".encode(): v if isinstance(v, bytes) else json.dumps(v).encode()
            for i, v in ((i, bad_kinds[i % len(bad_kinds)]) for i in range(1000))}
    got = {base64.b64decode(d["original_key_b64"]): base64.b64decode(d["original_b64"]) for d in dead}
    assert got == sent  # every dead letter carries its own record's key and original bytes
    wait_for(lambda: len({r["doc_id"] for r in chunk_rows(settings, "acme") if r["doc_id"].startswith("good")}) == good)
    assert worker.alive()


def test_sigkill_and_recovery_lose_nothing(settings: Settings, start_worker: Any, tmp_path: Any) -> None:
    overrides = {"STREAMRAG_TOPIC_DOCUMENTS": settings.topics.documents + ".r", "STREAMRAG_TENANT": "rec",
                 "STREAMRAG_SOURCE_BATCH_SIZE": "8"}
    s = settings.model_copy(update={"topic_documents": overrides["STREAMRAG_TOPIC_DOCUMENTS"]})
    ensure_topics(s.kafka, s.topic_layout)
    rdir = str(tmp_path / "recovery")
    docs = [doc(f"r{i}", 1, f"Recovery document {i}. " + LONG[: 200 + 37 * (i % 9)], tenant="rec") for i in range(60)]
    produce(s, s.topics.documents, docs)
    w = start_worker("ingest", "-r", rdir, overrides=overrides)
    wait_for(lambda: len({r["doc_id"] for r in chunk_rows(s, "rec")}) >= 10, timeout=120, interval=0.2)
    w.kill(signal.SIGKILL)
    assert not w.alive()
    produce(s, s.topics.documents, [doc(f"r{i}", 1, f"Late document {i}.", tenant="rec") for i in range(60, 70)])
    w2 = start_worker("ingest", "-r", rdir, overrides=overrides)
    wait_for(lambda: len({r["doc_id"] for r in chunk_rows(s, "rec")}) == 70, timeout=180)
    rows = chunk_rows(s, "rec")
    assert len({r["id"] for r in rows}) == len(rows)
    assert w2.alive()


def test_worker_fails_fast_when_the_broker_does_not_answer(env: dict[str, str]) -> None:
    import os
    import subprocess
    import sys
    import time

    t = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "streamrag.cli", "worker", "ingest"], capture_output=True, text=True,
                       env={**os.environ, **env, "STREAMRAG_KAFKA_BOOTSTRAP": "127.0.0.1:1", "STREAMRAG_KAFKA_TIMEOUT_S": "2"},
                       timeout=60)
    assert r.returncode != 0 and time.monotonic() - t < 30
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert lines and "did not answer" in lines[0]
