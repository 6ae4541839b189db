"""A ``Scope`` rendered as LanceDB SQL (connectors/lancedb_filters.py) can never be widened by what it holds: hostile
tenants, ACL tokens and document ids (quotes, backslashes, ``%``, comment and bracket tricks, other scripts) read
back as exactly themselves against a real embedded LanceDB table, so a row of another tenant (or one the ACL does
not allow) never comes back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
import pytest

from streamrag.connectors.lancedb_filters import condition, equals, literal, one_of, render
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.scope import Condition, Scope, filter_conditions, scope_for
from streamrag.core.security import meta_token
from streamrag.core.settings import Settings
from streamrag.schemas.models import Principal, Query, QueryFilters
from tests.conftest import change, rec
from tests.fakes import HashEmbedder

HOSTILE = [
    "x' OR '1'='1",
    "x') OR true OR ('",
    "x\\' OR 1=1 --",
    "x\\",
    "\\'",
    "'; DELETE FROM t; --",
    "x']) OR true OR array_has_any(acl, ['",
    "%",
    "a%' OR tenant LIKE '%",
    "_",
    "\"victim\"",
    "ünï😀 ' ״ \u2019",
    "line\nbreak' OR 'a'='a",
    "",
]
VICTIM = "victim"


@pytest.fixture
def table(tmp_path: Path) -> Any:
    """One row per hostile value (its tenant, ACL token and doc id are that value) and victim rows that a public
    token, every hostile value and their doc ids would all match if a value escaped its literal."""
    rows = []
    for i, v in enumerate(HOSTILE):
        rows.append({"tenant": v, "acl": [v], "doc_id": v, "meta": [v], "updated_ms": i, "i": i})
    for j in range(3):
        rows.append({"tenant": VICTIM, "acl": ["*", *HOSTILE], "doc_id": f"secret{j}", "meta": HOSTILE,
                     "updated_ms": 100 + j, "i": 100 + j})
    return lancedb.connect(tmp_path).create_table("t", pa.Table.from_pylist(rows))


def _found(t: Any, where: str) -> list[int]:
    return sorted(t.search().where(where).select(["i"]).limit(None).to_arrow().column("i").to_pylist())


@pytest.mark.parametrize("value", HOSTILE, ids=[ascii(v) for v in HOSTILE])
def test_a_hostile_tenant_or_token_finds_exactly_its_own_row(table: Any, value: str) -> None:
    me = [HOSTILE.index(value)]
    assert _found(table, render(Scope.of(value, [value]))) == me
    assert _found(table, render(Scope.of(value, [value, "x' OR '1'='1", "*"]))) == me
    assert _found(table, render(Scope.of(value, ["nobody"]))) == []  # the ACL still applies
    assert _found(table, equals("tenant", value)) == me
    assert _found(table, one_of("doc_id", [value, "nothing"])) == me


@pytest.mark.parametrize("value", HOSTILE, ids=[ascii(v) for v in HOSTILE])
def test_hostile_condition_values_never_widen_a_scope(table: Any, value: str) -> None:
    me = HOSTILE.index(value)
    scope = Scope.of(value, [value], [Condition("doc_id", "in", (value, "secret0")), Condition("meta", "has_any", (value,)),
                                      Condition("doc_id", "==", value), Condition("updated_ms", "<=", me)])
    assert _found(table, render(scope)) == [me]
    other = Scope.of(VICTIM, ["nobody"], [Condition("doc_id", "==", value)])
    assert _found(table, render(other)) == []  # the victim's rows stay behind their ACL whatever the doc id


def test_the_victims_rows_come_back_only_in_the_victims_scope(table: Any) -> None:
    assert _found(table, render(Scope.of(VICTIM, ["*"]))) == [100, 101, 102]
    everyone = Scope.of(VICTIM, ["*"], [Condition("doc_id", "not in", ("secret0",)), Condition("updated_ms", ">", 100)])
    assert _found(table, render(everyone)) == [101, 102]


def test_operators_render_as_their_comparisons(table: Any) -> None:
    ms = [Condition("updated_ms", op, 101) for op in ("==", "!=", "<", "<=", ">", ">=")]
    assert [_found(table, render(Scope.of(VICTIM, ["*"], [c]))) for c in ms] == [
        [101], [100, 102], [100], [100, 101], [102], [101, 102]]
    assert _found(table, render(Scope.of(VICTIM, ["*"], [Condition("meta", "has_any", ())]))) == []  # no value: none
    assert _found(table, render(Scope.of(VICTIM, ["*"], [Condition("doc_id", "in", ())]))) == []
    assert _found(table, render(Scope.of(VICTIM, [], []))) == []  # no token: nothing


def test_a_querys_filters_become_conditions_the_store_applies(settings: Settings, store: LanceStore) -> None:
    """The query path's scope (core/scope.py) on the store's own search (connectors/lancedb_search.py)."""
    emb = HashEmbedder()
    IngestStages.from_settings(settings, store, emb).process_batch([
        rec(change("memo", 1, "vacation days", metadata={"kind": "memo'"})),
        rec(change("note", 1, "vacation days", metadata={"kind": "note"})),
        rec(change("alien", 1, "vacation days", tenant="globex", metadata={"kind": "memo'"}))])
    q = Query(query_id="q1", tenant="acme", text="vacation", principal=Principal(), filters=QueryFilters(metadata={"kind": "memo'"}))
    scope = scope_for(q)
    assert scope == Scope.of("acme", ["*"], filter_conditions(q.filters))
    assert scope.conditions == (Condition("meta", "has_any", (meta_token("kind", "memo'"),)),)
    vec = emb.embed_queries(["vacation"])[0]
    assert [h.doc_id for h in store.vector_search(vec, scope, 10)] == ["memo"]
    assert {h.doc_id for h in store.vector_search(vec, Scope.of("acme", ["*"]), 10)} == {"memo", "note"}


def test_the_renderer_refuses_what_it_cannot_quote() -> None:
    with pytest.raises(ValueError):
        literal("a\x00b")
    with pytest.raises(ValueError):
        literal(float("nan"))
    with pytest.raises(ValueError):
        equals("tenant = 'x' OR 1", "x")
    with pytest.raises(ValueError):
        condition(Condition("doc_id", "has_any", ("x",)))  # a list operator on a scalar column
    with pytest.raises(ValueError):
        Condition("tenant; --", "==", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Condition("doc_id", "in", "x")
    assert literal("it's") == "'it''s'" and literal(True) == "true" and literal(3) == "3"
