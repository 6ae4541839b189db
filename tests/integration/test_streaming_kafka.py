"""Generated answers through Kafka and the workers: deltas stream onto the answers topic ahead of the
final answer (same key, increasing seq), and ``request_answer`` hands them over as they arrive."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamrag.connectors.kafka_request import request_answer
from streamrag.core.settings import Settings
from streamrag.schemas.models import AnswerSources, Query
from tests.fakes import CollectingStream
from tests.integration.conftest import chunk_rows as rows
from tests.integration.conftest import produce, read_topic, wait_for

pytestmark = pytest.mark.integration
# the fast packaged model: this checks the plumbing, not the answer's quality (test_generation_local does); the
# whole two-sentence source in its prompt (a 135M model given the one matching sentence may answer "I don't know")
LOCAL = {"STREAMRAG_GENERATOR": "local", "STREAMRAG_LOCAL_MODEL": "smollm2-135m-instruct",
         "STREAMRAG_UNGROUNDED": "flag", "STREAMRAG_ANSWER_MAX_TOKENS": "40", "STREAMRAG_CACHE_ENABLED": "false",
         "STREAMRAG_PROMPT_PACKING": "chunks"}


@pytest.fixture(scope="module")
def workers(settings: Settings, start_worker: Any) -> Any:
    produce(settings, settings.topics.documents, [("acme/travel", {
        "op": "upsert", "tenant": "acme", "doc_id": "travel", "version": 1, "title": "Travel policy",
        "text": "A hotel night in Berlin is reimbursed up to 180 euros. Flights are booked in economy class.",
    })])
    ingest = start_worker("ingest")
    wait_for(lambda: len(rows(settings)) >= 1, timeout=120)
    return ingest, start_worker("query", overrides=LOCAL)


def test_answer_deltas_stream_ahead_of_the_final_answer(settings: Settings, workers: Any) -> None:
    qid = uuid.uuid4().hex
    q = Query.model_validate({"query_id": qid, "tenant": "acme", "text": "How much is a hotel night in Berlin?"})
    got = CollectingStream()
    a = request_answer(settings.kafka, settings.topics, settings.worker, q, timeout=180, on_delta=got)
    assert a.status == "ok" and a.generator == "local:smollm2-135m-instruct" and a.fallback == [], a
    assert a.deltas == len(got.pieces) > 1 and got.resets == 0
    assert a.usage.prompt_tokens > 0 and a.usage.completion_tokens > 0
    msgs = read_topic(settings, settings.topics.answers,
                      lambda m: any(x and x.get("query_id") == qid and x.get("kind") == "final" for x in m))
    mine = [m for m in msgs if m and m["query_id"] == qid]
    kinds = [m["kind"] for m in mine]
    assert kinds == ["delta"] * a.deltas + ["final"]  # every delta before the final, on one partition
    assert [m["seq"] for m in mine[:-1]] == list(range(a.deltas))


def test_a_streamed_answers_sources_come_first(settings: Settings, workers: Any) -> None:
    """Asked with options.stream: the sources leave right after retrieval, ahead of the first delta on the topic."""
    qid = uuid.uuid4().hex
    q = Query.model_validate({"query_id": qid, "tenant": "acme", "text": "How much is a hotel night in Berlin?",
                              "options": {"stream": True}})
    got = CollectingStream()
    sources: list[AnswerSources] = []
    a = request_answer(settings.kafka, settings.topics, settings.worker, q, timeout=180, on_delta=got,
                       on_sources=sources.append)
    assert a.status == "ok" and len(sources) == 1 and sources[0].sources[0].doc_id == "travel"
    assert [c.chunk_id for c in a.citations] == [c.chunk_id for c in sources[0].sources][: len(a.citations)]
    msgs = read_topic(settings, settings.topics.answers,
                      lambda m: any(x and x.get("query_id") == qid and x.get("kind") == "final" for x in m))
    kinds = [m["kind"] for m in msgs if m and m["query_id"] == qid]
    assert kinds == ["sources"] + ["delta"] * a.deltas + ["final"] and a.deltas > 0, kinds
