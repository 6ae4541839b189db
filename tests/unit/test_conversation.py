"""Conversation context: a chat's earlier turns reach the query, the model's prompt (newest first within a
budget) and retrieval (the previous question is searched too)."""

from __future__ import annotations

from streamrag.core.generation.prompt import approx_tokens, build_prompt
from streamrag.core.query.processor import follow_up
from streamrag.schemas.models import Query
from tests.unit.test_gateway import make
from tests.unit.test_generation import ranked


def test_the_chat_history_reaches_the_query() -> None:
    c, fake = make()
    r = c.post("/v1/chat/completions", json={"tenant": "acme", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "What does the basic plan cost?"},
        {"role": "assistant", "content": "It costs 10 euros a month [1]."},
        {"role": "user", "content": "And the premium one?"}]})
    assert r.status_code == 200
    q = fake.queries[-1]
    assert q.text == "And the premium one?"
    assert [(t.role, t.content) for t in q.context] == [
        ("user", "What does the basic plan cost?"), ("assistant", "It costs 10 euros a month [1].")]


def test_the_prompt_carries_the_newest_turns_that_fit() -> None:
    history = [("user", "old question " * 200), ("assistant", "old answer " * 200),
               ("user", "What does the basic plan cost?"), ("assistant", "10 euros [1].")]
    p = build_prompt("And the premium one?", ranked("Premium costs 25 euros a month."), approx_tokens, 1024,
                     history=history)
    roles = [m["role"] for m in p.messages]
    assert roles == ["system", "user", "assistant", "user"]  # the long old pair did not fit: dropped whole
    assert p.messages[1]["content"] == "What does the basic plan cost?"
    assert "Premium costs 25 euros" in p.messages[-1]["content"] and p.sources
    assert p.prompt_tokens <= 1024


def test_a_follow_up_is_searched_with_the_previous_question() -> None:
    q = Query.model_validate({"query_id": "q", "tenant": "acme", "text": "And the premium one?", "context": [
        {"role": "user", "content": "What does the basic plan cost?"}, {"role": "assistant", "content": "10 euros."}]})
    assert follow_up(q) == ["What does the basic plan cost? And the premium one?"]
    assert follow_up(q.model_copy(update={"context": []})) == []
