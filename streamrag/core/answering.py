"""Answers without any model download: extractive by default, with numbered citations.

The extractive answerer picks the best-supported sentences from the top chunks (query-term
overlap weighted by the chunk's rank) and cites their chunks as [1], [2], ... It is the
last tier of every generator chain (see ``core/generation/chain.py``): it needs no model and never fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from streamrag.core.analysis import STOP, has_no_space_script, tokens
from streamrag.core.generation.backend import Draft, GenerationRequest
from streamrag.core.generation.injection import guard_note, instruction_like
from streamrag.core.retrieval import Ranked
from streamrag.schemas.models import Citation

# sentence ends: . ! ? before a capital, 。！？ with or without a space (Japanese, Chinese), a line break
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|(?<=[。！？．])\s*|\n+")


def terms(text: str) -> list[str]:
    """Content terms in any script: words less English stop words, and character bigrams where words are
    written without spaces (core/analysis.py)."""
    return [t for t, no_space in tokens(text) if no_space or (t not in STOP and len(t) > 1)]


_MARKERS = re.compile(r"\[\d{1,3}\]")
LEXICAL_SUPPORT = 0.5  # share of a question's content terms in a chunk that makes it worth answering from


def coverage(question: str, text: str) -> float:
    """Share of the question's content terms found in ``text`` (0 when it has none)."""
    q = set(terms(question))
    return len(q & set(terms(text))) / len(q) if q else 0.0


def lexically_supported(question: str, ranked: Sequence[Ranked], top: int = 3) -> bool:
    """Whether one of the top chunks holds most of the question's terms: evidence to answer from when the
    dense score alone is low (a language the embedding model does not know)."""
    return any(coverage(question, f"{r.hit.title}\n{r.hit.text}") >= LEXICAL_SUPPORT for r in ranked[:top])


def answer_supported(question: str, answer: str) -> bool:
    """Whether an extractive answer (its sentences, markers aside) holds most of the question's terms."""
    return coverage(question, _MARKERS.sub(" ", answer)) >= LEXICAL_SUPPORT


def citation(r: Ranked) -> Citation:
    return Citation(
        doc_id=r.hit.doc_id, version=r.hit.version, chunk_id=r.hit.id, title=r.hit.title,
        snippet=snippet(r.hit.text), score=round(r.score, 6), page=r.hit.page, section=r.hit.section,
    )


def snippet(text: str, n: int = 240) -> str:
    t = " ".join(text.split())
    return t if len(t) <= n else t[: n - 1].rsplit(" ", 1)[0] + "…"


class ExtractiveAnswerer:
    name = "extractive"

    def __init__(self, max_sentences: int = 3, max_chunks: int = 5) -> None:
        self.max_sentences = max_sentences
        self.max_chunks = max_chunks

    def generate(self, req: GenerationRequest) -> Draft:
        return self.answer(req.question, req.ranked, req.top_k)

    def answer(self, question: str, ranked: Sequence[Ranked], top_k: int) -> Draft:
        top = list(ranked[:top_k])
        citations = [citation(r) for r in top]
        qterms = set(terms(question))
        cands: list[tuple[float, int, int, str]] = []
        for ci, r in enumerate(top[: self.max_chunks]):
            rank_w = 1.0 / (1.0 + 0.35 * ci)
            for si, sent in enumerate(s.strip() for s in _SENT.split(r.hit.text)):
                if len(sent) < (8 if has_no_space_script(sent) else 20):  # a CJK character carries a word's worth
                    continue
                st = terms(sent)
                if not st:
                    continue
                overlap = len(qterms & set(st))
                score = rank_w * (overlap + 0.1) / math.sqrt(len(st) + 4)
                cands.append((score, ci, si, sent))
        if not cands:
            return Draft("no_answer", "", citations)
        best: list[tuple[float, int, int, str]] = []
        guarded = 0
        for c in sorted(cands, key=lambda c: -c[0]):  # a sentence that addresses a model is never quoted
            if len(best) == self.max_sentences:
                break
            if instruction_like(c[3]):
                guarded += 1
            else:
                best.append(c)
        if not best:
            return Draft("no_answer", "", citations, fallback=[guard_note(guarded)])
        # best-supported first: the first sentence is what a reader (and `eval answers`) takes as the answer;
        # the sentences after it add context, each cited
        parts = [f"{' '.join(sent.split())} [{ci + 1}]" for _, ci, _, sent in best]
        return Draft("ok", " ".join(parts), citations, fallback=[guard_note(guarded)] if guarded else [])
