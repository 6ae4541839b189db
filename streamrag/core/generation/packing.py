"""Focused packing: the sentences of the sources that bear most on the question, within a small budget.

On a CPU every prompt token costs time before the first answer token (~20 tokens/s of prompt on two cores
for a 1.5B model), so a prompt of 350 tokens is ~18 s and one of 800 is ~40 s. Packing whole sources by rank
spends that budget on the first one or two sources; ``focused`` packing spends it on the sentences that
share the question's content terms, from every source:

- each sentence is scored by the question's content terms it holds, each weighted by its rarity among the
  sentences given (an inverse document frequency over these sources only: no corpus statistics, no
  tuning to any data set), divided by the square root of its length in terms;
- the sources take turns in rank order, each adding its next-best sentence that still fits, so that every
  source the budget allows is represented by its best sentence before any source gets its second;
- a source with no sentence sharing a term offers its lead sentence first (it often names the subject);
- while the budget lasts, the other sentences follow, nearest to a matching one first (a sentence answering
  the question may share no term with it: "Premium includes phone support. It costs 25 euros."), so a short
  source goes whole;
- each source's kept sentences are written in their original order, a gap marked "…".
"""

from __future__ import annotations

import math
import re
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamrag.core.answering import terms

_SENT_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
MAX_SENTENCE_CHARS = 600  # a "sentence" longer than this (a table, a list without stops) is cut at a space


@dataclass(frozen=True)
class Focused:
    """One source's kept sentences, in their order, and whether any was left out."""

    rank: int
    text: str
    truncated: bool


def sentences(text: str) -> list[str]:
    out: list[str] = []
    for s in _SENT_END.split(text):
        s = s.strip()
        while len(s) > MAX_SENTENCE_CHARS:
            cut = s.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut if cut > MAX_SENTENCE_CHARS // 2 else MAX_SENTENCE_CHARS
            out.append(s[:cut].strip())
            s = s[cut:].strip()
        if s:
            out.append(s)
    return out


def scored(question: str, texts: Sequence[str]) -> list[list[tuple[float, int, str]]]:
    """Per source, its sentences as (score, position, sentence) in the order they are offered: those sharing a
    term with the question, best first (position breaks ties), then the others, nearest to one of them first."""
    q = set(terms(question))
    split = [list(dict.fromkeys(sentences(t))) for t in texts]  # a sentence repeated in a source counts once
    bags = [[set(terms(s)) for s in ss] for ss in split]
    df = Tally(t for source in bags for bag in source for t in bag & q)
    n = sum(len(source) for source in bags) or 1
    idf = {t: math.log(1 + n / df[t]) for t in df}
    out = []
    for ss, source in zip(split, bags, strict=True):
        rows = [(sum(idf.get(t, 0.0) for t in bag & q) / math.sqrt(len(bag) + 4), i, s)
                for i, (s, bag) in enumerate(zip(ss, source, strict=True))]
        best = sorted((r for r in rows if r[0] > 0), key=lambda r: (-r[0], r[1]))
        hits = [r[1] for r in best] or [0]  # nothing shares a term: the lead sentence comes first
        rest = sorted((r for r in rows if r[0] <= 0), key=lambda r: (min(abs(r[1] - h) for h in hits), r[1]))
        out.append(best + rest)  # then the others, nearest to a matching sentence first (an answer is often next
        # to the sentence naming the subject: "Premium includes phone support. It costs 25 euros.")
    return out


def focus(question: str, texts: Sequence[str], cost: Callable[[int, str], int], budget: int) -> list[Focused]:
    """The sentences of ``texts`` (sources in rank order) to send, within ``budget`` tokens.

    ``cost(rank, text)``: the tokens of source ``rank``'s block holding ``text``; it is called with the text
    as it would be sent, so the budget holds on what is sent."""
    ranked = scored(question, texts)
    kept: dict[int, list[tuple[int, str]]] = {}
    spent: dict[int, int] = {}
    left = budget
    for turn in range(max((len(rows) for rows in ranked), default=0)):
        for rank, rows in enumerate(ranked):
            if turn >= len(rows):
                continue
            _, pos, sent = rows[turn]
            trial = sorted([*kept.get(rank, []), (pos, sent)])
            extra = cost(rank, _joined(trial)) - spent.get(rank, 0)
            if extra <= left:
                left -= extra
                kept[rank], spent[rank] = trial, spent.get(rank, 0) + extra
        if left <= 0:
            break
    return [Focused(rank, _joined(kept[rank]), len(kept[rank]) < len(set(sentences(texts[rank])))) for rank in sorted(kept)]


def _joined(kept: list[tuple[int, str]]) -> str:
    """Sentences (position, text) in order, "…" where one or more were left out before or between them."""
    parts: list[str] = []
    prev = -1
    for pos, sent in kept:
        if pos != prev + 1:
            parts.append("…")
        parts.append(sent)
        prev = pos
    return " ".join(parts)
