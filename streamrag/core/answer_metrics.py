"""Is an answer right? Pure scoring for ``streamrag eval answers`` (tools/answer_eval.py runs the questions).

- **contained**: a gold answer appears in the answer's *first sentence*, both normalised (NFKC, case-folded,
  citation markers, punctuation and symbols removed). Words are compared whole ("8" is not in "18"); a gold
  written without spaces (Japanese, Chinese) is compared with all spaces removed. Only the first sentence
  counts: an answer that opens with a wrong claim and names the gold later is not right.
- **token recall**: the share of the gold's tokens (SQuAD's normalisation: words less a/an/the; character
  bigrams in scripts without spaces) found in the whole answer; it decides only for *long* gold answers
  (5 words, or 15 characters written without spaces: a sentence a reader paraphrases), never for a name, a
  number or a date, which must be contained.
- **correct** = contained, or a long gold with token recall >= 0.5.
- **citations**: the documents the answer's [n] markers point to (an answer lists every source it was given;
  the markers say which it used); hit = a gold document among them; precision = the share of them that are gold.
- **refused**: the answer's status is ``no_answer``, or its text says the sources do not answer (the grounding
  check's refusal phrases, core/generation/grounding.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from streamrag.core.analysis import has_no_space_script, tokens
from streamrag.core.generation.grounding import ground

RECALL_CORRECT = 0.5  # token recall that makes a long answer correct
LONG_GOLD = 5  # words from which a gold answer is long (recall may decide)
LONG_GOLD_CHARS = 15  # characters, for a gold written without spaces (its bigrams are no word count)
_MARKER = re.compile(r"\[\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*\]")
# sentence ends: . ! ? before a space and a capital, digit, quote or bracket; 。！？． with or without a space; a line break
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[\u201c]?[A-Z0-9\u00C0-\u024F])|(?<=[。！？．｡])\s*|\n+")
# a full stop that ends an abbreviation, not a sentence ("e.g. Richard", "et al. The", "Dr. Smith")
_ABBREV = re.compile(r"(?:\b(?i:e\.g|i\.e|et al|vs|cf|approx|fig|figs|dr|mr|mrs|ms|prof|inc|ltd|etc)|\b[A-Z])\.$")
_ARTICLES = frozenset({"a", "an", "the"})


@dataclass(frozen=True)
class AnswerScore:
    contained: bool  # a gold answer in the first sentence
    recall: float  # best token recall of a gold answer in the whole answer
    long_gold: bool  # a gold answer is long: recall may decide
    correct: bool


def normalize(text: str) -> str:
    """NFKC, case-folded, citation markers and punctuation / symbols removed, whitespace collapsed."""
    t = unicodedata.normalize("NFKC", _MARKER.sub(" ", text)).casefold()
    t = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in t)
    return " ".join(t.split())


def _compact(text: str) -> str:
    return normalize(text).replace(" ", "")


def first_sentence(text: str) -> str:
    """The answer up to its first sentence end (citation markers after the end stay with the sentence)."""
    t = text.strip()
    for m in _SENT_END.finditer(t):
        head = t[: m.start()].rstrip()
        if head and not _ABBREV.search(head):
            return head
    return t


def contains(text: str, gold: str) -> bool:
    """``gold`` in ``text``, both normalised; whole words, or without spaces for a gold in a script without them."""
    if not normalize(gold):
        return False
    if has_no_space_script(gold):
        return _compact(gold) in _compact(text)
    return f" {normalize(gold)} " in f" {normalize(text)} "


def answer_tokens(text: str) -> list[str]:
    """SQuAD-style tokens: words less articles; character bigrams where words are written without spaces."""
    return [t for t, no_space in tokens(normalize(text)) if no_space or t not in _ARTICLES]


def token_recall(answer: str, gold: str) -> float:
    """Share of the gold's tokens (with repeats) found in the answer."""
    g = Counter(answer_tokens(gold))
    if not g:
        return 0.0
    a = Counter(answer_tokens(answer))
    return sum((g & a).values()) / sum(g.values())


def is_long(gold: str) -> bool:
    """A sentence a reader paraphrases (recall may decide), not a name, number or date (it must be contained)."""
    if has_no_space_script(gold):
        return len(_compact(gold)) >= LONG_GOLD_CHARS
    return len(answer_tokens(gold)) >= LONG_GOLD


def score_answer(answer: str, golds: Sequence[str]) -> AnswerScore:
    """The answer against every gold answer (any one right is right)."""
    head = first_sentence(answer)
    contained = any(contains(head, g) for g in golds)
    recalls = [(token_recall(answer, g), is_long(g)) for g in golds]
    best = max((r for r, _ in recalls), default=0.0)
    long_gold = any(long for _, long in recalls)
    correct = contained or any(long and r >= RECALL_CORRECT for r, long in recalls)
    return AnswerScore(contained, round(best, 4), long_gold, correct)


def cited_docs(answer: str, sources: Sequence[str]) -> list[str]:
    """The documents the answer's [n] markers point to (``sources``: the answer's citations' doc ids, in order)."""
    nums = [int(n) for m in _MARKER.finditer(answer) for n in re.findall(r"\d+", m.group())]
    return list(dict.fromkeys(sources[n - 1] for n in nums if 1 <= n <= len(sources)))


def citation_scores(cited: Sequence[str], gold_docs: Collection[str]) -> tuple[bool, float | None]:
    """(a gold document cited, share of the distinct cited documents that are gold; None when none cited)."""
    docs = list(dict.fromkeys(cited))
    if not docs:
        return False, None
    good = sum(d in gold_docs for d in docs)
    return good > 0, good / len(docs)


def refused(status: str, answer: str) -> bool:
    """The answer declines: ``no_answer``, or an ``ok`` answer saying the sources do not answer."""
    if status == "no_answer":
        return True
    return status == "ok" and bool(answer.strip()) and ground(first_sentence(answer), 0).refusal
