"""Kafka administration: client configuration, reachability with a timeout, topic creation, offsets and lag."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamrag.connectors.kafka_retention import apply_retention
from streamrag.core.config import KafkaConfig, TopicLayout, WorkerConfig
from streamrag.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# Small request/response messages: disable Nagle so a lone message is not held back waiting for
# the previous one's ACK (a delayed-ACK stall shows up as ~40 ms tails on loopback).
LOW_LATENCY = {"socket.nagle.disable": "true"}


def already_exists(exc: BaseException) -> bool:
    """A topic's creation failed because it exists (another process made it first): Kafka's error code, not its text."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS


def security_config(k: KafkaConfig) -> dict[str, str]:
    """TLS and SASL settings of every Kafka client (none for PLAINTEXT)."""
    proto = k.security_protocol
    if proto == "PLAINTEXT":
        return {}
    cfg: dict[str, str] = {"security.protocol": proto}
    if proto.startswith("SASL"):
        cfg.update({"sasl.mechanism": k.sasl_mechanism, "sasl.username": k.sasl_username,
                    "sasl.password": os.environ.get(k.sasl_password_env, "")})
    if proto.endswith("SSL") and k.ssl_ca_location:
        cfg["ssl.ca.location"] = k.ssl_ca_location
    return cfg


