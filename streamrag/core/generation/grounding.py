"""Grounding: every [n] in a generated answer must point to a provided source.

Invalid markers are removed; an answer that cites nothing valid is ungrounded (the caller decides:
flag it, or replace it with the extractive answer); an answer that says the sources do not answer
is a ``no_answer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]")
_REFUSAL = re.compile(
    r"\b(?:sources?|context|documents?|provided\s+(?:text|information))\s+(?:do(?:es)?\s+not|don't|doesn't)\s+"
    r"(?:say|contain|mention|provide|include|specify|state|answer|cover|address|give)"
    r"|\b(?:i\s+(?:do\s+not|don't|cannot|can't)\s+(?:know|find|answer))"
    r"|\bno\s+(?:information|mention|answer)\b(?:\W+\w+){0,4}?\W+(?:sources?|context|documents?)",
    re.I,
)


@dataclass(frozen=True)
class Grounded:
    text: str
    cited: list[int]  # 1-based source numbers, in order of first use
    invalid: int  # markers removed
    refusal: bool

    @property
    def grounded(self) -> bool:
        return bool(self.cited)


def ground(text: str, n_sources: int) -> Grounded:
    cited: list[int] = []
    invalid = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal invalid
        keep = []
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            n = int(part)
            if 1 <= n <= n_sources:
                keep.append(n)
                if n not in cited:
                    cited.append(n)
            else:
                invalid += 1
        return "".join(f"[{n}]" for n in dict.fromkeys(keep))

    fixed = _MARKER.sub(fix, text)
    fixed = re.sub(r"[ \t]+([.,;:!?])", r"\1", re.sub(r"[ \t]{2,}", " ", fixed)).strip()
    return Grounded(fixed, cited, invalid, refusal=not cited and bool(_REFUSAL.search(fixed)))
