"""Token-aware chunking: windows of ``size`` model tokens with ``overlap``, ending on sentence
boundaries where one falls in the last part of the window."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# (text) -> list of (start_char, end_char) per token
Tokenize = Callable[[str], list[tuple[int, int]]]

_SENT_END = re.compile(r"[.!?][\"')\]]?\s+|\n\s*\n")


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_no: int
    text: str
    start: int
    end: int
    n_tokens: int


def regex_tokenize(text: str) -> list[tuple[int, int]]:
    """A tokenizer-free fallback: words and punctuation."""
    return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


def _sentence_ends(text: str) -> list[int]:
    return [m.end() for m in _SENT_END.finditer(text)]


def chunk_text(text: str, *, size: int, overlap: int, tokenize: Tokenize = regex_tokenize) -> list[Chunk]:
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    spans = tokenize(text)
    if not spans:
        return []
    if len(spans) <= size:
        s, e = spans[0][0], spans[-1][1]
        return [Chunk(0, text[s:e], s, e, len(spans))]
    ends = _sentence_ends(text)
    chunks: list[Chunk] = []
    i = 0
    n = len(spans)
    while i < n:
        j = min(i + size, n)  # exclusive token index
        if j < n:
            # Prefer to end at a sentence boundary in the last 40% of the window.
            lo_char = spans[i + int(size * 0.6)][0]
            hi_char = spans[j - 1][1]
            cut = [c for c in ends if lo_char < c <= hi_char]
            if cut:
                c = cut[-1]
                k = j
                while k > i + 1 and spans[k - 1][0] >= c:
                    k -= 1
                j = k
        s, e = spans[i][0], spans[j - 1][1]
        chunks.append(Chunk(len(chunks), text[s:e], s, e, j - i))
        if j >= n:
            break
        i = max(j - overlap, i + 1)
    return chunks
