"""BM25 in memory (core/bm25.py, answered by the vector mirror) and LanceDB's candidates scored again with the
tenant's statistics (lancedb_search.py) rank and score as LanceDB's FTS index does on a table of one tenant: the
same hits and scores as LanceDB's own search on real English text (the project's documents), in every scope, one
column or both with a title boost, before and after documents are deleted; LanceDB's filters (stop words matched
after stemming, long tokens, ASCII folding) kept. (With more tenants the statistics are each tenant's own, where
LanceDB's count every tenant's rows: tests/unit/test_bm25_tenants.py.)"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import lancedb
import pytest
from lancedb.query import MatchQuery, MultiMatchQuery

from streamrag.connectors.lancedb_filters import render
from streamrag.connectors.lancedb_maintenance import FTS_OPTIONS
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.analysis import bm25_terms
from streamrag.core.bm25 import STOP_WORDS, TermAnalyzer
from streamrag.core.scope import Scope
from streamrag.core.security import principal_tokens
from streamrag.core.settings import Settings
from streamrag.schemas.models import Principal
from tests.conftest import Indexer, change, rec
from tests.fakes import HashEmbedder

ROOT = Path(__file__).resolve().parents[2]
ALICE = principal_tokens(Principal(user="alice"))
EDGE = ["the of and is having been", "x" * 39 + " " + "y" * 40 + " short", "søren straße æble œuvre",
        "does doing variants variant variant"]


def _paragraphs() -> list[tuple[str, str]]:
    """(title, paragraph) from the README and docs: English of many lengths and words."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        title = path.stem
        for para in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            if para.startswith("#"):
                title = para.lstrip("# ").splitlines()[0]
            elif len(para) > 80:
                out.append((title, para))
    return out[:90]


@pytest.fixture
def stores(settings: Settings) -> tuple[LanceStore, LanceStore]:
    """One tenant's table (per-tenant statistics are then LanceDB's): the mirror's store, and one where LanceDB
    finds the candidates and they are scored again with the tenant's statistics."""
    mirrored = LanceStore(settings.lancedb_path(), mirror_max_rows=10_000)
    acls = [None, {"users": ["alice"], "roles": []}, {"users": [], "roles": ["hr"]}]
    texts = _paragraphs() + [("edge", t) for t in EDGE]
    Indexer(settings, mirrored, HashEmbedder()).stages.process_batch([
        rec(change(f"p{i}", 1, text, title=title, acl=acls[i % 3])) for i, (title, text) in enumerate(texts)])
    mirrored.maintain(force=True)  # the FTS indexes
    plain = LanceStore(settings.lancedb_path())
    plain.tenant_text.refresh_s = 0.0  # the tenant's statistics read at every new table version
    return mirrored, plain


def _cut(got: list[tuple[str, float]]) -> dict[str, float]:
    """id -> score; rows tied at the last place may be cut differently: left out (LanceDB sums in float32)."""
    return {i: s for i, s in got if len(got) < 10 or s > got[-1][1] * (1 + 1e-5)}


def _found(store: LanceStore, text: str, scope: Any, titles: bool) -> dict[str, float]:
    return _cut([(h.id, h.score) for h in store.text_search(text, scope, 10, titles=titles)])


def _lancedb(store: LanceStore, text: str, scope: Any, titles: bool) -> dict[str, float]:
    """LanceDB's own FTS search and scores (its statistics: every row of the table)."""
    terms = bm25_terms(text)
    if not terms:
        return {}
    q = (MultiMatchQuery(terms, ["terms", "title_terms"], boosts=[1.0, store.title_boost])  # type: ignore[call-arg]
         if titles else MatchQuery(terms, "terms"))  # type: ignore[call-arg]
    t = store.table("chunks")
    assert t is not None
    rows = t.search(q, query_type="fts").where(render(scope), prefilter=True).select(["id", "_score"]).limit(10).to_list()
    return _cut([(r["id"], r["_score"]) for r in rows])


def _same(mirrored: LanceStore, plain: LanceStore, queries: list[str]) -> int:
    found = 0
    for scope in (Scope.of("acme", ALICE), Scope.of("acme", ["*"]), Scope.of("other", ["*"])):
        for text in queries:
            for titles in (True, False):
                got = _found(mirrored, text, scope, titles)
                want = _lancedb(mirrored, text, scope, titles)
                assert got == pytest.approx(want, rel=1e-5), (text, titles)
                assert _found(plain, text, scope, titles) == pytest.approx(want, rel=1e-5), (text, titles)
                found += len(got)
    return found


