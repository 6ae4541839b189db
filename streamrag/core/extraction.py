"""Documents as bytes -> clean text with its structure: the logic of the ingest flow's ``extract`` stage.

A ``DocumentChange`` may carry its file (``content_b64`` with a ``content_type``) instead of text, or text in
a format with structure (``content_type`` text/markdown or text/html). The stage decodes the bytes, checks
the size limit (STREAMRAG_MAX_DOC_BYTES), picks the extractor of the type (declared, else sniffed from the
bytes) and gets ``Block`` s back: headings, paragraphs and table rows, each with its page and heading path.
Chunking follows them (``core.chunking.chunk_blocks``) and every chunk carries its page and section.

The ``Extractor`` port and the extractors that need no library (Markdown, plain text) are here; the
library-backed ones (PDF, DOCX, HTML) are adapters in ``streamrag.connectors``, one per file, handed to the
stages by the flows. A file that cannot be read raises ``ExtractionFailed`` with one clear reason: it
becomes a dead letter (stage ``extract``) alone, and the rest of its batch goes on.

Bounds (#34): the file's size (STREAMRAG_MAX_DOC_BYTES); a ZIP container's (DOCX) inflated size and entry
count, read from its central directory before anything is inflated (STREAMRAG_MAX_UNCOMPRESSED_BYTES,
STREAMRAG_MAX_ARCHIVE_ENTRIES); time and memory where the flows hand the stage sandboxed extractors
(``connectors.extract_sandbox``: child processes with CPU, memory and wall-clock limits).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from streamrag.schemas.models import DocumentChange

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HTML = "text/html"
MARKDOWN = "text/markdown"
TEXT = "text/plain"

# how a heading path is written in chunk metadata and citations: "Chapter 2 \u203a Meals"
SECTION_SEP = " \u203a "  # " › "  # noqa: RUF003

FORMAT_NAMES = {PDF: "PDF", DOCX: "DOCX", HTML: "HTML", MARKDOWN: "Markdown", TEXT: "text"}

# file name suffix -> content type (``streamrag publish`` / ``ingest``; content is sniffed for other names)
SUFFIX_TYPES = {
    ".pdf": PDF, ".docx": DOCX, ".html": HTML, ".htm": HTML, ".xhtml": HTML,
    ".md": MARKDOWN, ".markdown": MARKDOWN, ".txt": TEXT, ".rst": TEXT,
}

# other names producers use for the same types
_ALIASES = {
    "text/x-markdown": MARKDOWN, "application/xhtml+xml": HTML, "application/x-pdf": PDF,
    "text/x-rst": TEXT, "text/x-rst; charset=utf-8": TEXT,
}
# "no type given": the bytes decide
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}

BlockKind = Literal["heading", "text", "row"]


@dataclass(frozen=True, slots=True)
class Block:
    """A heading, a paragraph or a table row, where it is in the document."""

    text: str
    kind: BlockKind = "text"
    page: int | None = None  # 1-based; None where the format has no pages (DOCX, HTML, Markdown)
    section: tuple[str, ...] = ()  # the heading path; a heading's own path ends with itself
    header: str = ""  # a table row: its table's header row (repeated where the table goes on in a new chunk)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What an extractor read: the blocks in reading order, the title from the file's own metadata, pages."""

    blocks: tuple[Block, ...]
    title: str = ""
    pages: int = 0

    @property
    def text(self) -> str:
        return join_blocks(self.blocks)


class ExtractionFailed(Exception):
    """The file cannot be read; the message is the one clear reason its dead letter carries."""


class Extractor(Protocol):
    """Bytes of one format -> blocks. Raises ``ExtractionFailed`` (corrupt, encrypted, ...)."""

    def extract(self, data: bytes) -> Extracted: ...


# -- text of blocks ---------------------------------------------------------------------------------------
def separator(prev: Block, cur: Block, page_break: str = "\n\f\n") -> str:
    """What stands between two blocks in a text: a page break, one newline after a heading and between the
    rows of a table, else a blank line."""
    if prev.page != cur.page:
        return page_break
    if prev.kind == "heading" or (prev.kind == "row" and cur.kind == "row"):
        return "\n"
    return "\n\n"


def join_blocks(blocks: Iterable[Block], page_break: str = "\n\f\n") -> str:
    out: list[str] = []
    prev: Block | None = None
    for b in blocks:
        if prev is not None:
            out.append(separator(prev, b, page_break))
        out.append(b.text)
        prev = b
    return "".join(out)


def section_label(section: tuple[str, ...]) -> str:
    return SECTION_SEP.join(section)


