"""Encryption at rest with a deployment key, on the real Redis and Kafka: the answer's text is in neither the
Redis payload nor the cache topic, a rotated key still reads it, a wrong key is a miss; a dead letter written by
the ingest worker hides the original, and `replay dead-letters` restores it byte for byte."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from prometheus_client import REGISTRY

from streamrag.connectors.cache_follower import CacheFollower
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.crypto import new_key
from streamrag.core.records import REPLAYED_HEADER
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings
from streamrag.flows.components import make_cache
from streamrag.schemas.models import Answer, CacheEntry, DeadLetter
from streamrag.tools.replay_dead_letters import replay_dead_letters
from tests.integration.conftest import Worker, produce, wait_for

pytestmark = pytest.mark.integration
SECRET = "the merger closes on 14 March at 41 dollars a share"
OLD, NEW = new_key(), new_key()
KEYS = "STREAMRAG_ENCRYPTION_KEYS"


def raw_topic(s: Settings, topic: str) -> list[Any]:
    """Every message of ``topic`` so far, as stored (bytes and headers)."""
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap, "group.id": f"t-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=10)
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions]
        try:
            ends = {p.partition: c.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        except KafkaException:  # a topic just made may not have its leaders yet: nothing so far
            return []
        c.assign(parts)
        out: list[Any] = []
        seen = {p: 0 for p in ends}
        for _ in range(40):
            if all(seen[p] >= end for p, end in ends.items()):
                break
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    out.append(m)
                    seen[m.partition()] = m.offset() + 1
        return out
    finally:
        c.close()


def failures(what: str) -> float:
    return REGISTRY.get_sample_value("streamrag_decrypt_failures_total", {"what": what}) or 0.0


def test_cache_payloads_in_redis_and_on_the_cache_topic_are_encrypted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings.model_copy(update={"cache_redis_prefix": f"it-crypt-{uuid.uuid4().hex[:8]}:"})
    store = LanceStore(s.lancedb_path())
    monkeypatch.setenv(KEYS, OLD)
    entry = CacheEntry(tenant="acme", cache_key="k-merger", normalized_text="when does the merger close", scope="s",
                       options_hash="o", answer=Answer(query_id="q1", tenant="acme", status="ok", answer=SECRET))
    cache = make_cache(s, store)  # kept until its cache-topic record is read (its producer delivers it)
    assert cache.put(entry)
    stored = redis.Redis.from_url(s.redis.url).get(f"{s.cache.redis_prefix}acme:k-merger")
    assert stored is not None and SECRET.encode() not in stored and b"merger" not in stored
    on_topic = wait_for(lambda: [m for m in raw_topic(s, s.topics.cache) if m.key() == b"acme/k-merger"], timeout=30)
    assert SECRET.encode() not in on_topic[0].value() and b"merger" not in on_topic[0].value()

    monkeypatch.setenv(KEYS, f"{NEW},{OLD}")  # rotation: a new key first, the old one still reads
    fresh = make_cache(s, store)
    got = fresh.storage.fetch("acme", "k-merger")
    assert got is not None and got.answer.answer == SECRET
    follower = CacheFollower(s.kafka, s.topics, s.json_limits, fresh, sealer_for(s))  # a starting worker rebuilds its index from the encrypted cache topic
    follower.start(rebuild_timeout_s=30)
    try:
        assert "k-merger" in fresh.index.meta
    finally:
        follower.stop()

    monkeypatch.setenv(KEYS, NEW)  # a wrong key: a miss, counted, no error
    before = failures("cache payload"), failures("cache entry")
    wrong = make_cache(s, store)
    assert wrong.storage.fetch("acme", "k-merger") is None
    follower = CacheFollower(s.kafka, s.topics, s.json_limits, wrong, sealer_for(s))
    follower.start(rebuild_timeout_s=30)
    try:
        assert "k-merger" not in wrong.index.meta and follower.state == "following"
    finally:
        follower.stop()
    assert (failures("cache payload"), failures("cache entry")) == (before[0] + 1, before[1] + 1)


def test_dead_letter_original_is_encrypted_and_replay_restores_it(
    settings: Settings, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = b"not JSON at all: " + SECRET.encode()
    worker: Worker = start_worker("ingest", overrides={KEYS: OLD})
    produce(settings, settings.topics.documents, [("acme/merger", original)])
    dead = wait_for(lambda: raw_topic(settings, settings.topics.dead_letters), timeout=120)
    assert worker.alive()
    raw = dead[0].value()
    assert SECRET.encode() not in raw and SECRET.encode() not in json.dumps(json.loads(raw)).encode()
    d = DeadLetter.model_validate_json(raw)
    assert d.sealed and d.stage == "parse" and SECRET.encode() not in d.original()

    monkeypatch.delenv(KEYS, raising=False)
    assert replay_dead_letters(settings, dry_run=True).skipped == {"the original is encrypted and no key is set": 1}
    monkeypatch.setenv(KEYS, NEW)
    assert replay_dead_letters(settings, dry_run=True).skipped == {"the original does not decrypt with the keys set": 1}

    monkeypatch.setenv(KEYS, f"{NEW},{OLD}")
    assert replay_dead_letters(settings).replayed == 1
    replayed = wait_for(lambda: [m for m in raw_topic(settings, settings.topics.documents)
                                 if any(k == REPLAYED_HEADER for k, _ in (m.headers() or ()))], timeout=30)
    assert replayed[0].value() == original and replayed[0].key() == b"acme/merger"
