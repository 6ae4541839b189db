"""Integration fixtures: real Kafka and Redis (started by scripts/test), LanceDB in a temp folder.

Every module gets its own topics, so tests never see each other's events. Workers run as
real subprocesses (`streamrag worker ...`) and are always stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrag.connectors.kafka_admin import check_reachable, ensure_topics
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.errors import ServiceUnavailable
from streamrag.core.settings import Settings, settings_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """This module's own topics, groups and index, on the Kafka and Redis scripts/test started."""
    tag = uuid.uuid4().hex[:8]
    d = tmp_path_factory.mktemp(f"it-{tag}")
    fields: dict[str, Any] = {
        "kafka_bootstrap": os.environ.get("STREAMRAG_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        "redis_url": os.environ.get("STREAMRAG_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "lancedb_uri": str(d / "lancedb"), "chunk_size": 48, "chunk_overlap": 8, "fts_rebuild_every_s": 1,
        "snapshot_interval_s": 1, "generator": "extractive", "state_dir": str(d / "state"), "ingest_group": f"ingest-{tag}", "query_group": f"query-{tag}",
    }
    for t in ("documents", "queries", "answers", "cache", "index_events", "dead_letters", "audit", "feedback"):
        fields[f"topic_{t}"] = f"it-{tag}.{t}"
    s = Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    try:
        check_reachable(s.kafka, timeout=10)
    except ServiceUnavailable as exc:
        pytest.fail(f"integration tests need Kafka (scripts/test starts it): {exc}")
    ensure_topics(s.kafka, s.topic_layout)
    return s


@pytest.fixture(scope="module")
def env(settings: Settings) -> dict[str, str]:
    """The environment of this module's worker processes (tests may add to it before starting one)."""
    return settings_env(settings)


class Worker:
    def __init__(self, kind: str, env: dict[str, str], log: Path, extra: list[str]) -> None:
        self.log = log
        full = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamrag.cli", "worker", kind, *extra],
            env=full, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def start_worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []
    logdir = tmp_path_factory.mktemp("logs")

    def start(kind: str = "ingest", *extra: str, overrides: dict[str, str] | None = None) -> Worker:
        w = Worker(kind, {**env, **(overrides or {})}, logdir / f"{kind}-{len(started)}.log", list(extra))
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


def produce(settings: Settings, topic: str, items: list[tuple[str | None, Any]]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 5})
    for key, value in items:
        if isinstance(value, dict):
            value = json.dumps(value).encode()
        p.produce(topic, key=None if key is None else key.encode(), value=value)
    assert p.flush(30) == 0


def read_topic(settings: Settings, topic: str, until: Callable[[list[Any]], bool], timeout: float = 60) -> list[Any]:
    """Read a topic from the beginning until `until(messages)` holds or the time is up."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    msgs: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    msgs.append(json.loads(m.value()) if m.value() else None)
            if until(msgs):
                break
        return msgs
    finally:
        c.close()


def wait_for(cond: Callable[[], Any], timeout: float = 90, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def chunk_rows(settings: Settings, tenant: str | None = None) -> list[dict[str, Any]]:
    return sorted(LanceStore(settings.lancedb_path()).chunk_rows(tenant), key=lambda r: r["id"])
