import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ports import Hit
from streamrag.core.query.processor import QueryProcessor, Reply
from streamrag.core.records import RawRecord
from streamrag.core.retrieval import fuse, rrf
from streamrag.core.security import acl_tokens, principal_may_see, principal_tokens
from streamrag.core.settings import Settings
from streamrag.schemas.models import Acl, DeadLetter, Principal, Query
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder

DOCS = {
    "kafka": "Kafka is a distributed log. Producers append records and consumers read them in order.",
    "lance": "LanceDB is an embedded vector database built on the Lance columnar format.",
    "redis": "Redis is an in-memory key value store often used as a cache with expiry.",
}


def make(settings: Settings, store: LanceStore, **kw: Any) -> tuple[Indexer, QueryProcessor]:
    emb = HashEmbedder()
    s = settings.model_copy(update={"answer_min_score": 0.05, **kw})
    return Indexer(s, store, emb), query_processor(s, store, emb)


def q(text: str, tenant: str = "acme", **kw: Any) -> Query:
    return Query.model_validate({"query_id": "q-" + text[:8], "tenant": tenant, "text": text, **kw})


def test_answers_cite_the_right_document(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    ing.process_batch([rec(change(k, 1, v, title=k)) for k, v in DOCS.items()])
    (a,) = qp.answer_many([q("which store is a cache with expiry?")])
    assert a.status == "ok" and a.citations[0].doc_id == "redis"
    assert "[1]" in a.answer and {"embed", "search", "fuse", "rerank", "generate"} <= set(a.timings_ms)


def test_update_changes_next_answer_and_empty_tenant_has_no_answer(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    ing.process_batch([rec(change("redis", 1, DOCS["redis"]))])
    ing.process_batch([rec(change("redis", 2, "Redis now stores purple elephants in memory."))])
    (a,) = qp.answer_many([q("purple elephants")])
    assert a.citations[0].version == 2 and "elephants" in a.answer
    (b,) = qp.answer_many([q("purple elephants", tenant="nobody")])
    assert b.status == "no_answer" and not b.citations


def test_metadata_and_date_filters(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    ing.process_batch([
        rec(change("a", 1, "alpha report on caching", metadata={"kind": "report"}, updated_at="2024-01-01T00:00:00Z")),
        rec(change("b", 1, "beta memo on caching", metadata={"kind": "memo"}, updated_at="2025-06-01T00:00:00Z")),
    ])
    (a,) = qp.answer_many([q("caching", filters={"metadata": {"kind": "memo"}})])
    assert [c.doc_id for c in a.citations] == ["b"]
    (b,) = qp.answer_many([q("caching", filters={"metadata": {"kind": ["memo", "report"]}})])
    assert {c.doc_id for c in b.citations} == {"a", "b"}
    (c,) = qp.answer_many([q("caching", filters={"updated_to": "2024-12-31T00:00:00Z"})])
    assert [x.doc_id for x in c.citations] == ["a"]


def test_bad_query_gets_dead_letter_and_error_answer(settings: Settings, store: LanceStore) -> None:
    _, qp = make(settings, store)
    out = [o for _, o in qp.process_batch([
        RawRecord(value=json.dumps({"query_id": "q9", "tenant": "acme"}).encode(), key=b"q9"),
        RawRecord(value=b"not json", key=b"q10"),
        RawRecord(value=b"[]", key=None),
    ])]
    dead = [o for o in out if isinstance(o, DeadLetter)]
    answers = [o.answer for o in out if isinstance(o, Reply)]
    assert len(dead) == 3
    assert sorted(a.query_id for a in answers) == ["q10", "q9"] and all(a.status == "error" for a in answers)
    assert {a.code for a in answers} == {d.code for d in dead} == {"invalid_query"}


def test_a_query_read_past_its_deadline_is_answered_deadline_exceeded(settings: Settings, store: LanceStore) -> None:
    """The worker's answer to a query whose deadline_ms passed before it was read: an error with its code (the
    gateway's 504), and a fresh one is answered."""
    ing, qp = make(settings, store)
    ing.process_batch([rec(change("redis", 1, DOCS["redis"]))])
    sent = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
    late = {"query_id": "late", "tenant": "acme", "text": "which store is a cache?", "deadline_ms": 500, "sent_at": sent}
    fresh = {**late, "query_id": "fresh", "deadline_ms": 60_000}
    out = [o for _, o in qp.process_batch([RawRecord(value=json.dumps(x).encode()) for x in (late, fresh)])]
    answers = {o.answer.query_id: o.answer for o in out if isinstance(o, Reply)}
    assert answers["late"].status == "error" and answers["late"].code == "deadline_exceeded"
    assert answers["fresh"].status == "ok" and answers["fresh"].code is None
    (unknown,) = qp.answer_many([q("which store?", options={"index": "nosuch"})])  # an index version not there
    assert unknown.status == "error" and unknown.code == "invalid_query"


def test_rrf_and_weighted_fusion() -> None:
    def h(i: str, s: float) -> Hit:
        return Hit(i, "k", i, 0, 1, "", "", s)

    dense = [h("a", 0.9), h("b", 0.8), h("c", 0.1)]
    bm25 = [h("c", 12.0), h("a", 3.0)]
    scores = rrf([dense, bm25])
    assert scores["a"] > scores["c"] > scores["b"]
    ranked = fuse([dense], [bm25], "weighted", 1.0)
    assert [r.hit.id for r in ranked][:2] == ["a", "b"]
    ranked = fuse([dense], [bm25], "weighted", 0.0)
    assert ranked[0].hit.id == "c"


def test_mmr_prefers_diverse_chunks(settings: Settings, store: LanceStore) -> None:
    # rank fusion: with three candidates, min-max scores put the least similar one at 0
    ing, qp = make(settings.model_copy(update={"fusion": "rrf"}), store, rerank="mmr")
    same = "Caching with Redis keeps answers fast and cheap for repeated questions."
    ing.process_batch([rec(change("d1", 1, same)), rec(change("d2", 1, same + " ")),
                       rec(change("d3", 1, "Caching in a CDN is about edge locations."))])
    (a,) = qp.answer_many([q("caching answers fast", top_k=2)])
    assert {c.doc_id for c in a.citations} & {"d3"}


NAMES = st.sampled_from(["u1", "u2", "u3"])
ROLES = st.sampled_from(["r1", "r2"])


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(
        st.tuples(st.sampled_from(["t1", "t2"]), st.lists(NAMES, max_size=2), st.lists(ROLES, max_size=1)),
        min_size=1, max_size=8,
    ),
    asker=st.tuples(st.sampled_from(["t1", "t2", "t3"]), st.one_of(st.none(), NAMES), st.lists(ROLES, max_size=2)),
)
def test_no_result_ever_leaks_across_tenant_or_acl(tmp_path_factory: Any, docs: Any, asker: Any) -> None:
    s = Settings(lancedb_uri=str(tmp_path_factory.mktemp("p") / "db"), generator="extractive", _env_file=None)  # type: ignore[call-arg]
    store = LanceStore(s.lancedb_path(), fts_rebuild_every_s=0)
    ing, qp = make(s, store)
    acl_by_doc = {}
    recs = []
    for i, (tenant, users, roles) in enumerate(docs):
        recs.append(rec(change(f"d{i}", 1, f"shared words about policy number {i}", tenant=tenant,
                               acl={"users": users, "roles": roles})))
        acl_by_doc[(tenant, f"d{i}")] = acl_tokens(Acl(users=users, roles=roles))
    ing.process_batch(recs)
    tenant, user, roles = asker
    principal = Principal(user=user, roles=roles)
    for fusion in ("dense", "bm25", "rrf"):
        (a,) = qp.answer_many([q("shared words about policy", tenant=tenant, top_k=20,
                                 principal=principal.model_dump(), options={"fusion": fusion})])
        assert a.status in ("ok", "no_answer"), a  # answered (never an error), and what it cites is checked below
        for c in a.citations:
            assert (tenant, c.doc_id) in acl_by_doc, "result from another tenant"
            assert principal_may_see(principal_tokens(principal), acl_by_doc[(tenant, c.doc_id)])
        visible = [d for (t, d), toks in acl_by_doc.items() if t == tenant and principal_may_see(principal_tokens(principal), toks)]
        if fusion == "bm25":
            assert len(a.citations) == min(len(visible), 20)


def test_citations_are_enriched_with_document_rows(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    ing.process_batch([rec(change("m", 1, "Enrichment adds the document's metadata to citations.", title="Meta doc",
                                  metadata={"kind": "guide", "pages": 3}, updated_at="2025-01-02T03:04:05Z"))])
    (a,) = qp.answer_many([q("metadata citations enrichment")])
    c = a.citations[0]
    assert c.title == "Meta doc" and c.metadata == {"kind": "guide", "pages": 3}
    assert c.updated_at is not None and c.updated_at.year == 2025 and "enrich" in a.timings_ms


class EncodingWaitsForBm25(HashEmbedder):
    """Encodes a question only once a BM25 search has started (or after 5 s): the search ran beside it."""

    def __init__(self, bm25_started: threading.Event) -> None:
        super().__init__()
        self.bm25_started = bm25_started
        self.saw_bm25_running: list[bool] = []

    def embed_queries(self, texts: list[str]) -> Any:
        self.saw_bm25_running.append(self.bm25_started.wait(5))
        return super().embed_queries(texts)


def test_the_bm25_search_runs_while_the_question_is_encoded(settings: Settings, store: LanceStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings.model_copy(update={"answer_min_score": 0.05, "fusion_evidence_ttl_s": 0})
    Indexer(s, store).process_batch([rec(change(k, 1, v, title=k)) for k, v in DOCS.items()])
    started = threading.Event()
    search = store.text_search

    def text_search(*args: Any, **kw: Any) -> Any:
        started.set()
        return search(*args, **kw)

    monkeypatch.setattr(store, "text_search", text_search)
    emb = EncodingWaitsForBm25(started)
    (a,) = query_processor(s, store, emb).answer_many([q("which store is a cache with expiry?")])
    assert a.status == "ok" and a.citations[0].doc_id == "redis"
    assert emb.saw_bm25_running == [True]
