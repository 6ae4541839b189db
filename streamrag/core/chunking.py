"""Token-aware chunking: windows of ``size`` model tokens with ``overlap``, ending on sentence
boundaries where one falls in the last part of the window.

Extracted documents (PDF, DOCX, HTML, Markdown: ``core.extraction``) are chunked by their structure
(``chunk_blocks``): a chunk holds whole blocks of one page and one section (headings start a new one, a
heading with no text of its own goes with the text after it), table rows are never cut (a table that
goes on in a new chunk repeats its header row), and only a block larger than a chunk is cut into windows.
Each chunk carries its page and heading path."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamrag.core.extraction import Block, join_blocks, separator

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
    page: int | None = None  # 1-based, where the format has pages
    section: tuple[str, ...] = ()  # the heading path it is under


def regex_tokenize(text: str) -> list[tuple[int, int]]:
    """A tokenizer-free fallback: words and punctuation."""
    return [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]


# scripts written without spaces between words (kana, CJK ideographs, hangul, Thai, Lao, Khmer, Myanmar):
# a model's sub-word tokenizer gives about one token per character there
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f"
_SCRIPT_TOKEN = re.compile(f"[{_UNSPACED}]|(?:(?![{_UNSPACED}])\\w)+|[^\\w\\s]")


def script_tokenize(text: str) -> list[tuple[int, int]]:
    """Words and punctuation, and each character of a script written without spaces (a Japanese sentence is
    not one word): chunk sizes close to a sub-word tokenizer's when the model gives no offsets."""
    return [(m.start(), m.end()) for m in _SCRIPT_TOKEN.finditer(text)]


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


def _groups(blocks: Sequence[Block]) -> list[list[int]]:
    """Blocks (by index) of one page and one section each: a heading starts a new group once the current one
    has text; headings with no text of their own stay with the text that follows them."""
    groups: list[list[int]] = []
    cur: list[int] = []
    first: Block | None = None  # the current group's first block of text (linear: #34's 31k paragraphs)
    for i, b in enumerate(blocks):
        if first is not None and (b.kind == "heading" or b.page != first.page or b.section != first.section):
            groups.append(cur)
            cur, first = [], None
        cur.append(i)
        if first is None and b.kind != "heading":
            first = b
    if cur:
        if groups and all(blocks[j].kind == "heading" for j in cur):
            groups[-1].extend(cur)  # headings that end the document: no chunk of their own
        else:
            groups.append(cur)
    return groups


class _Packer:
    """Whole blocks of one group into chunks of at most ``size`` tokens."""

    def __init__(self, blocks: Sequence[Block], offs: list[int], out: list[Chunk], where: Block) -> None:
        self.blocks, self.offs, self.out, self.where = blocks, offs, out, where
        self.parts: list[int] = []
        self.n_parts = 0
        self.prefix, self.n_prefix = "", 0  # a continued table's header row

    def emit(self, text: str, start: int, end: int, n: int) -> None:
        if text.strip():
            self.out.append(Chunk(len(self.out), text, start, end, n, self.where.page, self.where.section))

    def headings_only(self) -> bool:
        return bool(self.parts) and all(self.blocks[k].kind == "heading" for k in self.parts)

    def text_of(self, parts: list[int]) -> str:
        return join_blocks([self.blocks[k] for k in parts], page_break="\n")

    def flush(self) -> None:
        if self.parts:
            last = self.parts[-1]
            self.emit(self.prefix + self.text_of(self.parts), self.offs[self.parts[0]],
                      self.offs[last] + len(self.blocks[last].text), self.n_prefix + self.n_parts)
        self.parts, self.n_parts, self.prefix, self.n_prefix = [], 0, "", 0


def chunk_blocks(
    blocks: Sequence[Block], *, size: int, overlap: int, tokenize: Tokenize = regex_tokenize
) -> list[Chunk]:
    """Chunks that follow the document's structure (see the module docstring); ``overlap`` applies
    inside a block cut into windows."""
    if overlap >= size:
        raise ValueError("overlap must be smaller than size")
    blocks = [b for b in blocks if b.text.strip()]
    if not blocks:
        return []
    offs: list[int] = []
    pos = 0
    for i, b in enumerate(blocks):
        if i:
            pos += len(separator(blocks[i - 1], b))
        offs.append(pos)
        pos += len(b.text)
    starts = [s for s, _ in tokenize(join_blocks(blocks))]
    ntok = [bisect_left(starts, o + len(b.text)) - bisect_left(starts, o) for b, o in zip(blocks, offs, strict=True)]
    chunks: list[Chunk] = []
    for group in _groups(blocks):
        pk = _Packer(blocks, offs, chunks, next((blocks[j] for j in group if blocks[j].kind != "heading"), blocks[group[0]]))
        for j in group:
            b, n = blocks[j], ntok[j]
            if n > size:  # a block larger than a chunk: cut into windows (headings before it lead the first)
                lead, n_lead = "", 0
                if pk.headings_only():
                    lead, n_lead = pk.text_of(pk.parts) + "\n", pk.n_parts
                    pk.parts, pk.n_parts = [], 0
                pk.flush()
                for w in chunk_text(b.text, size=size, overlap=overlap, tokenize=tokenize):
                    pk.emit(lead + w.text, offs[j] + w.start, offs[j] + w.end, n_lead + w.n_tokens)
                    lead, n_lead = "", 0
                continue
            if pk.parts and pk.n_prefix + pk.n_parts + n > size and not pk.headings_only():
                prev = blocks[pk.parts[-1]]
                pk.flush()
                if b.kind == "row" and prev.kind == "row" and b.header and b.header != b.text:
                    n_head = len(tokenize(b.header))
                    if n_head + n <= size:
                        pk.prefix, pk.n_prefix = b.header + "\n", n_head
            pk.parts.append(j)
            pk.n_parts += n
        pk.flush()
    return chunks
