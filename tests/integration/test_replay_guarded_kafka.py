"""A replay is the ingest path run again, over real Kafka: replaying the active version with the ingest workers
stopped sends index events, so a query worker's cache drops the answer it held from the replaced text."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from streamrag.core.settings import Settings
from streamrag.tools.replay import replay
from tests.integration.conftest import produce, read_topic

pytestmark = pytest.mark.integration
QUESTION = "How many vacation days do employees get?"


def doc(version: int, text: str) -> tuple[str, dict[str, Any]]:
    return "acme/vacation", {"op": "upsert", "tenant": "acme", "doc_id": "vacation", "version": version,
                             "title": "Vacation", "text": text}


def ask(s: Settings) -> dict[str, Any]:
    qid = uuid.uuid4().hex
    produce(s, s.topics.queries, [(qid, {"query_id": qid, "tenant": "acme", "text": QUESTION,
                                         "principal": {"user": "alice", "roles": []}})])
    msgs = read_topic(s, s.topics.answers, lambda m: any(a and a["query_id"] == qid for a in m), timeout=180)
    (a,) = [a for a in msgs if a and a["query_id"] == qid]
    return a


def test_a_replay_into_the_active_version_drops_the_cached_answer(settings: Settings, start_worker: Any) -> None:
    s = settings
    produce(s, s.topics.documents, [doc(1, "Employees get twenty five days of paid vacation per year.")])
    first = replay(s, "default", ingest_stopped=True)  # the ingest workers are stopped: replay writes the active version
    assert first.outcomes == {"indexed": 1} and first.caught_up
    start_worker("query", overrides={"STREAMRAG_CACHE_REDIS_PREFIX": f"replay-{uuid.uuid4().hex[:8]}:"})
    a = ask(s)
    assert a["status"] == "ok" and "twenty five" in a["answer"]
    cached = ask(s)
    assert cached["cached"] and cached["answer"] == a["answer"]
    produce(s, s.topics.documents, [doc(2, "Employees now get thirty days of paid vacation per year.")])
    again = replay(s, "default", ingest_stopped=True)  # resumes: only the new text
    assert again.read == 1 and again.outcomes == {"indexed": 1} and again.dead_letters == 0
    read_topic(s, s.topics.index_events,
               lambda m: any(e and e["doc_id"] == "vacation" and e["version"] == 2 for e in m), timeout=30)
    time.sleep(1.5)  # the query worker's cache follower applies index events within a second
    after = ask(s)
    assert not after["cached"] and "thirty" in after["answer"]
