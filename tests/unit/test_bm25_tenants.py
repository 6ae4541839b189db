"""BM25 statistics are each tenant's own (issue #34, finding 8; docs/security.md): another tenant's chunks
holding a word change neither the BM25 scores nor the ranking of a tenant's rows, on the vector mirror's path
(postings in memory), on LanceDB's path (its candidates scored again) and in the citations of the query path."""

from __future__ import annotations

from typing import Any

import lancedb
import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.scope import Scope, filter_conditions
from streamrag.core.settings import Settings
from streamrag.schemas.models import Query, QueryFilters
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder

EMB = HashEmbedder()
MINE = [  # tenant acme: two rows with the word, of other lengths and counts, and rows without it
    ("a1", "The falcon nests on the cliffs above the harbour every spring."),
    ("a2", "A falcon, a falcon: the survey counted birds along the coast road and the old quarry near town."),
    ("a3", "Harbour cliffs and the coast road are closed for repairs until the spring."),
    ("a4", "The quarry near town is a nature reserve with a visitor centre and a cafe."),
]
CASES = (0, 1, 5, 20)  # chunks of the other tenant holding "falcon"


def _theirs(n: int) -> list[dict[str, Any]]:
    return [change(f"b{i}", 1, f"falcon report {i}: a falcon seen over the estuary", tenant="rival") for i in range(n)]


def _scores(store: LanceStore, text: str, scope: Any) -> list[tuple[str, float]]:
    return [(h.doc_id, h.score) for h in store.text_search(text, scope, 10)]


def test_another_tenants_words_change_no_score_or_rank(settings: Settings) -> None:
    mirrored = LanceStore(settings.lancedb_path(), mirror_max_rows=10_000)  # BM25 from the postings in memory
    plain = LanceStore(settings.lancedb_path())  # LanceDB's candidates, scored again
    plain.tenant_text.refresh_s = 0.0  # the tenant's statistics read at every new table version
    s = settings.model_copy(update={"answer_min_score": 0.0})
    ing = Indexer(s, mirrored, EMB)
    ing.process_batch([rec(change(d, 1, text, title="Birds", metadata={"kind": "survey" if d in ("a1", "a2") else "other"}))
                       for d, text in MINE])
    qps = [query_processor(s, store, EMB) for store in (mirrored, plain)]
    scopes = [Scope.of("acme", ["*"]), Scope.of("acme", ["*"], filter_conditions(QueryFilters(metadata={"kind": "survey"})))]
    seen: list[Any] = []
    done = 0
    for n in CASES:
        ing.process_batch([rec(c) for c in _theirs(n)[done:]])  # (and the FTS index built again)
        done = n
        found = [_scores(store, text, scope) for store in (mirrored, plain) for scope in scopes
                 for text in ("falcon", "falcon cliffs", "falcon quarry coast")]
        cited = [[(c.doc_id, c.score) for c in qp.answer_many([Query.model_validate(
            {"query_id": "q1", "tenant": "acme", "text": "falcon", "options": {"fusion": "bm25"}})])[0].citations]
            for qp in qps]
        assert {d for d, _ in found[0]} == {"a1", "a2"}
        assert all(c and c[0][0] in ("a1", "a2") for c in cited)
        seen.append((found, cited))
        if n == CASES[-1]:  # the other tenant's rows are there to be found in their own scope
            assert len(_scores(mirrored, "falcon", Scope.of("rival", ["*"]))) == 10
    assert mirrored.mirror.text_answers > 0  # (the mirror answered its searches)
    for s in seen:
        for a, b in zip(s[0] + s[1], seen[0][0] + seen[0][1], strict=True):
            assert a == b, (a, b)  # identical, to the last bit


def test_mirror_and_lancedb_paths_agree_across_tenants(settings: Settings) -> None:
    """Both paths score with the tenant's statistics: the same hits and scores, tenant by tenant."""
    mirrored = LanceStore(settings.lancedb_path(), mirror_max_rows=10_000)
    plain = LanceStore(settings.lancedb_path())
    Indexer(settings, mirrored, EMB).process_batch(
        [rec(change(d, 1, text, title="Birds")) for d, text in MINE] + [rec(c) for c in _theirs(7)])
    for tenant in ("acme", "rival"):
        for text in ("falcon", "falcon cliffs estuary", "report harbour quarry"):
            got = _scores(mirrored, text, Scope.of(tenant, ["*"]))
            assert got == [(d, pytest.approx(sc, rel=1e-6)) for d, sc in _scores(plain, text, Scope.of(tenant, ["*"]))]


def test_a_table_without_the_analysed_columns_scores_per_tenant_too(settings: Settings, tmp_path: Any) -> None:
    """A table made before ``terms``/``title_terms`` (LanceDB's own tokenizer over ``text``/``title``): LanceDB's
    candidates scored again from the tenant's rows, whatever the other tenant adds."""
    made = LanceStore(settings.lancedb_path())
    Indexer(settings, made, EMB).process_batch([rec(change(d, 1, text, title="Birds")) for d, text in MINE])
    seen = []
    done = 0
    for n in CASES:
        Indexer(settings, made, EMB).stages.process_batch([rec(c) for c in _theirs(n)[done:]])
        done = n
        src = made.table("chunks")
        assert src is not None
        rows = src.search().limit(None).to_arrow().drop_columns(["terms", "title_terms"])
        db = lancedb.connect(str(tmp_path / f"old{n}"))
        old = db.create_table("chunks", data=rows)
        for col in ("text", "title"):  # as build_fts indexes the raw columns
            old.create_fts_index(col, replace=True, with_position=False, stem=True, remove_stop_words=True)
        store = LanceStore(str(tmp_path / f"old{n}"))
        assert store.fts_columns(old) == ("text", "title")
        seen.append(_scores(store, "falcon cliffs", Scope.of("acme", ["*"])))
        if n == CASES[-1]:
            assert len(_scores(store, "falcon", Scope.of("rival", ["*"]))) == 10
    assert seen[0] and {d for d, _ in seen[0]} >= {"a1", "a2"} and all(s == seen[0] for s in seen), seen