def test_the_mirror_scores_as_lancedb_on_english_text(stores: tuple[LanceStore, LanceStore]) -> None:
    mirrored, plain = stores
    queries = [" ".join(p.split()[:12]) for _, p in _paragraphs()[::6]]
    queries += ["soren strasse aeble oeuvre", "variant variant does", "having been short", "x" * 39, "y" * 40]
    assert _same(mirrored, plain, queries) > 500
    assert mirrored.mirror.text_answers == len(queries) * 6 and plain.mirror.text_answers == 0
    assert mirrored.mirror.text_fields == ("terms", "title_terms")
    for boost in (2.0, 0.5):  # the title boost: LanceDB's best boosted column
        mirrored.title_boost = plain.title_boost = boost
        assert _same(mirrored, plain, queries[:6]) > 100


def test_deleted_documents_leave_the_statistics(settings: Settings, stores: tuple[LanceStore, LanceStore]) -> None:
    mirrored, plain = stores
    queries = [" ".join(p.split()[:8]) for _, p in _paragraphs()[1::9]]
    _same(mirrored, plain, queries)
    Indexer(settings, mirrored, HashEmbedder()).stages.process_batch(
        [rec(change(f"p{i}", 2, op="delete")) for i in range(0, 90, 4)])
    mirrored.maintain(force=True)  # LanceDB's index built again over the live rows
    assert _same(mirrored, plain, queries) > 50


def test_the_analyzer_filters_as_lancedb() -> None:
    a = TermAnalyzer()
    assert a.terms("having does variants søren straße " + "z" * 40) == ["doe", "variant", "soren", "strasse"]
    assert a.terms("the of and") == [] and a.terms("") == []
    a = TermAnalyzer(memo_max=6)  # words stemmed together, past the memo's size: the same terms
    words = ["cells", "", "having", "cells", "running", "x" * 40, "studies", "does", "ran", "runs"]
    assert a.terms_of(words) == [TermAnalyzer().term(w) for w in words] == a.terms_of(words[::-1])[::-1]
    assert a.terms_of(words)[:5] == ["cell", None, None, "cell", "run"]


def test_the_stop_words_are_those_lancedb_drops(tmp_path: Path) -> None:
    # ours, and words other English lists stop (Snowball's, Lucene's) or that stem to a stop word
    words = sorted(STOP_WORDS | {"s", "t", "d", "ll", "re", "ve", "y", "ma", "would", "could", "ought", "cannot", "let",
                                 "does", "once", "because", "during", "said", "also", "may", "must", "being", "having"})
    t = lancedb.connect(tmp_path).create_table("w", data=[{"terms": f"{w} tag{i}"} for i, w in enumerate(words)])
    t.create_fts_index("terms", **FTS_OPTIONS)
    dropped = {w for w in words if not t.search(MatchQuery(w, "terms"), query_type="fts").limit(1).to_list()}
    assert dropped == {w for w in words if not TermAnalyzer().terms(w)}
    assert {"the", "having", "s"} <= dropped and not {"would", "does", "once"} & dropped  # (matched after stemming)


def test_large_fragments_get_their_postings_beside_the_searches(settings: Settings) -> None:
    mirrored = LanceStore(settings.lancedb_path(), mirror_max_rows=10_000)
    mirrored.mirror.inline_text_rows = 0  # every fragment is "large"
    Indexer(settings, mirrored, HashEmbedder()).stages.process_batch(
        [rec(change(f"p{i}", 1, text, title=title)) for i, (title, text) in enumerate(_paragraphs()[:40])])
    mirrored.maintain(force=True)
    plain = LanceStore(settings.lancedb_path())
    scope = Scope.of("acme", ["*"])
    query = " ".join(_paragraphs()[3][1].split()[:10])
    first = _found(mirrored, query, scope, True)  # LanceDB's candidates scored again while the postings are built
    assert first == pytest.approx(_lancedb(plain, query, scope, True), rel=1e-5) and mirrored.mirror.text_answers == 0
    for _ in range(200):  # bounded: the thread builds a few fragments' postings; LanceDB answers until then
        assert _found(mirrored, query, scope, True) == pytest.approx(_lancedb(plain, query, scope, True), rel=1e-5)
        if mirrored.mirror.text_answers:
            break
        time.sleep(0.05)
    assert mirrored.mirror.text_answers == 1
