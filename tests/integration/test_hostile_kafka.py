"""Hostile records against running workers on real Kafka: both stay up, every record is accounted for (a dead
letter or an answer), and a valid document and query go through afterwards."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamrag.core.settings import Settings
from streamrag.tools.fuzz import run_fuzz
from tests.integration.conftest import chunk_rows, produce, read_topic, wait_for

pytestmark = pytest.mark.integration


def test_two_thousand_hostile_records_leave_both_workers_answering(settings: Settings, start_worker: Any) -> None:
    ingest, query = start_worker("ingest"), start_worker("query")
    report = run_fuzz(settings, 2000, seed=7, timeout_s=420, tenant="fuzz")
    assert report.unaccounted == [], report.as_dict()
    assert ingest.alive() and query.alive(), report.as_dict()
    assert report.dead_letters["parse"] >= 500 and report.dead_letters["validate"] >= 100
    print(report.as_dict())
    assert report.index_events["indexed"] >= 50
    # a bad query's dead letter may be seen before its error answer (the report ends once each record is
    # accounted for by either): the error answers are counted on the answers topic itself
    def errors(m: list[Any]) -> int:
        return sum(1 for a in m if isinstance(a, dict) and a.get("status") == "error")

    assert errors(read_topic(settings, settings.topics.answers, lambda m: errors(m) >= 200, timeout=120)) >= 200

    produce(settings, settings.topics.documents, [("acme/after", {
        "op": "upsert", "tenant": "acme", "doc_id": "after", "version": 1, "title": "after",
        "text": "The fuzzing run ended and the office coffee machine was repaired on Tuesday."})])
    wait_for(lambda: any(r["doc_id"] == "after" for r in chunk_rows(settings, "acme")), timeout=120)
    qid = uuid.uuid4().hex
    produce(settings, settings.topics.queries, [(qid, {"query_id": qid, "tenant": "acme",
                                                      "text": "When was the coffee machine repaired?"})])
    got = read_topic(settings, settings.topics.answers, lambda m: any(a and a.get("query_id") == qid for a in m),
                     timeout=120)
    answer = next(a for a in got if a and a.get("query_id") == qid)
    assert answer["status"] == "ok" and answer["citations"][0]["doc_id"] == "after"
    assert ingest.alive() and query.alive()
