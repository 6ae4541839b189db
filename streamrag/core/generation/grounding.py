"""Grounding: every [n] in a generated answer must point to a provided source that supports it.

Small models cite the wrong number and cite sources for facts that are not in them. Per sentence, the
content words are compared with each source: a marker pointing to a source that does not support the
sentence is moved to the one that does, or removed when none does; a supported sentence without a
marker gets one. An answer left with no valid citation is ungrounded (the caller decides: flag it, or
replace it with the extractive answer); an answer saying the sources do not answer is a ``no_answer``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from streamrag.core.answering import terms

_MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]")
_AFTER_STOP = re.compile(r"([.!?。！？])[ \t]*((?:\[\s*\d{1,3}(?:\s*[,;]\s*\d{1,3})*\s*\][ \t]*)+)")
# sentence ends: . ! ? before a space, 。！？ with or without one, a marker before a capital, a line break
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*|(?<=\])\s+(?=[A-Z])|\n+")
_REFUSAL = re.compile(
    r"\b(?:sources?|context|documents?|provided\s+(?:text|information))\b(?:\W+\w+){0,2}?\W+"
    r"(?:do(?:es)?\s+not|don't|doesn't)\s+"
    r"(?:say|contain|mention|provide|include|specify|state|answer|cover|address|give|have)"
    r"|\bi\s+(?:do\s+not|don't|cannot|can't)\s+(?:know|find|answer)"
    r"|\bno\s+(?:information|mention|answer)\b(?:\W+\w+){0,4}?\W+(?:sources?|context|documents?)"
    # Japanese: "the sources do not mention / contain it", "I do not know"
    r"|(?:資料|文書|情報|ソース|出典|コンテキスト).{0,12}?(?:記載|言及|含まれ|書かれ|見当たり|あり)[^。]{0,6}?ません"
    r"|(?:わかりません|分かりません|答えられません)",
    re.I,
)
SUPPORTED = 0.5  # share of a sentence's content words found in a source
UNSUPPORTED = 0.34


@dataclass(frozen=True)
class Grounded:
    text: str
    cited: list[int]  # 1-based source numbers, in order of first use
    invalid: int  # markers removed or moved
    refusal: bool

    @property
    def grounded(self) -> bool:
        return bool(self.cited)


def _numbers(m: re.Match[str]) -> list[int]:
    return [int(p) for p in re.split(r"\s*[,;]\s*", m.group(1))]


def ground(text: str, n_sources: int, sources: Sequence[str] | None = None) -> Grounded:
    """Valid markers only; with ``sources`` (their texts, in prompt order) markers must be supported."""
    src_terms = [set(terms(s)) for s in sources] if sources is not None else None
    cited: list[int] = []
    invalid = 0
    out: list[str] = []
    refusal = bool(_REFUSAL.search(text))
    # "… class. [1]" -> "… class [1]." so that a trailing marker stays with its sentence
    text = _AFTER_STOP.sub(lambda m: f" {m.group(2).strip()}{m.group(1)} ", text)
    for sent in _SENTENCE.split(text.strip()):
        if not sent.strip():
            continue
        marks = [n for m in _MARKER.finditer(sent) for n in _numbers(m)]
        body = re.sub(r"\s+([.!?,;:])", r"\1", _MARKER.sub("", sent)).strip()
        keep = [n for n in dict.fromkeys(marks) if 1 <= n <= n_sources]
        invalid += len(marks) - len(keep)
        if src_terms is not None and not refusal:
            words = set(terms(body))
            if words:
                support = [len(words & st) / len(words) for st in src_terms]
                best = max(range(len(support)), key=support.__getitem__) + 1 if support else 0
                good = [n for n in keep if support[n - 1] >= UNSUPPORTED]
                if not good and best and support[best - 1] >= SUPPORTED:
                    good = [best]
                invalid += len([n for n in keep if n not in good])
                keep = good
        for n in keep:
            if n not in cited:
                cited.append(n)
        end = re.search(r"[.!?。！？]+$", body)
        core, punct = (body[: end.start()], end.group()) if end else (body, "")
        out.append(core + "".join(f" [{n}]" for n in keep) + punct if keep else body)
    fixed = re.sub(r"(?<=[。！？]) (?=\S)", "", re.sub(r"[ \t]{2,}", " ", " ".join(out))).strip()
    return Grounded(fixed, cited, invalid, refusal=refusal and not cited)