# -- Markdown (also the HTML adapter's output) --------------------------------------------------------------
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _front_matter(text: str) -> tuple[str, str]:
    """(title from a YAML front matter block, the text without it)."""
    if not text.startswith("---\n"):
        return "", text
    end = re.search(r"^(---|\.\.\.)[ \t]*$", text[4:], re.M)
    if end is None:
        return "", text
    head, body = text[4 : 4 + end.start()], text[4 + end.end() :]
    title = ""
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "title":
            title = value.strip().strip("'\"")
    return title, body.lstrip("\n")


def _cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", s)]


def parse_markdown(text: str, page: int | None = None) -> Extracted:
    """Markdown -> blocks: ATX and setext headings give the heading path, pipe-table rows stay whole rows,
    fenced code stays one block; the title is the front matter's, else the first level-1 heading's."""
    title, body = _front_matter(text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"))
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    para: list[str] = []
    fence: str | None = None
    header = ""
    first_h1 = ""

    def path() -> tuple[str, ...]:
        return tuple(t for _, t in stack)

    def flush() -> None:
        if para:
            t = "\n".join(para).strip()
            if t:
                blocks.append(Block(t, "text", page, path()))
            para.clear()

    def heading(level: int, t: str) -> None:
        nonlocal first_h1
        flush()
        t = " ".join(t.split())
        if not t:
            return
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, t))
        if level == 1 and not first_h1:
            first_h1 = t
        blocks.append(Block(t, "heading", page, path()))

    for line in body.split("\n"):
        if fence is not None:
            para.append(line)
            if line.strip().startswith(fence):
                fence = None
                flush()
            continue
        if m := _FENCE.match(line):
            flush()
            fence = m.group(1)[0] * 3
            para.append(line)
            continue
        if line.strip().startswith("|"):
            if _TABLE_RULE.match(line):
                continue
            flush()
            row = " | ".join(c for c in _cells(line))
            if not header:
                header = row
            if row.strip(" |"):
                blocks.append(Block(row, "row", page, path(), header))
            continue
        header = ""
        if m := _ATX.match(line):
            heading(len(m.group(1)), m.group(2) or "")
            continue
        if (m := _SETEXT.match(line)) and len(para) == 1 and para[0].strip():
            t = para.pop()
            heading(1 if m.group(1)[0] == "=" else 2, t)
            continue
        if not line.strip():
            flush()
            continue
        para.append(line.rstrip())
    flush()
    return Extracted(tuple(blocks), title or first_h1, 1 if page else 0)


