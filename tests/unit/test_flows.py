"""Both dataflows in-process with bytewax.testing: the named steps, outputs with their records."""

from __future__ import annotations

import json
from typing import Any

from bytewax.testing import TestingSink, TestingSource, run_main

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.records import Outgoing, RawRecord
from streamrag.core.settings import Settings
from streamrag.flows import ingest as ingest_flow
from streamrag.flows import query as query_flow
from streamrag.flows.local import ingest_records
from streamrag.schemas.models import DeadLetter, IndexEvent
from streamrag.schemas.vocabulary import INGEST_STAGES
from tests.conftest import change, query_processor
from tests.fakes import HashEmbedder


def kafka_rec(obj: Any, offset: int, key: bytes = b"k") -> RawRecord:
    value = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return RawRecord(value=value, key=key, topic="docs", partition=0, offset=offset)


def test_ingest_flow_has_one_named_step_per_stage(settings: Settings, store: LanceStore) -> None:
    """The flow's steps are ``INGEST_STAGES`` (where the stages are declared), all of them, in that order and
    nothing between them, on the embedded path and on the Kafka path; each names a stage the stages implement."""
    stages = IngestStages.from_settings(settings, store, HashEmbedder())
    embedded = ingest_flow.build_flow(settings, source=TestingSource([]), sink=TestingSink([]), stages=stages)
    kafka = ingest_flow.build_flow(settings, stages=stages)
    for flow, head, tail in ((embedded, ["in"], ["finished", "outputs", "out"]),
                             (kafka, ["in", "raw", "consume_err"], ["finished", "events"])):
        steps = [s.step_name for s in flow.substeps]
        assert steps[: len(head) + len(INGEST_STAGES) + len(tail)] == [*head, *INGEST_STAGES, *tail]
    assert "extract" in INGEST_STAGES and all(callable(getattr(stages, name, None)) for name in INGEST_STAGES)


def test_ingest_flow_indexes_and_dead_letters_in_process(settings: Settings, store: LanceStore) -> None:
    stages = IngestStages.from_settings(settings, store, HashEmbedder(fail_on="boom"))
    recs = [kafka_rec(change("a", 1, "alpha text"), 0), kafka_rec(b"{bad", 1),
            kafka_rec(change("b", 1, "boom text"), 2), kafka_rec(change("c", 1, "gamma text"), 3)]
    report = ingest_records(settings, recs, stages=stages)
    assert sorted(e.doc_id for e in report.events if e.status == "indexed") == ["a", "c"]
    assert sorted((d.stage, d.code, d.source.offset) for d in report.dead) == [("embed", "embedding_failed", 2),
                                                                              ("parse", "invalid_record", 1)]
    assert {r["doc_id"] for r in store.chunk_rows()} == {"a", "c"}


def test_ingest_messages_carry_the_record_they_answer(settings: Settings) -> None:
    rec = kafka_rec(change("a", 1, "x"), 7, key=b"acme/a")
    ev = IndexEvent(tenant="acme", doc_id="a", version=1, op="upsert", status="indexed")
    msg = ingest_flow.to_message(settings, ingest_flow.Finished(rec, ev))
    assert (msg.topic, msg.key, msg.source) == (settings.topics.index_events, b"acme/a", rec)
    dead = ingest_flow.to_message(settings, ingest_flow.Finished(rec, rec.dead("parse", "invalid_record", "bad")))
    assert dead.topic == settings.topics.dead_letters and dead.key == b"acme/a"
    assert DeadLetter.model_validate_json(dead.value).original() == rec.value


def test_query_flow_answers_each_query_once_in_process(settings: Settings, store: LanceStore) -> None:
    s = settings.model_copy(update={"answer_min_score": 0.05})
    ingest_records(s, [kafka_rec(change("vac", 1, "Employees get twenty five vacation days."), 0)],
                   stages=IngestStages.from_settings(s, store, HashEmbedder()))
    store.maintain(force=True)
    qp = query_processor(s, store, HashEmbedder())
    got: list[Outgoing] = []
    queries = [kafka_rec({"query_id": f"q{i}", "tenant": "acme", "text": "vacation days"}, i, key=f"q{i}".encode())
               for i in range(3)]
    queries.append(kafka_rec(b"not json", 3, key=b"q3"))
    flow = query_flow.build_flow(s, processor=qp, source=TestingSource(queries), sink=TestingSink(got))
    assert [x.step_name for x in flow.substeps][:4] == ["in", "parse", "retrieve", "generate"]
    run_main(flow)
    answers = [json.loads(m.value) for m in got if m.topic == s.topics.answers]
    assert sorted(a["query_id"] for a in answers) == ["q0", "q1", "q2", "q3"]
    assert all(a["status"] == "ok" and a["citations"][0]["doc_id"] == "vac" for a in answers if a["query_id"] != "q3")
    assert [m.source.offset for m in got if m.topic == s.topics.dead_letters and m.source] == [3]


