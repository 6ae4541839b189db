"""Gateway reply topics' lifecycle on Kafka.

A gateway replica reads its answers from its own reply topic (``ReplyRouter``). Such a topic is created with the
project's replication factor (three copies and ``min.insync.replicas=2`` on three brokers, as the project's
topics: a lost broker loses no replies), and a short retention. The replica writes a heartbeat into it every
``HEARTBEAT_S`` seconds, deletes it when it stops, and every gateway that starts deletes the reply topics of
replicas that died without stopping: a ``gateway-`` topic under the reply prefix whose newest message (the
heartbeat included) is older than the expiry, or whose messages have all expired. A topic that never held a
message is a replica that is starting: it is left alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from streamrag.connectors.kafka_admin import admin, already_exists, client_config, replication
from streamrag.core.config import KafkaConfig
from streamrag.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)
HEARTBEAT_KEY = b"_heartbeat"  # never a waiter's query id: ReplyRouter skips it
HEARTBEAT_S = 60.0
RETENTION_MS = 3_600_000  # replies are read at once


def ensure_reply_topic(k: KafkaConfig, topic: str, partitions: int = 1) -> bool:
    """Create this process's reply topic when missing; True when it was created now."""
    a = admin(k)
    md = a.list_topics(timeout=k.timeout_s)
    if topic in md.topics:
        return False
    rf, durable = replication(len(md.brokers))
    fut = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=rf,
                                    config={"retention.ms": str(RETENTION_MS), **durable})])[topic]
    try:
        fut.result(timeout=k.timeout_s)
    except KafkaException as exc:
        if not already_exists(exc):
            raise ServiceUnavailable(f"could not create reply topic {topic}: {exc}") from exc
        return False
    return True


def delete_topics(k: KafkaConfig, topics: list[str]) -> list[str]:
    """Delete ``topics``; the ones deleted (a missing one counts: it is gone)."""
    if not topics:
        return []
    done = []
    a = admin(k)  # held until every future is done (a dropped client fails them)
    for topic, fut in a.delete_topics(topics, operation_timeout=k.timeout_s).items():
        try:
            fut.result(timeout=k.timeout_s)
            done.append(topic)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                done.append(topic)
            else:
                log.warning("reply topic %s not deleted: %s", topic, exc)
        except Exception as exc:  # e.g. no answer in time: the topic expires and the next gateway sweeps it
            log.warning("reply topic %s not deleted: %s", topic, exc)
    return done


def last_written_ms(c: Any, topic: str, partitions: list[int], timeout_s: float) -> int | None:
    """The newest message's timestamp over ``topic``'s partitions; 0 when every message has expired (the topic
    held some); None when it never held one."""
    newest: int | None = None
    for p in partitions:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        if hi <= 0:
            continue
        if hi <= lo:  # written once, all of it past retention
            newest = max(newest or 0, 0)
            continue
        c.assign([TopicPartition(topic, p, hi - 1)])
        m = c.poll(timeout_s)
        if m is not None and m.error() is None:
            newest = max(newest or 0, m.timestamp()[1])
    return newest


def expired_reply_topics(k: KafkaConfig, prefix: str, keep: str, expire_s: float,
                         now_ms: float | None = None) -> list[str]:
    """Reply topics of gateway replicas (``{prefix}gateway-*``) last written more than ``expire_s`` ago."""
    now = time.time() * 1000 if now_ms is None else now_ms
    md = admin(k).list_topics(timeout=k.timeout_s)
    mine = [(t, sorted(meta.partitions)) for t, meta in md.topics.items()
            if t.startswith(f"{prefix}gateway-") and t != keep]
    if not mine:
        return []
    c = Consumer(client_config(k, **{"group.id": "streamrag-reply-sweep", "enable.auto.commit": False}))
    try:
        out = []
        for topic, parts in mine:
            last = last_written_ms(c, topic, parts, k.timeout_s)
            if last is not None and now - last > expire_s * 1000:
                out.append(topic)
        return out
    finally:
        c.close()


def sweep_reply_topics(k: KafkaConfig, prefix: str, keep: str, expire_s: float) -> list[str]:
    """Delete the expired reply topics of dead replicas (best effort: a failure is logged); the ones deleted."""
    try:
        return delete_topics(k, expired_reply_topics(k, prefix, keep, expire_s))
    except Exception as exc:  # a gateway starts whether or not it could tidy up after others
        log.warning("expired reply topics not swept: %s", str(exc).splitlines()[0][:300])
        return []
