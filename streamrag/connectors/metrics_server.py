"""Serving this process's Prometheus metrics, and a thread that keeps the consumer-lag gauge current."""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaException
from prometheus_client import start_http_server

from streamrag.connectors.kafka_admin import topic_offsets
from streamrag.core import telemetry
from streamrag.core.config import KafkaConfig, WorkerConfig
from streamrag.core.errors import ServiceUnavailable
from streamrag.schemas.vocabulary import WorkerKind

log = logging.getLogger(__name__)
OFFSETS: dict[WorkerKind, int] = {"ingest": 0, "query": 1, "maintain": 2}


def metrics_port(w: WorkerConfig, kind: WorkerKind, process_id: int = 0) -> int:
    """STREAMRAG_METRICS_PORT + 0 (ingest), 1 (query), 2 (maintain), + 10 per bytewax process."""
    return w.metrics_port + OFFSETS[kind] + w.metrics_port_stride * process_id


def serve_metrics(w: WorkerConfig, kind: WorkerKind, process_id: int = 0) -> int | None:
    """Start the /metrics endpoint; a port in use is logged, and the worker runs on without metrics."""
    if w.metrics_port == 0:
        return None
    port = metrics_port(w, kind, process_id)
    try:
        start_http_server(port, addr=w.metrics_host)
    except OSError as exc:
        log.error("metrics endpoint %s:%d not started: %s", w.metrics_host, port, exc)
        return None
    log.info("metrics on http://%s:%d/metrics", w.metrics_host, port)
    return port


def observe_worker(k: KafkaConfig, w: WorkerConfig, kind: WorkerKind, group: str, topic: str,
                   process_id: int = 0) -> None:
    """A worker's /metrics endpoint, and (process 0 only) the lag reporter of its consumer group."""
    serve_metrics(w, kind, process_id)
    if process_id == 0:
        LagReporter(k, group, topic).start()


class LagReporter(threading.Thread):
    """Every few seconds: end offset minus committed offset, per partition of the group's topic."""

    def __init__(self, k: KafkaConfig, group: str, topic: str, every_s: float = 15.0) -> None:
        super().__init__(name=f"lag-{group}", daemon=True)
        self.k, self.group, self.topic, self.every_s = k, group, topic, every_s
        self.stopped = threading.Event()

    def report(self) -> None:
        info = topic_offsets(self.k, [self.topic], self.group).get(self.topic, {})
        ends, done = info.get("end_offsets", {}), info.get("committed", {})
        for p, end in ends.items():
            telemetry.CONSUMER_LAG.labels(self.group, self.topic, str(p)).set(max(end - done.get(p, 0), 0))

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            try:
                self.report()
            except (KafkaException, ServiceUnavailable) as exc:  # the next round tries again
                log.warning("consumer lag not measured: %s", exc)
