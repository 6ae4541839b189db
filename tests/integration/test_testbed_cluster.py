"""Processes as hosts (scripts/testbed: 3 brokers, the S3 store, Redis, an ingest cluster of two processes on
127.0.0.2 and 127.0.0.3, two query processes, one maintainer): SIGKILL one ingest process in the middle of 300
documents, restart the cluster from its recovery store, then rescale it from 2 to 3 processes; every newest
version ends indexed exactly once.

Minutes of a loaded machine, so not in the default run: STREAMRAG_TESTBED_TESTS=1 runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.security import doc_key
from streamrag.core.settings import Settings
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


KEYS = {doc_key("kt", f"d{i}"): i for i in range(360)}


def indexed(s: Settings) -> dict[str, Any]:
    """Documents (number -> (version, deleted)), chunk ids counted, chunk rows of tenant kt."""
    store = LanceStore(s.lancedb_path())
    rows = store.chunk_rows("kt")
    docs = {KEYS[k]: v for k, v in store.doc_versions().items() if k in KEYS}
    return {"docs": docs, "ids": Counter(r["id"] for r in rows), "rows": rows}


def wait_indexed(s: Settings, n: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        got = indexed(s)
        if len(got["docs"]) >= n or time.monotonic() > deadline:
            return got
        time.sleep(2)


def test_a_killed_ingest_process_and_a_rescale_lose_nothing_and_write_nothing_twice(testbed: tuple[dict[str, str], dict[str, str]]) -> None:
    env, wenv = testbed
    s = settings_of(wenv)
    prod = JsonProducer(s)
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
    print(f"kill -> every newest version indexed: {time.monotonic() - killed:.1f} s")
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
