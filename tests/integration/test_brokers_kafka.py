"""Three brokers (scripts/kafka-up --brokers 3 on ports of their own, beside the shared broker; stopped after):
project topics get three replicas and min.insync.replicas=2, and the project's producer loses nothing, and
writes nothing twice, while the leader of a partition is killed and comes back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource

from streamrag.connectors.kafka_admin import admin, ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.core.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _free_run(n: int) -> int:
    """The first of ``n`` consecutive free ports on 127.0.0.1 (brokers, then their controllers)."""
    for base in range(21092, 30000, 50):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no free ports for three brokers")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Settings]]:
    port = _free_run(6)
    env = {**os.environ, "STREAMRAG_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "STREAMRAG_KAFKA_HEAP": "384m",
           "STREAMRAG_KAFKA_CLUSTER_DIR": str(tmp_path_factory.mktemp("kafka3"))}
    try:
        up = subprocess.run(["bash", "scripts/kafka-up", "--brokers", "3"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        bootstrap = up.stdout.strip().splitlines()[-1].removeprefix("export STREAMRAG_KAFKA_BOOTSTRAP=")
        assert len(bootstrap.split(",")) == 3, up.stdout
        tag = uuid.uuid4().hex[:8]
        fields: dict[str, Any] = {"kafka_bootstrap": bootstrap, "query_group": f"q-{tag}"}
        for t in ("documents", "queries", "answers", "cache", "index_events", "dead_letters", "audit", "feedback"):
            fields[f"topic_{t}"] = f"it3-{tag}.{t}"
        yield env, Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    finally:
        subprocess.run(["bash", "scripts/kafka-down", "--cluster"], cwd=ROOT, env=env, capture_output=True, timeout=120)


def test_project_topics_get_three_replicas_and_two_in_sync(cluster: tuple[dict[str, str], Settings]) -> None:
    _, s = cluster
    ensure_topics(s.kafka, s.topic_layout)
    a = admin(s.kafka)
    md = a.list_topics(timeout=10)
    for topic in s.project_topics.values():
        assert all(len(p.replicas) == 3 for p in md.topics[topic].partitions.values()), topic
    res = ConfigResource(ConfigResource.Type.TOPIC, s.topics.documents)
    cfg = a.describe_configs([res])[res].result(timeout=10)
    assert cfg["min.insync.replicas"].value == "2"


def test_nothing_is_lost_or_doubled_while_a_leader_is_killed(cluster: tuple[dict[str, str], Settings]) -> None:
    env, s = cluster
    ensure_topics(s.kafka, s.topic_layout)
    topic = s.topics.documents
    leader = admin(s.kafka).list_topics(timeout=10).topics[topic].partitions[0].leader  # node id = broker number
    pidfile = Path(env["STREAMRAG_KAFKA_CLUSTER_DIR"]) / f"broker-{leader}" / "kafka.pid"
    prod = JsonProducer(s.kafka, s.worker)
    n, sent = 600, 0
    killed_at = 0.0

    def send(upto: int) -> None:
        nonlocal sent
        for i in range(sent, upto):
            prod.send(topic, f"k{i % 37}", {"i": i})
            time.sleep(0.005)
        sent = upto

    send(200)
    prod.flush(30)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the partition leader dies mid-stream
    killed_at = time.monotonic()
    send(400)
    prod.flush(60)  # delivered to the two brokers left (min.insync.replicas=2)
    time.sleep(max(0.0, 5 - (time.monotonic() - killed_at)))
    restart = threading.Thread(target=subprocess.run, args=(["bash", "scripts/kafka-up", "--brokers", "3"],),
                               kwargs={"cwd": ROOT, "env": env, "capture_output": True, "timeout": 180})
    restart.start()  # it comes back while the rest are sent
    send(n)
    prod.flush(60)
    restart.join(180)
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    parts = admin(s.kafka).list_topics(timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    got: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < n and time.monotonic() < deadline:
            got += [json.loads(m.value())["i"] for m in c.consume(500, 0.5) if m.error() is None]
    finally:
        c.close()
    assert sorted(got) == list(range(n))  # every message once: none lost, none written twice
