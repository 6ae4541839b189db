import pytest

from streamrag.core.security import (
    PUBLIC,
    acl_tokens,
    chunk_id,
    doc_key,
    principal_may_see,
    principal_tokens,
    tenant_literal,
    token_list_literal,
)
from streamrag.schemas.models import Acl, Principal


def test_ids_are_stable_and_distinct() -> None:
    # ids are part of the index format: a change here orphans every stored chunk
    assert doc_key("acme", "d1") == "f5514cc830c051f12a0a31ae4d2346a4"
    assert chunk_id("acme", "d1", 3) == "f5514cc830c051f12a0a31ae4d2346a4:00003"
    assert chunk_id("acme", "d1", 0) != chunk_id("acme", "d1", 1)
    assert doc_key("a", "d") != doc_key("b", "d")
    assert doc_key("a", "b/c") != doc_key("a/b", "c")


def test_acl_semantics() -> None:
    public = acl_tokens(Acl())
    assert public == [PUBLIC]
    alice = principal_tokens(Principal(user="alice"))
    assert principal_may_see(alice, public)
    only_bob = acl_tokens(Acl(users=["bob"]))
    assert not principal_may_see(alice, only_bob)
    admins = acl_tokens(Acl(roles=["admin"]))
    assert principal_may_see(principal_tokens(Principal(user="x", roles=["admin"])), admins)
    assert not principal_may_see(principal_tokens(Principal(user="admin")), admins)


def test_filters_refuse_user_input() -> None:
    with pytest.raises(ValueError):
        tenant_literal("a' OR '1'='1")
    with pytest.raises(ValueError):
        token_list_literal(["x' OR 1=1 --"])
    assert tenant_literal("acme") == "'acme'"
