"""``streamrag status``: per tenant documents and chunks, table versions, topic offsets and lag,
and each query worker's cache statistics and follower state."""

from __future__ import annotations

from typing import Any

from streamrag.connectors.kafka_admin import topic_offsets
from streamrag.connectors.redis_cache import redis_for
from streamrag.core.errors import StreamragError
from streamrag.core.settings import Settings
from streamrag.flows.components import make_store


def collect_status(s: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {"index": make_store(s).stats()}
    try:
        topics = topic_offsets(s, [s.topic_documents], group=s.ingest_group)
        topics.update(topic_offsets(s, [s.topic_queries], group=s.query_group))
        others = [s.topic_answers, s.topic_cache, s.topic_index_events, s.topic_dead_letters]
        topics.update(topic_offsets(s, others))
        report["kafka"] = {"bootstrap": s.kafka_bootstrap, "topics": topics}
    except StreamragError as exc:
        report["kafka"] = {"bootstrap": s.kafka_bootstrap, "error": str(exc)}
    stats = redis_for(s, timeout_s=0.5).all_stats()
    report["cache_workers"] = stats if stats is not None else {"error": f"redis at {s.redis_url} unavailable"}
    return report