def client_config(k: KafkaConfig, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration for every client the project makes."""
    return {"bootstrap.servers": k.bootstrap, **LOW_LATENCY, **security_config(k), **extra}


def source_config(k: KafkaConfig) -> dict[str, str]:
    """Extra configuration for bytewax's Kafka source. Its librdkafka statistics callback (for
    bytewax's consumer-lag gauge) runs in Python every interval and stalls the worker: it is off
    unless STREAMRAG_KAFKA_STATS_INTERVAL_MS is set."""
    return {**LOW_LATENCY, **security_config(k), "statistics.interval.ms": str(k.stats_interval_ms)}


COMPACTED = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "600000"}


def _retention_days(days: float) -> dict[str, str]:
    return {"retention.ms": str(int(days * 24 * 3600 * 1000))}


def message_limit(w: WorkerConfig) -> int:
    """Bytes a project message may take on the wire: a document change up to STREAMRAG_MAX_MESSAGE_BYTES, and
    a dead letter carrying one (its original as base64, 4/3 of it) with room for the envelope. Kafka's own
    default (about 1 MB) would refuse a PDF of a few hundred kilobytes."""
    return w.max_message_bytes * 3 // 2 + 64 * 1024


# Every project producer: a write counts once all in-sync replicas have it, and a retried send is never
# written twice (librdkafka implies acks=all with idempotence; said here so that nobody lowers it).
DURABLE: dict[str, Any] = {"acks": "all", "enable.idempotence": True}


def replication(brokers: int) -> tuple[int, dict[str, str]]:
    """Replicas of a project topic and its extra configuration on a cluster of ``brokers``: three copies and
    ``min.insync.replicas=2`` where there are three brokers (a write survives one lost broker and is refused,
    not silently under-replicated, with two lost); as many copies as there are brokers on smaller clusters."""
    rf = max(1, min(brokers, 3))
    return rf, ({"min.insync.replicas": "2"} if rf >= 3 else {})


def producer_limits(w: WorkerConfig) -> dict[str, int]:
    """The producer settings that let such messages through (the topics' limits are set when they are created)."""
    return {"message.max.bytes": message_limit(w)}


def topic_specs(layout: TopicLayout) -> dict[str, dict[str, str]]:
    """Each project topic (``Settings.project_topics``) with its configuration."""
    big = {"max.message.bytes": str(message_limit(layout.worker))}  # documents carry files; dead letters carry documents
    by_setting = {
        "topic_documents": {**COMPACTED, **big}, "topic_queries": _retention_days(1), "topic_answers": _retention_days(1),
        "topic_cache": COMPACTED, "topic_index_events": _retention_days(7),
        "topic_dead_letters": {**_retention_days(30), **big},
        "topic_audit": _retention_days(layout.audit.retention_days), "topic_feedback": _retention_days(365),
    }
    named = {f"topic_{k}": v for k, v in layout.topics.model_dump().items()}  # as Settings.project_topics
    return {topic: by_setting[setting] for setting, topic in named.items()}  # KeyError: a topic without a spec


def admin(k: KafkaConfig) -> Any:
    return AdminClient({"bootstrap.servers": k.bootstrap, "socket.timeout.ms": 5000, **security_config(k)})


def check_reachable(k: KafkaConfig, timeout: float | None = None) -> None:
    """Fail fast (ServiceUnavailable) when the broker does not answer in time."""
    t = k.timeout_s if timeout is None else timeout
    try:
        admin(k).list_topics(timeout=t)
    except KafkaException as exc:
        raise ServiceUnavailable(
            f"Kafka at {k.bootstrap} did not answer within {t:g} s "
            "(start one with scripts/kafka-up or set STREAMRAG_KAFKA_BOOTSTRAP)"
        ) from exc


def ensure_topics(k: KafkaConfig, layout: TopicLayout, partitions: int | None = None) -> dict[str, str]:
    """Create the project's topics when missing, and bring the retention of existing ones to the configuration
    (connectors.kafka_retention). Returns topic -> 'created' | 'exists' | 'retention changed from X to Y ms'."""
    check_reachable(k)
    a = admin(k)
    md = a.list_topics(timeout=k.timeout_s)
    existing = set(md.topics)
    n = partitions or k.partitions
    rf, durable = replication(len(md.brokers))
    new = []
    specs = topic_specs(layout)
    result: dict[str, str] = {}
    try:  # existing topics follow the configured retention
        result.update(apply_retention(a, specs, existing, k.timeout_s))
    except Exception as exc:  # e.g. no DescribeConfigs/AlterConfigs permission: the topics work on, as they were
        log.warning("the retention of existing topics was not checked or set: %s", str(exc).splitlines()[0][:300])
    for name, cfg in specs.items():
        if name in result:
            continue
        if name in existing:
            result[name] = "exists"
        else:
            new.append(NewTopic(name, num_partitions=n, replication_factor=rf, config={**cfg, **durable}))
    if new:
        for name, fut in a.create_topics(new, operation_timeout=k.timeout_s).items():
            try:
                fut.result(timeout=k.timeout_s)
                result[name] = "created"
            except Exception as exc:
                if already_exists(exc):
                    result[name] = "exists"
                else:
                    raise ServiceUnavailable(f"could not create topic {name}: {exc}") from exc
    wait_for_group_coordinator(k, layout.worker.query_group, layout.topics.queries)
    return result


def wait_for_group_coordinator(k: KafkaConfig, group: str, topic: str, timeout_s: float = 30.0) -> None:
    """On a fresh broker the offsets topic and group coordinator appear on first use; a worker whose source
    starts from stored offsets before then was seen never to consume. Ask for ``group``'s committed offsets (of
    ``topic``'s partition 0) until the coordinator answers."""
    c = Consumer(client_config(k, **{"group.id": group, "enable.auto.commit": False}))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                c.committed([TopicPartition(topic, 0)], timeout=5)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise ServiceUnavailable(f"Kafka's group coordinator did not answer: {exc}") from exc
                time.sleep(0.5)
    finally:
        c.close()


def topic_offsets(k: KafkaConfig, topics: Sequence[str], group: str | None = None) -> dict[str, Any]:
    """End offsets per topic and partition, and a group's committed offsets and lag."""
    check_reachable(k, timeout=min(k.timeout_s, 5.0))
    c = Consumer(client_config(k, **{"group.id": group or "streamrag-status", "enable.auto.commit": False}))
    try:
        md = c.list_topics(timeout=k.timeout_s)
        out: dict[str, Any] = {}
        for t in topics:
            if t not in md.topics:
                out[t] = {"exists": False}
                continue
            parts = sorted(md.topics[t].partitions)
            ends = {p: c.get_watermark_offsets(TopicPartition(t, p), timeout=k.timeout_s)[1] for p in parts}
            info: dict[str, Any] = {"exists": True, "end_offsets": ends, "messages": sum(ends.values())}
            if group:
                committed = c.committed([TopicPartition(t, p) for p in parts], timeout=k.timeout_s)
                done = {tp.partition: max(tp.offset, 0) for tp in committed}
                info["committed"] = done
                info["lag"] = sum(max(ends[p] - done.get(p, 0), 0) for p in parts)
            out[t] = info
        return out
    finally:
        c.close()
