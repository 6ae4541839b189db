"""Auto fusion (BM25 weighted by agreement), document evidence, tuning pairs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ports import Hit
from streamrag.core.retrieval import Retriever, agreement, auto_alpha, fuse, with_doc_evidence
from streamrag.core.settings import Settings
from streamrag.core.tuning import training_pairs
from streamrag.schemas.models import Query


def hits(prefix: str, docs: list[str], top: float = 1.0) -> list[Hit]:
    return [Hit(f"{prefix}{d}:0", d, d, 0, 1, "", "", top - 0.05 * i) for i, d in enumerate(docs)]


def test_agreement_and_weight_follow_the_overlap_of_top_documents() -> None:
    dense = hits("c", [f"d{i}" for i in range(10)])
    same = hits("c", [f"d{i}" for i in range(10)][::-1], top=12.0)
    other = hits("c", [f"x{i}" for i in range(10)], top=12.0)
    assert agreement(dense, same) == 1.0 and agreement(dense, other) == 0.0
    assert auto_alpha(dense, same) == 0.5  # agreeing lists: equal weights
    assert auto_alpha(dense, other) == 1.0  # a list that agrees on nothing does not count
    one = hits("c", ["d0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9"], top=12.0)
    assert 0.5 < auto_alpha(dense, one) < 1.0  # one shared document: BM25 counts, less than dense
    assert auto_alpha(dense, hits("c", ["d0", "d1", *[f"x{i}" for i in range(8)]], top=12.0)) == 0.5
    assert auto_alpha(dense, []) == 1.0 and auto_alpha([], other) == 0.0


def test_auto_keeps_dense_order_when_bm25_is_noise() -> None:
    dense = hits("c", [f"d{i}" for i in range(10)])
    noise = hits("c", [f"x{i}" for i in range(10)], top=30.0)
    auto = [r.hit.doc_id for r in fuse([dense], [noise], "auto", 0.5)][:10]
    rrf = [r.hit.doc_id for r in fuse([dense], [noise], "rrf", 0.5)][:10]
    assert auto == [f"d{i}" for i in range(10)]
    assert any(d.startswith("x") for d in rrf)  # equal-weight fusion lets the noise in


def test_doc_evidence_lifts_a_document_with_several_good_chunks() -> None:
    from streamrag.core.retrieval import Ranked

    def r(doc: str, n: int, s: float) -> Ranked:
        return Ranked(Hit(f"{doc}:{n}", doc, doc, n, 1, "", "", s), s)

    ranked = [r("a", 0, 0.80), r("b", 0, 0.78), r("b", 1, 0.70), r("b", 2, 0.60)]
    assert [x.hit.doc_id for x in with_doc_evidence(ranked, 0.0)][:1] == ["a"]
    lifted = with_doc_evidence(ranked, 0.1)
    assert lifted[0].hit.id == "b:0" and abs(lifted[0].score - (0.78 + 0.1 * (0.70 + 0.60))) < 1e-9


def test_training_pairs_use_titles_or_inverse_cloze_never_more_than_one_per_document() -> None:
    rows = [{"doc_key": "k1", "chunk_no": 0, "title": "Aspirin lowers heart attack risk", "text": "Body one."},
            {"doc_key": "k1", "chunk_no": 1, "title": "Aspirin lowers heart attack risk", "text": "Body two."},
            {"doc_key": "k2", "chunk_no": 0, "title": "",
             "text": "The first sentence is long enough here. Then the rest of the chunk goes on for quite a few more words."},
            {"doc_key": "k3", "chunk_no": 0, "title": "", "text": "Too short."}]
    pairs = training_pairs(rows)
    assert len(pairs) == 2
    assert ("Aspirin lowers heart attack risk", "Body one.") in pairs or ("Aspirin lowers heart attack risk", "Body two.") in pairs
    assert ("The first sentence is long enough here.", "Then the rest of the chunk goes on for quite a few more words.") in pairs


def test_each_retriever_returns_at_least_the_configured_candidates() -> None:
    asked: list[int] = []

    class Store:
        def vector_search(self, vector: Any, scope: Any, limit: int, exact: bool = False) -> list[Hit]:
            asked.append(limit)
            return []

        def text_search(self, text: str, scope: Any, limit: int, titles: bool = True) -> list[Hit]:
            asked.append(limit)
            return []

    s = Settings(min_candidates=30, overfetch=4)
    r = Retriever.for_config(Store(), s.retrieval)  # type: ignore[arg-type]
    r.retrieve(Query(query_id="q", tenant="t1", text="x", top_k=5), [[0.0]], ["x"], "auto", 0.5)
    r.retrieve(Query(query_id="q", tenant="t1", text="x", top_k=50), [[0.0]], ["x"], "auto", 0.5)
    assert asked == [30, 30, 200, 200]  # min-max fusion needs a deep list; more when top_k x overfetch is more


def test_a_failing_retriever_degrades_the_answer_and_is_counted(settings: Settings, store: LanceStore) -> None:
    """BM25 failing (not merely empty) is never silent: the answer comes from dense alone, says so, is counted
    and is not cached; both failing is an error answer."""
    from prometheus_client import REGISTRY

    from streamrag.core.errors import SearchFailed
    from streamrag.core.ingest.stages import IngestStages
    from tests.conftest import change, query_processor, rec
    from tests.fakes import HashEmbedder

    s = settings.model_copy(update={"answer_min_score": 0.0})
    IngestStages.from_settings(s, store, HashEmbedder()).process_batch([rec(change("vac", 1, "twenty five vacation days"))])
    store.maintain(force=True)

    def broken(*_a: Any, **_k: Any) -> Any:
        raise SearchFailed("BM25 search failed: OSError: disk gone")

    before = REGISTRY.get_sample_value("streamrag_search_failures_total", {"retriever": "bm25"}) or 0.0
    store.text_search = broken  # type: ignore[method-assign]
    qp = query_processor(s, store, HashEmbedder())
    a = qp.answer_many([Query(query_id="q", tenant="acme", text="vacation days")])[0]
    assert a.status == "ok" and a.citations[0].doc_id == "vac"
    assert any(f.startswith("retrieval: bm25 unavailable") for f in a.fallback)
    assert REGISTRY.get_sample_value("streamrag_search_failures_total", {"retriever": "bm25"}) == before + 1
    store.vector_search = broken  # type: ignore[method-assign]
    a = qp.answer_many([Query(query_id="q2", tenant="acme", text="vacation days")])[0]
    assert a.status == "error" and "SearchFailed" in (a.error or "")


def test_the_store_raises_a_typed_error_when_a_search_fails(settings: Settings, store: LanceStore) -> None:
    import pytest

    from streamrag.core.errors import SearchFailed
    from streamrag.core.ingest.stages import IngestStages
    from streamrag.core.scope import Condition, Scope
    from tests.conftest import change, rec
    from tests.fakes import HashEmbedder

    IngestStages.from_settings(settings, store, HashEmbedder()).process_batch([rec(change("vac", 1, "vacation days"))])
    acme = Scope.of("acme", ["*"])
    assert store.text_search("vacation", acme, 5) == []  # no FTS index yet: nothing can match
    store.maintain(force=True)
    assert [h.doc_id for h in store.text_search("vacation", acme, 5)] == ["vac"]
    with pytest.raises(SearchFailed):  # a scope the store cannot apply (its renderer refuses a NUL)
        store.vector_search([0.0] * 64, Scope.of("acme", ["*"], [Condition("doc_id", "==", "x\x00")]), 5)
    for index_dir in Path(store.uri, "chunks.lance", "_indices").iterdir():  # a lost FTS index: loud, not empty
        shutil.rmtree(index_dir)
    with pytest.raises(SearchFailed):
        LanceStore(store.uri).text_search("vacation", acme, 5)
