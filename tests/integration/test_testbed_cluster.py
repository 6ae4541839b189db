"""Processes as hosts (scripts/testbed: 3 brokers, the S3 store, Redis, an ingest cluster of two processes on
127.0.0.2 and 127.0.0.3, two query processes, one maintainer): SIGKILL one ingest process in the middle of 300
documents, restart the cluster from its recovery store, then rescale it from 2 to 3 processes; every newest
version ends indexed exactly once. Then lost nodes, one at a time, each test bounded: a broker stopped for 10 s
while documents are ingested (nothing lost), the object store stopped for 10 s (writes retried, nothing lost,
nothing dead-lettered), a query process SIGKILLed (every query answered once its cluster is restarted).
The tests run in this order on one test bed.

Minutes of a loaded machine, so not in the default run: STREAMRAG_TESTBED_TESTS=1 runs it."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.security import doc_key
from streamrag.core.settings import Settings
from tests.integration.conftest import read_topic
from tests.integration.test_brokers_kafka import _free_run
from tests.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.skipif(os.environ.get("STREAMRAG_TESTBED_TESTS") != "1",
                                                          reason="the multi-process test bed takes minutes: STREAMRAG_TESTBED_TESTS=1")]
ROOT = Path(__file__).resolve().parents[2]
WORDS = ["stream", "index", "vector", "query", "answer", "tenant", "kafka", "lance", "chunk", "embed", "latency", "cache", "model", "token"]


def text(i: int) -> str:
    return ". ".join(" ".join(WORDS[(i * 7 + j * 3 + k) % len(WORDS)] for k in range(12)) for j in range(10)) + "."


@pytest.fixture(scope="module")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    d = tmp_path_factory.mktemp("testbed")
    s3 = free_port()
    while s3 + 10004 > 65535:
        s3 = free_port()
    env = {**os.environ, "STREAMRAG_TESTBED_DIR": str(d), "STREAMRAG_TESTBED_KAFKA_PORT": str(_free_run(6)),
           "STREAMRAG_TESTBED_S3_PORT": str(s3)}
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(k, None)
    try:
        up = subprocess.run(["bash", "scripts/testbed", "up", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        out = subprocess.run(["bash", "-c", 'eval "$(bash scripts/testbed env)"; env'], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=30).stdout
        wenv = dict(line.split("=", 1) for line in out.splitlines() if line.startswith(("STREAMRAG_", "AWS_")))
        yield env, wenv
    finally:
        subprocess.run(["bash", "scripts/testbed", "down"], cwd=ROOT, env=env, capture_output=True, timeout=180)


def settings_of(wenv: dict[str, str]) -> Settings:
    os.environ.update({k: v for k, v in wenv.items() if k.startswith("AWS_")})  # LanceDB reads the credentials here
    return Settings(_env_file=None, kafka_bootstrap=wenv["STREAMRAG_KAFKA_BOOTSTRAP"],  # type: ignore[call-arg]
                    lancedb_uri=wenv["STREAMRAG_LANCEDB_URI"])


def keys(tenant: str, n: int) -> dict[str, int]:
    return {doc_key(tenant, f"d{i}"): i for i in range(n)}


KEYS = keys("kt", 360)


def indexed(s: Settings, tenant: str = "kt", known: dict[str, int] = KEYS) -> dict[str, Any]:
    """Documents (number -> (version, deleted)), chunk ids counted, chunk rows of ``tenant``."""
    store = LanceStore(s.lancedb_path())
    rows = store.chunk_rows(tenant)
    docs = {known[k]: v for k, v in store.doc_versions().items() if k in known}
    return {"docs": docs, "ids": Counter(r["id"] for r in rows), "rows": rows}


def wait_indexed(s: Settings, n: int, timeout: float, tenant: str = "kt", known: dict[str, int] = KEYS,
                 pids: Path | None = None) -> dict[str, Any]:
    """Until ``n`` of ``known`` are indexed, the time is up, or (``pids``: the test bed's pid folder) an ingest
    process has stopped (nothing restarts it here)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = indexed(s, tenant, known)
        except OSError:  # the object store being stopped: read again
            got = {"docs": {}, "ids": Counter(), "rows": []}
        if len(got["docs"]) >= n or time.monotonic() > deadline or (pids is not None and not ingest_alive(pids)):
            return got
        time.sleep(2)


def ingest_alive(pids: Path) -> bool:
    return all(alive(int(f.read_text())) for f in pids.glob("ingest-*.pid"))


def publish(prod: JsonProducer, s: Settings, tenant: str, numbers: range) -> None:
    for i in numbers:
        prod.send(s.topics.documents, f"{tenant}/d{i}", {"op": "upsert", "tenant": tenant, "doc_id": f"d{i}", "version": 1, "text": text(i)})
    prod.flush(60)


def run_testbed(env: dict[str, str], *args: str, timeout: float = 300) -> None:
    r = subprocess.run(["bash", "scripts/testbed", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout + r.stderr


def dead_letters_of(s: Settings, tenant: str) -> list[dict[str, Any]]:
    """The dead letters of ``tenant``'s documents (the topic read for 10 s from its beginning)."""
    got = read_topic(s, s.topics.dead_letters, lambda m: False, timeout=10)
    return [d for d in got if d and d.get("original_key_b64")
            and base64.b64decode(d["original_key_b64"]).startswith(f"{tenant}/".encode())]


def all_indexed_once(got: dict[str, Any], n: int) -> None:
    assert len(got["docs"]) == n, f"{len(got['docs'])} of {n} documents indexed"
    assert max(got["ids"].values()) == 1  # no chunk twice


def test_a_killed_ingest_process_and_a_rescale_lose_nothing_and_write_nothing_twice(testbed: tuple[dict[str, str], dict[str, str]]) -> None:
    env, wenv = testbed
    s = settings_of(wenv)
    prod = JsonProducer(s.kafka, s.worker)
    for i in range(300):
        prod.send(s.topics.documents, f"kt/d{i}", {"op": "upsert", "tenant": "kt", "doc_id": f"d{i}", "version": 1, "text": text(i)})
    prod.flush(60)
    wait_indexed(s, 30, 300)  # in the middle of the 300
    pid = int((Path(env["STREAMRAG_TESTBED_DIR"]) / "pids" / "ingest-1.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    for i in range(0, 300, 3):  # newer versions of a third of them, while the cluster is down
        prod.send(s.topics.documents, f"kt/d{i}", {"op": "upsert", "tenant": "kt", "doc_id": f"d{i}", "version": 2, "text": text(i + 1)})
    prod.flush(60)
    r = subprocess.run(["bash", "scripts/testbed", "rescale", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 600
    while True:
        got = indexed(s)
        done = len(got["docs"]) == 300 and all(v == (2 if i % 3 == 0 else 1, False) for i, v in got["docs"].items())
        if done or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(f"kill -> {len(got['docs'])} of 300 indexed, newest versions {'all' if done else 'not all'}: "
          f"{time.monotonic() - killed:.1f} s")
    assert len(got["docs"]) == 300
    assert max(got["ids"].values()) == 1  # no chunk twice
    versions = {(r["doc_id"], r["version"]) for r in got["rows"]}
    assert all((f"d{i}", 2 if i % 3 == 0 else 1) in versions for i in range(300))
    assert len(versions) == 300  # only the newest version of each document has chunks

    # rescale 2 -> 3 from the same recovery store (the command itself, as scripts/testbed runs it), and ingest goes on
    tb = Path(env["STREAMRAG_TESTBED_DIR"])
    r = subprocess.run([sys.executable, "-m", "streamrag.cli", "cluster", "rescale", "3", "-r", str(tb / "recovery-ingest"),
                        "--hosts", "127.0.0.2,127.0.0.3,127.0.0.4", "--pid-dir", str(tb / "pids"), "--log-dir", str(tb / "logs")],
                       cwd=ROOT, env={**env, **wenv}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "stopped 2 ingest processes" in r.stdout, r.stdout + r.stderr
    for i in range(300, 360):
        prod.send(s.topics.documents, f"kt/d{i}", {"op": "upsert", "tenant": "kt", "doc_id": f"d{i}", "version": 1, "text": text(i)})
    prod.flush(60)
    got = wait_indexed(s, 360, 600)
    assert len(got["docs"]) == 360 and max(got["ids"].values()) == 1


def ingest_through_outage(env: dict[str, str], s: Settings, prefix: str, stop: tuple[str, ...], start: tuple[str, ...],
                          what: str) -> tuple[dict[str, Any], Path]:
    """90 documents: 60 published, ``stop`` once ingest is under way, 30 more published during the 10 s outage,
    ``start``, then wait until all 90 are indexed (or an ingest process stops). (What was indexed, the pid folder.)"""
    prod, known = JsonProducer(s.kafka, s.worker), keys(prefix, 90)
    publish(prod, s, prefix, range(60))
    wait_indexed(s, 5, 300, prefix, known)  # ingest under way
    run_testbed(env, *stop)
    stopped = time.monotonic()
    publish(prod, s, prefix, range(60, 90))
    time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    run_testbed(env, *start)
    pids = Path(env["STREAMRAG_TESTBED_DIR"]) / "pids"
    got = wait_indexed(s, 90, 600, prefix, known, pids)
    print(f"{what} -> {len(got['docs'])} of 90 indexed: {time.monotonic() - stopped:.1f} s")
    return got, pids


def test_a_broker_stopped_for_10_s_mid_ingest_loses_nothing(testbed: tuple[dict[str, str], dict[str, str]]) -> None:
    env, wenv = testbed
    s = settings_of(wenv)
    # two brokers in sync while broker 1 is down: acks=all still succeeds for the documents sent then
    got, pids = ingest_through_outage(env, s, "kb", ("stop", "broker", "1"), ("start", "brokers"), "broker 1 stopped")
    assert ingest_alive(pids), "an ingest process stopped"
    all_indexed_once(got, 90)
    assert not dead_letters_of(s, "kb")


def test_the_object_store_stopped_for_10_s_mid_ingest_retries_loses_nothing_dead_letters_nothing(
    testbed: tuple[dict[str, str], dict[str, str]],
) -> None:
    env, wenv = testbed
    s = settings_of(wenv)
    logs = Path(env["STREAMRAG_TESTBED_DIR"]) / "logs"
    retries_before = sum(f.read_text(errors="replace").count(RETRIED) for f in logs.glob("ingest-*.log"))
    # Kafka is up: the documents sent during the outage wait in the topic
    got, pids = ingest_through_outage(env, s, "ks", ("stop", "s3"), ("start", "s3"), "object store stopped")
    assert ingest_alive(pids), "an ingest process stopped (its retries ran out?)"
    all_indexed_once(got, 90)
    assert not dead_letters_of(s, "ks")
    retries = sum(f.read_text(errors="replace").count(RETRIED) for f in logs.glob("ingest-*.log")) - retries_before
    assert retries > 0, "no store call was retried: the outage was not seen"


RETRIED = "failed (attempt"  # core.retry's line for each retried call ("index write failed (attempt 2, retrying)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_query_process_leaves_no_query_unanswered(testbed: tuple[dict[str, str], dict[str, str]]) -> None:
    env, wenv = testbed
    s = settings_of(wenv)
    tb = Path(env["STREAMRAG_TESTBED_DIR"])

    def ask(n: int) -> set[str]:
        qids = [uuid.uuid4().hex for _ in range(n)]  # keyed by their ids: spread over the 4 partitions
        prod = JsonProducer(s.kafka, s.worker)
        for i, q in enumerate(qids):
            prod.send(s.topics.queries, q, {"query_id": q, "tenant": "kt", "text": f"{WORDS[i % len(WORDS)]} stream index",
                                            "principal": {"user": None, "roles": []}})
        prod.flush(60)
        return set(qids)

    def answered(qids: set[str], timeout: float) -> dict[str, list[dict[str, Any]]]:
        msgs = read_topic(s, s.topics.answers, lambda m: qids <= {a.get("query_id") for a in m if a and a.get("kind") == "final"},
                          timeout=timeout)
        out: dict[str, list[dict[str, Any]]] = {}
        for a in msgs:
            if a and a.get("kind") == "final" and a.get("query_id") in qids:
                out.setdefault(a["query_id"], []).append(a)
        return out

    before = ask(8)
    assert set(answered(before, 300)) == before, "the query cluster serves before the kill"
    os.kill(int((tb / "pids" / "query-1.pid").read_text()), signal.SIGKILL)
    killed = time.monotonic()
    during = ask(16)  # while process 1 is dead: half the partitions are its
    run_testbed(env, "restart", "query")
    got = answered(during, 240)
    print(f"query process killed -> {len(set(got))} of {len(during)} answered: {time.monotonic() - killed:.1f} s")
    assert set(got) == during, f"{len(during - set(got))} of {len(during)} queries unanswered"
    assert all(a["status"] != "error" for answers in got.values() for a in answers)
