"""``streamrag status``: per tenant documents and chunks, table versions, topic offsets and lag,
and each query worker's cache statistics and follower state."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streamrag.connectors.crash_ledger import LEDGER_SUFFIX, read_ledger
from streamrag.connectors.kafka_admin import topic_offsets
from streamrag.connectors.metrics_server import OFFSETS, metrics_port
from streamrag.connectors.redis_cache import redis_for
from streamrag.core.errors import StreamragError
from streamrag.core.settings import Settings
from streamrag.flows.index_views import IndexViews


def collect_status(s: Settings) -> dict[str, Any]:
    active = IndexViews(s).current()  # the index version the workers serve
    report: dict[str, Any] = {"active_index": active.name, "index": active.store.stats()}
    try:
        topics = topic_offsets(s.kafka, [s.topics.documents], group=s.worker.ingest_group)
        topics.update(topic_offsets(s.kafka, [s.topics.queries], group=s.worker.query_group))
        others = [s.topics.answers, s.topics.cache, s.topics.index_events, s.topics.dead_letters]
        topics.update(topic_offsets(s.kafka, others))
        report["kafka"] = {"bootstrap": s.kafka.bootstrap, "topics": topics}
    except StreamragError as exc:
        report["kafka"] = {"bootstrap": s.kafka.bootstrap, "error": str(exc)}
    report["metrics"] = scrape_workers(s)
    report["crash_ledgers"] = crash_ledgers(s)
    stats = redis_for(s.redis, s.cache.redis_prefix, timeout_s=0.5).all_stats()
    report["cache_workers"] = stats if stats is not None else {"error": f"redis at {s.redis.url} unavailable"}
    return report


SUMMED = ("streamrag_records_total", "streamrag_dead_letters_total", "streamrag_answers_total",
          "streamrag_cache_lookups_total", "streamrag_llm_tokens_total", "streamrag_generator_fallbacks_total",
          "streamrag_auth_rejected_total", "streamrag_pii_redactions_total", "streamrag_injection_flagged_total",
          "streamrag_step_failures_total", "streamrag_worker_crash_restarts", "streamrag_crash_dead_letters_total")


def crash_ledgers(s: Settings) -> dict[str, Any]:
    """Each worker's restarts after a crash, from the crash ledgers in STREAMRAG_STATE_DIR on this machine."""
    out: dict[str, Any] = {}
    for path in sorted(Path(s.worker.state_dir).expanduser().glob(f"*{LEDGER_SUFFIX}")):
        data = read_ledger(path)
        out[path.name.removesuffix(LEDGER_SUFFIX)] = {
            "crash_restarts": data.get("crash_restarts", 0), "last_crash": data.get("last_crash"),
            "suspects": len(data.get("suspects") or []), "dead_lettered": data.get("dead_lettered", 0)}
    return out


def scrape_workers(s: Settings, host: str = "127.0.0.1") -> dict[str, Any]:
    """The same numbers Prometheus scrapes, from this machine's workers (process 0 of each kind)."""
    out: dict[str, Any] = {}
    if s.worker.metrics_port == 0:
        return out
    for kind in OFFSETS:
        url = f"http://{host}:{metrics_port(s.worker, kind)}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                text = r.read().decode()
        except (urllib.error.URLError, OSError):
            continue
        sums: dict[str, float] = defaultdict(float)
        for fam in text_string_to_metric_families(text):
            for sample in fam.samples:
                if sample.name in SUMMED:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                    sums[f"{sample.name}{{{labels}}}"] += sample.value
        out[kind] = {"endpoint": url, **dict(sorted(sums.items()))}
    return out
