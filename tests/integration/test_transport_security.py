"""Ingest and query end to end over Kafka SASL/SCRAM-SHA-512 over TLS and Redis AUTH over TLS, on a second
broker and Redis that scripts/kafka-up and scripts/redis-up start that way with certificates made here;
clients without credentials are refused."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamrag.connectors.kafka_admin import ensure_topics
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.kafka_request import request_answer
from streamrag.connectors.redis_cache import redis_for
from streamrag.core.settings import Settings
from streamrag.schemas.models import Query
from tests.integration.conftest import chunk_rows as rows
from tests.integration.conftest import wait_for
from tests.net import free_port
from tests.tls import make_certs

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KAFKA_PASSWORD = "kafka-" + uuid.uuid4().hex
REDIS_PASSWORD = "redis-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    d = tmp_path_factory.mktemp("secure")
    tls = make_certs(d / "tls")
    kport, rport = free_port(), free_port()
    env = {**os.environ, "STREAMRAG_LOCAL_DIR": str(d / "local"),
           "STREAMRAG_KAFKA_LIBS": str(ROOT / ".local" / "kafka" / "libs"),
           "STREAMRAG_KAFKA_BOOTSTRAP": f"127.0.0.1:{kport}", "STREAMRAG_KAFKA_CONTROLLER_PORT": str(free_port()),
           "STREAMRAG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMRAG_KAFKA_TLS_DIR": str(tls),
           "STREAMRAG_KAFKA_SASL_USERNAME": "streamrag", "STREAMRAG_KAFKA_PASSWORD": KAFKA_PASSWORD,
           "STREAMRAG_REDIS_URL": f"rediss://127.0.0.1:{rport}/0", "STREAMRAG_REDIS_TLS_DIR": str(tls),
           "STREAMRAG_REDIS_PASSWORD": REDIS_PASSWORD}
    try:
        for script in ("kafka-up", "redis-up"):
            subprocess.run(["bash", str(ROOT / "scripts" / script)], env=env, check=True, capture_output=True, timeout=180)
        os.environ["STREAMRAG_KAFKA_PASSWORD"] = KAFKA_PASSWORD  # what a worker reads its secrets from
        os.environ["STREAMRAG_REDIS_PASSWORD"] = REDIS_PASSWORD
        s = Settings(_env_file=None, kafka_bootstrap=f"127.0.0.1:{kport}", kafka_security_protocol="SASL_SSL",  # type: ignore[call-arg]
                     kafka_sasl_username="streamrag", kafka_ssl_ca_location=str(tls / "ca.pem"),
                     redis_url=f"rediss://127.0.0.1:{rport}/0", redis_ssl_ca=str(tls / "ca.pem"),
                     lancedb_uri=str(d / "lancedb"), generator="extractive", chunk_size=48, chunk_overlap=8,
                     fts_rebuild_every_s=1, metrics_port=0)
        ensure_topics(s.kafka, s.topic_layout)
        yield s
    finally:
        for script in ("kafka-down", "redis-down"):
            subprocess.run(["bash", str(ROOT / "scripts" / script)], env=env, capture_output=True, timeout=60)
        os.environ.pop("STREAMRAG_KAFKA_PASSWORD", None)
        os.environ.pop("STREAMRAG_REDIS_PASSWORD", None)


def test_ingest_and_query_over_sasl_ssl(settings: Settings, start_worker: Any) -> None:
    start_worker("ingest")
    start_worker("query")  # both at once on a fresh broker (see kafka_admin.wait_for_group_coordinator)
    p = JsonProducer(settings.kafka, settings.worker)
    p.send(settings.topics.documents, "acme/travel", {"op": "upsert", "tenant": "acme", "doc_id": "travel",
                                                     "version": 1, "text": "A hotel night in Berlin is reimbursed up to 180 euros."})
    p.flush()
    wait_for(lambda: len(rows(settings)) >= 1, timeout=120)
    q = Query(query_id=uuid.uuid4().hex, tenant="acme", text="How much is a hotel night in Berlin?")
    a = request_answer(settings.kafka, settings.topics, settings.worker, q, timeout=120)
    assert a.status == "ok" and "180 euros" in a.answer and a.citations[0].doc_id == "travel"
    assert redis_for(settings.redis, settings.cache.redis_prefix).healthy()  # the cache's Redis, over TLS with AUTH


def test_clients_without_credentials_are_refused(settings: Settings) -> None:
    plain = AdminClient({"bootstrap.servers": settings.kafka.bootstrap, "socket.timeout.ms": 3000})
    with pytest.raises(KafkaException):
        plain.list_topics(timeout=5)
    wrong = AdminClient({"bootstrap.servers": settings.kafka.bootstrap, "security.protocol": "SASL_SSL",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "streamrag", "sasl.password": "guess",
                         "ssl.ca.location": settings.kafka.ssl_ca_location})
    with pytest.raises(KafkaException):
        wrong.list_topics(timeout=5)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(settings.redis.url, ssl_ca_certs=settings.redis.ssl_ca, socket_timeout=3).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(settings.redis.url.replace("rediss://", "redis://"), socket_timeout=3).ping()
