from typing import Any

import pytest

from streamrag.core.security import (
    PUBLIC,
    acl_tokens,
    chunk_id,
    doc_key,
    principal_may_see,
    principal_tokens,
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


@pytest.mark.parametrize("topic", ["documents", "queries", "answers", "cache", "index_events", "dead_letters", "audit"])
def test_no_project_topic_is_a_reply_topic_even_under_an_allowed_prefix(settings: Any, topic: str) -> None:
    """With a prefix as broad as the project's own (``streamrag.``), only the project-topic check refuses these."""
    from streamrag.core.query.parse import reply_topic_error

    name = settings.project_topics[f"topic_{topic}"]
    assert name.startswith("streamrag.")
    why = reply_topic_error(name, ["streamrag."], set(settings.project_topics.values()), lambda t: True)
    assert why is not None and "not allowed" in why
    assert reply_topic_error("streamrag.replies.app1", ["streamrag."], set(settings.project_topics.values()),
                             lambda t: True) is None


def test_every_project_topic_is_created_with_its_spec(settings: Any) -> None:
    from streamrag.connectors.kafka_admin import topic_specs

    assert set(topic_specs(settings.topic_layout)) == set(settings.project_topics.values()) and len(settings.project_topics) == 8


@pytest.mark.parametrize("reply_to, allowed", [
    ("streamrag.documents", False),  # the compacted source of truth
    ("streamrag.answers", False),
    ("attacker.topic", False),  # would have been created by the broker
    ("streamrag.replies.missing", False),  # allowed prefix, but no such topic
    ("streamrag.replies.app1", True),
    ("streamrag.replies.a b", False),
])
def test_answers_go_only_to_allowed_existing_reply_topics(settings: Any, store: Any, reply_to: str,
                                                          allowed: bool) -> None:
    import json as _json

    from streamrag.core.query.processor import Reply
    from streamrag.schemas.models import DeadLetter, Query
    from tests.conftest import query_processor, rec
    from tests.fakes import HashEmbedder

    qp = query_processor(settings, store, HashEmbedder(), topic_exists=lambda t: t == "streamrag.replies.app1")
    out = qp.parse([rec(_json.dumps({"query_id": "q1", "tenant": "acme", "text": "hi", "reply_to": reply_to}).encode())])
    if allowed:
        assert [type(o) for _, o in out] == [Query]
        return
    dead = [o for _, o in out if isinstance(o, DeadLetter)]
    replies = [o for _, o in out if isinstance(o, Reply)]
    assert len(dead) == 1 and "reply_to" in dead[0].error and dead[0].stage == "validate"
    assert len(replies) == 1 and replies[0].topic is None and replies[0].answer.status == "error"  # the answers topic
