"""The chunks table in the query process's memory (connectors/lancedb_vector_mirror.py): the hits of LanceDB's own
prefiltered exact search, a changed, shrunk or deleted document seen at the next search, and LanceDB left to
answer what the mirror does not (other filters, a larger table). Then the document rows of enrichment, kept by
version."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.scope import Scope, filter_conditions
from streamrag.core.security import doc_key, principal_tokens
from streamrag.core.settings import Settings
from streamrag.schemas.models import Principal, QueryFilters
from tests.conftest import Indexer, change, rec
from tests.fakes import HashEmbedder, count_searches

EMB = HashEmbedder()
ALICE = principal_tokens(Principal(user="alice"))
BOB = principal_tokens(Principal(user="bob", roles=["hr"]))
WORDS = ["travel", "hotel", "budget", "approval", "flight", "train", "canteen", "lunch", "holiday", "leave", "salary", "pension", "laptop", "badge"]


def _text(i: int, n: int = 30) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] + str(j % 5) for j in range(n)) + "."


@pytest.fixture
def mirrored(settings: Settings) -> LanceStore:
    return LanceStore(settings.lancedb_path(), mirror_max_rows=10_000)


@pytest.fixture
def plain(settings: Settings) -> LanceStore:
    return LanceStore(settings.lancedb_path())  # LanceDB answers every search


def _index(settings: Settings, store: LanceStore, *changes: dict[str, Any]) -> None:
    """The ingest stages without index upkeep: each batch adds fragments and deletions, no compaction."""
    Indexer(settings, store, EMB).stages.process_batch([rec(c) for c in changes])


def _corpus(settings: Settings, store: LanceStore) -> None:
    acls = [None, {"users": ["alice"], "roles": []}, {"users": [], "roles": ["hr"]}]
    _index(settings, store, *[change(f"d{i}", 1, _text(i), tenant="acme" if i % 4 else "other", acl=acls[i % 3],
                                     metadata={"kind": "memo" if i % 2 else "note"}) for i in range(24)])


def _hits(store: LanceStore, text: str, scope: Scope, k: int = 12) -> list[tuple[Any, ...]]:
    """(score, id, …) nearest first; rows tied at the lowest score may be cut differently: left out."""
    got = [(-round(h.score, 5), h.id, h.doc_id, h.version, h.text, h.acl, h.title)
           for h in store.vector_search(EMB.embed([text])[0], scope, k)]
    cut = got[-1][0] if len(got) == k else None
    return sorted(h for h in got if h[0] != cut)


def test_the_mirror_finds_what_lancedb_finds_in_every_scope(settings: Settings, mirrored: LanceStore,
                                                            plain: LanceStore) -> None:
    _corpus(settings, mirrored)
    scopes = [Scope.of(t, p) for t in ("acme", "other", "nobody") for p in (ALICE, BOB, ["*"], ["u:nobody"])]
    for scope in scopes:
        for i in range(0, 24, 5):
            got = _hits(mirrored, _text(i, 8), scope)
            assert got == _hits(plain, _text(i, 8), scope), scope  # (plain: LanceDB's own search)
    assert mirrored.mirror.usable and mirrored.mirror.refreshes == 1  # it answered them, from one read
    assert any(_hits(mirrored, _text(1, 8), s) for s in scopes) and not _hits(mirrored, _text(1), scopes[-1])


def test_bm25_hits_take_their_rows_from_the_mirror(settings: Settings, mirrored: LanceStore, plain: LanceStore) -> None:
    _corpus(settings, mirrored)
    mirrored.maintain(force=True)  # the FTS index
    _hits(mirrored, "hotel", Scope.of("acme", ALICE))  # the mirror holds the table now
    before = mirrored.mirror.text_answers
    found = 0
    for scope in (Scope.of("acme", ALICE), Scope.of("acme", BOB), Scope.of("other", ["*"])):
        for text in ("hotel2 budget3", "canteen4 lunch0 pension1", "salary0"):
            got = [(h.id, round(h.score, 4), h.text, h.acl, h.version) for h in mirrored.text_search(text, scope, 12)]
            # (scored as LanceDB's index scores, in float64 where LanceDB sums float32)
            assert got == [(h.id, round(h.score, 4), h.text, h.acl, h.version)
                           for h in plain.text_search(text, scope, 12)]
            found += len(got)
    assert found > 20 and mirrored.mirror.text_answers - before == 9  # every one of them from memory


def test_a_changed_shrunk_or_deleted_document_is_seen_at_the_next_search(settings: Settings, mirrored: LanceStore,
                                                                         plain: LanceStore) -> None:
    _corpus(settings, mirrored)
    acme = Scope.of("acme", ALICE)  # d1 is alice's
    assert "d1" in [h[2] for h in _hits(mirrored, _text(1), acme)]
    read_before = mirrored.mirror.blocks_read

    _index(settings, mirrored, change("d1", 2, "zebra giraffe okapi " * 3 + _text(3, 40)))  # new text, more chunks
    got = _hits(mirrored, "zebra giraffe okapi", acme)
    assert got[0][2:4] == ("d1", 2) and "zebra" in got[0][4] and got == _hits(plain, "zebra giraffe okapi", acme)
    assert mirrored.mirror.blocks_read - read_before == 1  # only the new fragment was read; the others only had rows deleted

    _index(settings, mirrored, change("d1", 3, "zebra only"))  # shrinks to one chunk: the tail is deleted
    got = _hits(mirrored, "zebra giraffe okapi", acme, 50)
    assert [h[3] for h in got if h[2] == "d1"] == [3] and got == _hits(plain, "zebra giraffe okapi", acme, 50)

    _index(settings, mirrored, change("d1", 4, op="delete"))
    got = _hits(mirrored, "zebra", acme, 50)
    assert "d1" not in [h[2] for h in got] and got == _hits(plain, "zebra", acme, 50)

    mirrored.maintain(force=True)  # compaction rewrites the fragments: read again, same hits
    assert _hits(mirrored, _text(5), acme) == _hits(plain, _text(5), acme)


def test_lancedb_answers_other_filters_and_larger_tables(settings: Settings, mirrored: LanceStore,
                                                         plain: LanceStore) -> None:
    _corpus(settings, mirrored)
    memo = Scope.of("acme", ["*"], filter_conditions(QueryFilters(metadata={"kind": "memo"})))
    got = _hits(mirrored, _text(1), memo)
    assert got and got == _hits(plain, _text(1), memo) and mirrored.mirror.refreshes == 0
    small = LanceStore(settings.lancedb_path(), mirror_max_rows=5)
    acme = Scope.of("acme", ["*"])
    assert _hits(small, _text(2), acme) == _hits(plain, _text(2), acme)
    assert small.mirror.refreshes == 1 and not small.mirror.usable  # looked, too large: LanceDB searched


def test_a_row_with_a_zero_vector_is_never_found(settings: Settings, mirrored: LanceStore) -> None:
    _corpus(settings, mirrored)
    t = mirrored.table("chunks")
    assert t is not None
    t.update(where="doc_id = 'd1'", values={"vector": np.zeros(EMB.dim, dtype=np.float32).tolist()})
    got = _hits(mirrored, _text(1), Scope.of("acme", ALICE), 50)
    assert got and "d1" not in [h[2] for h in got]  # (as in LanceDB: no distance)


def test_document_rows_are_kept_by_version(settings: Settings, store: LanceStore, monkeypatch: Any) -> None:
    _index(settings, store, change("d1", 1, "first text", title="First"), change("d2", 1, "other", title="Other"))
    k1, k2 = doc_key("acme", "d1"), doc_key("acme", "d2")
    reads = count_searches(monkeypatch, store, store.docs_name)
    assert store.docs([k1], versions={k1: 1})[k1]["title"] == "First" and len(reads) == 1
    assert store.docs([k2], versions={k2: 1})[k2]["title"] == "Other"
    assert len(reads) == 1  # the small docs table was read whole at the first enrichment: d2 came from memory
    _index(settings, store, change("d1", 2, "second text", title="Second"))
    assert store.docs([k1], versions={k1: 2})[k1]["title"] == "Second"  # a new version: read, not the kept row
    assert store.docs([k1], versions={k1: 1})[k1]["title"] == "First"  # a version's row never changes
    assert store.docs([k1])[k1]["title"] == "Second"  # no version named: the table's row
