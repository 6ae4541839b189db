"""Focused packing (core/generation/packing.py): within a small budget, every source's best sentence goes
in before any source's second, the prompt never passes its budget, and the kept sentences read in order."""

from __future__ import annotations

from streamrag.core.generation.packing import focus, scored
from streamrag.core.generation.prompt import approx_tokens, build_prompt
from tests.unit.test_conversation import LONG
from tests.unit.test_generation import ranked

OTHER = ("Gold plans are sold in Lyon. Gold costs 40 euros a month. Gold includes a phone line. "
         "Gold invoices are sent yearly. Gold customers get a mug.")


def test_the_best_sentence_of_each_source_goes_in_first() -> None:
    def words(rank: int, text: str) -> int:
        return len(text.split())

    kept = focus("How much does premium cost a month?", [LONG, OTHER], words, budget=16)
    assert [k.rank for k in kept] == [0, 1]  # both sources, not the first one alone
    assert "Premium costs 25 euros a month." in kept[0].text
    assert "costs 40 euros a month." in kept[1].text
    assert sum(len(k.text.split()) for k in kept) <= 16 and all(k.truncated for k in kept)


def test_kept_sentences_keep_their_order_and_gaps_are_marked() -> None:
    kept = focus("premium cost support", [LONG], lambda r, t: len([w for w in t.split() if w != "…"]), budget=14)
    text = kept[0].text
    assert text.index("Support answers") < text.index("Premium costs") < text.index("phone support")
    assert text.startswith("…")  # the lead sentence shares no term: left out, and marked
    assert "Lyon" not in text


def test_a_rare_question_term_weighs_more_than_a_common_one() -> None:
    rows = scored("premium cost phone", [LONG])[0]
    assert rows[0][2] == "Premium includes phone support."  # two rare terms beat "costs" (in three sentences)


def test_a_source_sharing_no_term_offers_its_lead_sentence() -> None:
    kept = focus("zebra migration", [LONG], lambda r, t: len(t.split()), budget=10)
    assert kept[0].text == "The plan catalogue lists every offer."


def test_the_focused_prompt_stays_within_its_budget_and_is_smaller() -> None:
    rk = ranked(LONG * 3, OTHER * 3, LONG.replace("Premium", "Silver") * 3)
    q = "How much does premium cost?"
    for budget in (280, 340, 400):
        p = build_prompt(q, rk, approx_tokens, budget, packing="focused")
        assert p.prompt_tokens <= budget and len(p.sources) == (3 if budget == 400 else len(p.sources)) >= 2
        assert sum(approx_tokens(m["content"]) for m in p.messages) <= budget
    chunks = build_prompt(q, rk, approx_tokens, 400, packing="chunks")
    assert len(chunks.sources) < 3  # whole chunks: the budget holds fewer sources


def test_with_budget_left_the_neighbours_follow_and_a_short_source_goes_whole() -> None:
    """An answer may share no term with the question ("It costs 25 euros."): after the matching sentences, the
    nearest others; a short source whole when the budget allows (as the old packing sent it)."""
    text = "Premium includes phone support. It costs 25 euros a month. Offices are in Lyon. The staff counts forty."
    words = lambda r, t: len([w for w in t.split() if w != "…"])  # noqa: E731
    kept = focus("What does the premium plan include?", [text], words, budget=11)
    assert kept[0].text == "Premium includes phone support. It costs 25 euros a month." and kept[0].truncated
    assert focus("premium", [text], words, budget=100)[0].text == text
