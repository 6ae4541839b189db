"""The scope of a query (core/scope.py): what its searches and its cache lookups may see, as a value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamrag.core.cache.policy import scope_of
from streamrag.core.scope import Condition, Scope, filter_conditions, scope_for
from streamrag.core.security import meta_token, principal_tokens
from streamrag.schemas.models import Principal, Query


def _q(**kw: object) -> Query:
    return Query.model_validate({"query_id": "q1", "tenant": "acme", "text": "x", **kw})


def test_a_querys_scope_is_its_tenant_its_principals_tokens_and_its_filters() -> None:
    alice = Principal(user="alice", roles=["hr"])
    q = _q(principal=alice.model_dump(), filters={"metadata": {"kind": ["memo", "note"], "year": 2024, "none": []},
                                                    "updated_from": "2024-01-01T00:00:00Z", "updated_to": "2024-02-01T00:00:00Z"})
    s = scope_for(q)
    assert (s.tenant, s.tokens, s.plain) == ("acme", tuple(principal_tokens(alice)), False)
    assert s.conditions == (
        Condition("meta", "has_any", (meta_token("kind", "memo"), meta_token("kind", "note"))),
        Condition("meta", "has_any", ()),  # no value allowed: nothing matches
        Condition("meta", "has_any", (meta_token("year", 2024),)),
        Condition("updated_ms", ">=", int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)),
        Condition("updated_ms", "<=", int(datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1000)),
    )
    assert list(s.conditions) == filter_conditions(q.filters)
    assert scope_for(_q()).plain and scope_for(_q()).tokens == ("*",)
    assert scope_for(q) == s and hash(scope_for(q)) == hash(s)  # a value: equal scopes are equal


def test_the_cache_keys_the_same_acl_scope_as_before() -> None:
    """Cache keys carry a hash of the scope's ACL tokens: unchanged from before the Scope value (entries stored
    by an older worker still match)."""
    q = _q(principal={"user": "alice", "roles": ["hr", "admin"]})
    assert scope_of(scope_for(q)) == "a789b68cce4b50526d30afd13dea7779"
    assert scope_of(scope_for(_q())) == "6d25a851b1aa0a590cb1b40918400be4"


def test_the_scope_checks_a_cached_answers_tenant_and_acl() -> None:
    scope = Scope.of("acme", ["*", "u:alice"])
    assert scope.plain and scope.sees("acme", ["u:alice"]) and scope.sees("acme", ["*"])
    assert not scope.sees("globex", ["*"]) and not scope.sees("acme", ["r:hr"]) and not scope.sees("acme", [])


def test_a_condition_names_a_known_field_and_operator() -> None:
    with pytest.raises(ValueError):
        Condition("tenant", "==", "x")  # type: ignore[arg-type]  # (the tenant is the scope's own part)
    with pytest.raises(ValueError):
        Condition("doc_id", "LIKE", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Condition("doc_id", "in", "x")
    with pytest.raises(ValueError):
        Condition("doc_id", "==", ("x",))
    assert Condition("doc_id", "not in", ("a", "b")).value == ("a", "b")