def test_every_answer_has_an_audit_record_with_text_only_where_allowed(settings: Settings) -> None:
    from streamrag.core.query.processor import Reply
    from streamrag.schemas.models import Answer, Citation, Query

    s = settings.model_copy(update={"audit_text_tenants": ["globex"]})
    for tenant, keeps_text in (("acme", False), ("globex", True)):
        q = Query.model_validate({"query_id": "q1", "tenant": tenant, "text": "How many vacation days?",
                                  "principal": {"user": "u1", "roles": ["hr"]}})
        a = Answer(query_id="q1", tenant=tenant, status="ok", answer="25 [1]", generator="local:x",
                   citations=[Citation(doc_id="vac", version=3, chunk_id="c")], timings_ms={"search": 2.0, "generate": 8.0})
        answer_msg, audit_msg = query_flow.to_messages(s, (RawRecord(value=b"{}", key=b"q1"), Reply(a, None, q)))
        assert answer_msg.topic == s.topics.answers and audit_msg.topic == s.topics.audit and audit_msg.key == b"q1"
        audit = json.loads(audit_msg.value)
        assert audit["principal"] == "u1" and audit["roles"] == ["hr"] and audit["status"] == "ok"
        assert audit["cites"] == [{"doc_id": "vac", "version": 3}] and audit["latency_ms"] == 10.0
        assert len(audit["query_sha256"]) == 64 and (audit.get("query_text") == q.text) is keeps_text
    q = Query.model_validate({"query_id": "q2", "tenant": "globex", "text": "Why was jane@example.com refused?"})
    reply = Reply(Answer(query_id="q2", tenant="globex", status="no_answer"), None, q)
    redacted = query_flow.to_messages(s.model_copy(update={"pii_redaction": True}), (RawRecord(value=b"{}"), reply),
                                      query_flow.audit_redactors(s.model_copy(update={"pii_redaction": True})))[1]
    assert json.loads(redacted.value)["query_text"] == "Why was [EMAIL] refused?"  # PII never reaches the audit


def test_cache_entries_leave_through_the_sink_with_their_record(settings: Settings, store: LanceStore) -> None:
    """No side producer: a new cache entry is a message of the flow, after its answer, carrying the query's
    record (so its offset is committed only once the entry is flushed too). The processor is the worker's as
    ``make_query_processor`` makes it: ``build_flow`` alone routes its entries to the sink."""
    from bytewax.testing import TestingSink, TestingSource, run_main

    from streamrag.core.cache.policy import TenantPolicy
    from streamrag.core.cache.semantic_cache import SemanticCache
    from streamrag.schemas.models import CacheEntry
    from tests.fakes import MemoryPayloadStore

    s = settings.model_copy(update={"answer_min_score": 0.05})
    ingest_records(s, [kafka_rec(change("vac", 1, "Employees get twenty five vacation days"), 0)],
                   stages=IngestStages.from_settings(s, store, HashEmbedder()))
    store.maintain(force=True)
    published: list[str] = []
    cache = SemanticCache(MemoryPayloadStore(), default_policy=TenantPolicy(threshold=0.99),
                          publish=lambda k, e: published.append(k))
    qp = query_processor(s, store, HashEmbedder(), cache=cache)
    got: list[Outgoing] = []
    q0 = kafka_rec({"query_id": "q0", "tenant": "acme", "text": "vacation days"}, 5, key=b"q0")
    run_main(query_flow.build_flow(s, processor=qp, source=TestingSource([q0]), sink=TestingSink(got)))
    topics = [m.topic for m in got]
    assert topics.index(s.topics.answers) < topics.index(s.topics.cache) and published == []
    (entry_msg,) = [m for m in got if m.topic == s.topics.cache]
    entry = CacheEntry.model_validate_json(entry_msg.value)
    assert entry.answer.query_id == "q0" and entry_msg.key == f"acme/{entry.cache_key}".encode()
    assert entry_msg.source is not None and entry_msg.source.offset == 5


def test_a_query_worker_embeds_on_one_thread_unless_told_otherwise() -> None:
    s = Settings()
    assert query_flow.query_worker_settings(s).index.torch_threads == 1
    assert query_flow.query_worker_settings(s.model_copy(update={"torch_threads": 3})).index.torch_threads == 3
    assert query_flow.query_worker_settings(s.model_copy(update={"query_torch_threads": 0})).index.torch_threads == 0
