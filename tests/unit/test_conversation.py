"""Conversation context: a chat's earlier turns reach the query, the model's prompt (newest first within a
budget) and retrieval (the previous question is searched too)."""

from __future__ import annotations

from streamrag.core.generation.prompt import approx_tokens, build_prompt
from streamrag.core.query.asks import follow_up
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


LONG = ("The plan catalogue lists every offer. Basic costs 10 euros a month. Support answers by mail. "
        "Offices are in Lyon and Porto. The staff counts forty people. Premium costs 25 euros a month. "
        "Premium includes phone support. Invoices are sent monthly. The company was founded in 2009.")


def test_only_the_sentences_bearing_on_the_question_are_packed() -> None:
    from streamrag.core.generation.prompt import bearing

    got = bearing(LONG, "How much does premium cost?")
    assert got.startswith("The plan catalogue lists every offer.")  # the lead sentence
    assert "Premium costs 25 euros a month. Premium includes phone support." in got  # and its neighbours
    assert "Lyon" not in got and "2009" not in got and "…" in got
    assert bearing(LONG, "zebra migration") == LONG  # nothing shares a term: the whole source
    assert bearing("One. Two.", "one") == "One. Two."  # short: whole


def test_sentence_packing_makes_the_prompt_smaller_than_whole_chunks() -> None:
    rk = ranked(LONG, LONG.replace("Premium", "Gold"))
    whole = build_prompt("How much does premium cost?", rk, approx_tokens, 1024, packing="chunks")
    packed = build_prompt("How much does premium cost?", rk, approx_tokens, 1024, packing="sentences")
    assert len(packed.sources) == len(whole.sources) == 2
    assert len(packed.sources[0].text) < 0.7 * len(whole.sources[0].text)  # the premium sentences and the lead
    assert packed.sources[1].text == whole.sources[1].text  # no sentence about premium: whole
    assert packed.prompt_tokens < whole.prompt_tokens
