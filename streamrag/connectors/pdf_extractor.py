"""PDF -> text per page (pypdf), the outline's heading path per page, the title from the file's metadata."""

from __future__ import annotations

import io
import logging
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PdfReadError

from streamrag.core.extraction import Block, Extracted, ExtractionFailed, paragraphs

# pypdf reports what it repairs in a damaged file as warnings: one dead letter says what matters instead
logging.getLogger("pypdf").setLevel(logging.ERROR)


def _title(reader: PdfReader) -> str:
    try:
        meta = reader.metadata
        title = str(meta.title or "") if meta is not None else ""
    except Exception:  # a broken info dictionary: no title from it
        return ""
    title = title.strip()
    for prefix in ("Microsoft Word - ", "Microsoft PowerPoint - "):
        if title.startswith(prefix):
            title = title[len(prefix):].rsplit(".", 1)[0]
    return "" if title.lower() in ("untitled", "untitled document") else title


def _outline(reader: PdfReader) -> list[tuple[int, tuple[str, ...]]]:
    """(page index, heading path) of each outline entry (bookmarks), in page order; none if it is unreadable."""
    out: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[Any], path: tuple[str, ...]) -> None:
        last: tuple[str, ...] = path
        for it in items:
            if isinstance(it, list):
                walk(it, last)
                continue
            title = " ".join(str(getattr(it, "title", "") or "").split())
            if not title:
                continue
            last = (*path, title)
            page = reader.get_destination_page_number(it)
            if page is not None and page >= 0:
                out.append((page, last))

    try:
        walk(list(reader.outline), ())
    except Exception:  # a damaged outline: pages without sections
        return []
    return sorted(out, key=lambda x: x[0])


class PdfExtractor:
    """One block per paragraph of each page's text layer; a page's section is the outline entry it falls under."""

    def extract(self, data: bytes) -> Extracted:
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise ExtractionFailed("encrypted PDF: its text needs a password")
            pages = list(reader.pages)
        except ExtractionFailed:
            raise
        except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise ExtractionFailed(f"corrupt PDF: {exc}") from exc
        if not pages:
            raise ExtractionFailed("empty PDF: it has no pages")
        marks = _outline(reader)
        blocks: list[Block] = []
        section: tuple[str, ...] = ()
        k = 0
        for i, page in enumerate(pages):
            while k < len(marks) and marks[k][0] <= i:
                section = marks[k][1]
                k += 1
            try:
                text = page.extract_text() or ""
            except Exception as exc:
                raise ExtractionFailed(f"corrupt PDF: page {i + 1} cannot be read: {type(exc).__name__}: {exc}") from exc
            blocks.extend(paragraphs(text.replace("\r\n", "\n"), page=i + 1, section=section))
        return Extracted(tuple(blocks), _title(reader), len(pages))
