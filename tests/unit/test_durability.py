"""Kafka durability across several brokers: replicas and min.insync.replicas by cluster size, and every project
producer configured acks=all with idempotence."""

from __future__ import annotations

from typing import Any

import pytest

from streamrag.connectors import kafka_producer, kafka_sink
from streamrag.connectors.kafka_admin import replication
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings


def test_three_replicas_and_two_in_sync_where_there_are_three_brokers() -> None:
    assert replication(1) == (1, {})
    assert replication(2) == (2, {})
    assert replication(3) == (3, {"min.insync.replicas": "2"})
    assert replication(7) == (3, {"min.insync.replicas": "2"})


def test_project_producers_wait_for_all_in_sync_replicas_and_never_write_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    class Producer:
        def __init__(self, cfg: dict[str, Any]) -> None:
            seen.append(cfg)

    monkeypatch.setattr(kafka_producer, "Producer", Producer)
    monkeypatch.setattr(kafka_sink, "Producer", Producer)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert kafka_producer.JsonProducer(s.kafka, s.worker).producer is not None
    kafka_sink.FlushThenCommitSink(s.kafka, s.worker, sealer_for(s)).build("out", 0, 1)
    assert len(seen) == 2
    for cfg in seen:
        assert cfg["acks"] == "all" and cfg["enable.idempotence"] is True