def paragraphs(text: str, page: int | None = None, section: tuple[str, ...] = ()) -> list[Block]:
    """Plain text -> one block per paragraph (blank-line separated)."""
    return [Block(p.strip(), "text", page, section) for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def decode_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractionFailed(f"not UTF-8 text: the {what} file has a byte that cannot be decoded at {exc.start}") from exc


class MarkdownExtractor:
    def extract(self, data: bytes) -> Extracted:
        return parse_markdown(decode_text(data, "Markdown"))


class PlainTextExtractor:
    def extract(self, data: bytes) -> Extracted:
        return Extracted(tuple(paragraphs(decode_text(data, "text").replace("\r\n", "\n"))))


BUILTIN: dict[str, Extractor] = {MARKDOWN: MarkdownExtractor(), TEXT: PlainTextExtractor()}


# -- types ---------------------------------------------------------------------------------------------------
def normalize_type(content_type: str | None) -> str:
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(ct, ct)


def sniff(data: bytes) -> str | None:
    """The type the bytes themselves say, or None (not a format we know)."""
    head = data[:1024]
    if b"%PDF-" in head:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        return DOCX if b"word/" in data else None  # another zip (xlsx, pptx, an archive): not ours
    lead = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lead.startswith((b"<!doctype html", b"<html")) or (lead.startswith(b"<") and b"<html" in lead):
        return HTML
    if b"\x00" in head:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return TEXT


def type_of(name: str, data: bytes) -> str | None:
    """A file's type from its name's suffix, else from its content (``streamrag publish`` / ``ingest``)."""
    dot = name.rfind(".")
    suffix = name[dot:].lower() if dot > name.rfind("/") else ""
    return SUFFIX_TYPES.get(suffix) or sniff(data)


def b64_size(b64: str) -> int:
    """Bytes that a base64 text decodes to (without decoding it)."""
    n = len(b64.strip())
    return n * 3 // 4 - b64.rstrip()[-2:].count("=")


def needs_extraction(ch: DocumentChange) -> bool:
    """Bytes to read, or text in a structured format; plain ``text`` alone is indexed as it is."""
    return ch.op == "upsert" and bool(ch.content_b64 or ch.content_type)


def fallback_title(doc_id: str) -> str:
    """A document's name without folder and suffix (its title when neither the producer nor the file names one)."""
    name = doc_id.rstrip("/").rsplit("/", 1)[-1]
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


def check_archive(data: bytes, max_uncompressed: int, max_entries: int) -> None:
    """A ZIP container is read only if its entries inflate to at most ``max_uncompressed`` bytes in all, and
    there are at most ``max_entries`` of them: both from its central directory, before any entry is inflated
    (Python's zipfile inflates an entry no further than the size declared there, so the declared sizes bound
    what a reader gets). Not a ZIP, or a broken one: nothing to check here (its extractor says what is wrong)."""
    if not data.startswith(b"PK"):
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        return
    if len(infos) > max_entries:
        raise ExtractionFailed(f"archive over the {max_entries} entry limit: it has {len(infos)} entries "
                               f"(STREAMRAG_MAX_ARCHIVE_ENTRIES)")
    total = sum(i.file_size for i in infos)
    if total > max_uncompressed:
        raise ExtractionFailed(f"uncompressed size over {max_uncompressed} bytes: its entries inflate to {total} "
                               f"bytes (STREAMRAG_MAX_UNCOMPRESSED_BYTES; a ZIP bomb?)")


# -- the stage's logic -------------------------------------------------------------------------------------
class DocumentExtraction:
    """Decode, check the size, find the type and its extractor, extract; ``ExtractionFailed`` with one reason."""

    def __init__(self, extractors: Mapping[str, Extractor], max_bytes: int, max_uncompressed: int = 50_000_000,
                 max_entries: int = 10_000, parallel: int = 1) -> None:
        self.extractors = {**BUILTIN, **extractors}
        self.max_bytes = max_bytes
        self.max_uncompressed = max_uncompressed
        self.max_entries = max_entries
        self.parallel = parallel  # documents extracted side by side (sandboxed extractors: one child process each)

    def many(self, changes: Sequence[DocumentChange]) -> list[Extracted | ExtractionFailed]:
        """Each change's extraction or the reason it failed, in order; side by side where ``parallel`` > 1."""
        def one(ch: DocumentChange) -> Extracted | ExtractionFailed:
            try:
                return self(ch)
            except ExtractionFailed as exc:
                return exc

        if self.parallel <= 1 or len(changes) <= 1:
            return [one(ch) for ch in changes]
        with ThreadPoolExecutor(min(self.parallel, len(changes)), thread_name_prefix="extract") as pool:
            return list(pool.map(one, changes))

    def known(self) -> str:
        return ", ".join(sorted({FORMAT_NAMES.get(t, t) for t in self.extractors}))

    def content(self, ch: DocumentChange) -> bytes:
        if ch.content_b64:
            if b64_size(ch.content_b64) > self.max_bytes:
                raise ExtractionFailed(self._too_large())
            try:
                data = base64.b64decode(ch.content_b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ExtractionFailed(f"content_b64 is not valid base64: {exc}") from exc
        else:
            data = ch.text.encode("utf-8")
        if len(data) > self.max_bytes:
            raise ExtractionFailed(self._too_large())
        return data

    def _too_large(self) -> str:
        return f"file too large: more than STREAMRAG_MAX_DOC_BYTES={self.max_bytes} bytes"

    def __call__(self, ch: DocumentChange) -> Extracted:
        data = self.content(ch)
        if not data.strip():
            raise ExtractionFailed("empty file: no bytes to extract text from")
        declared = normalize_type(ch.content_type)
        ctype = sniff(data) if declared in _GENERIC else declared
        if ctype is None:
            raise ExtractionFailed(f"unknown type: the content is none of {self.known()}")
        extractor = self.extractors.get(ctype)
        if extractor is None:
            raise ExtractionFailed(f"unknown type: no extractor for {ctype[:100]!r} (known: {self.known()})")
        what = FORMAT_NAMES.get(ctype, ctype)
        check_archive(data, self.max_uncompressed, self.max_entries)
        try:
            got = extractor.extract(data)
        except ExtractionFailed:
            raise
        except Exception as exc:  # a library's error on these bytes is a property of this file alone
            raise ExtractionFailed(f"unreadable {what}: {type(exc).__name__}: {exc}") from exc
        blocks = tuple(b for b in got.blocks if b.text.strip())
        if not any(b.kind != "heading" for b in blocks):
            pages = f" ({got.pages} page{'s' if got.pages != 1 else ''} without a text layer: scanned images?)" \
                if ctype == PDF and got.pages else ""
            raise ExtractionFailed(f"empty {what}: no text found{pages}")
        return replace(got, blocks=blocks, title=" ".join(got.title.split())[:2_000])
