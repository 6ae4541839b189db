"""Gateway reply topics on real Kafka: a replica deletes its own topic when it stops, writes a heartbeat into it
while it runs, and a gateway that starts deletes the topics of replicas that died without stopping
(connectors/kafka_reply_topics.py)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer

from streamrag.connectors.kafka_admin import admin, client_config
from streamrag.connectors.kafka_reply_topics import HEARTBEAT_KEY, ensure_reply_topic, sweep_reply_topics
from streamrag.core.settings import Settings
from streamrag.gateway.backend import KafkaBackend
from tests.integration.conftest import read_topic, wait_for

pytestmark = pytest.mark.integration


def topics(settings: Settings) -> set[str]:
    return set(admin(settings.kafka).list_topics(timeout=10).topics)


def test_only_the_reply_topics_of_dead_replicas_are_swept(settings: Settings) -> None:
    k = settings.kafka
    prefix = f"it-{uuid.uuid4().hex[:6]}.replies."
    dead, quiet, live, starting, own = (f"{prefix}gateway-{n}" for n in ("dead", "quiet", "live", "starting", "own"))
    other = f"{prefix}ask-cli"  # not a gateway's topic: never swept
    for t in (dead, quiet, live, starting, own, other):
        assert ensure_reply_topic(k, t)
    assert not ensure_reply_topic(k, own)  # already there: nothing created
    p = Producer(client_config(k))
    now_ms = int(time.time() * 1000)
    p.produce(dead, key=HEARTBEAT_KEY, value=b"{}", timestamp=now_ms - 20 * 60_000)  # last heartbeat 20 min ago
    p.produce(quiet, key=b"q1", value=b"{}", timestamp=now_ms - 30 * 60_000)
    p.produce(quiet, key=HEARTBEAT_KEY, value=b"{}", timestamp=now_ms - 60_000)  # an old reply, a recent heartbeat
    p.produce(live, key=HEARTBEAT_KEY, value=b"{}", timestamp=now_ms)
    p.produce(other, key=b"q2", value=b"{}", timestamp=now_ms - 20 * 60_000)
    assert p.flush(10) == 0
    assert sweep_reply_topics(k, prefix, own, expire_s=900) == [dead]
    wait_for(lambda: dead not in topics(settings), timeout=30)
    assert {quiet, live, starting, own, other} <= topics(settings)


def test_a_gateway_writes_heartbeats_and_deletes_its_own_reply_topic_when_it_stops(settings: Settings) -> None:
    backend = KafkaBackend(settings)  # no STREAMRAG_GATEWAY_REPLY_TOPIC: this process's own topic
    backend.start()
    mine = backend.reply_topic
    try:
        assert mine in topics(settings)
        beats = read_topic(settings, mine, lambda msgs: len(msgs) >= 1, timeout=20)
        assert beats and beats[0] == {}
    finally:
        backend.stop()
    wait_for(lambda: mine not in topics(settings), timeout=30)
