"""DOCX -> headings, paragraphs and table rows in reading order (python-docx), the title from its properties."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import docx
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from streamrag.core.extraction import Block, Extracted, ExtractionFailed

_HEADING = re.compile(r"^heading (\d)$", re.I)


def _level(p: Paragraph) -> int | None:
    """1-9 for a heading paragraph (styles "Heading N", "Title" as 1), else None."""
    name = (p.style.name if p.style is not None else "") or ""
    if name.lower() == "title":
        return 1
    m = _HEADING.match(name)
    return int(m.group(1)) if m else None


def _rows(table: Table) -> list[str]:
    """Each row as its cells' text joined by " | " (a merged cell once); nested tables' text inside their cell."""
    out = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            out.append(" | ".join(cells))
    return out


class DocxExtractor:
    def extract(self, data: bytes) -> Extracted:
        try:
            document: Any = docx.Document(io.BytesIO(data))
            content = list(document.iter_inner_content())
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ExtractionFailed(f"corrupt DOCX: {exc}") from exc
        stack: list[tuple[int, str]] = []
        blocks: list[Block] = []
        title_style = ""
        for item in content:
            path = tuple(t for _, t in stack)
            if isinstance(item, Table):
                rows = _rows(item)
                blocks.extend(Block(r, "row", None, path, rows[0]) for r in rows)
                continue
            text = item.text.strip()
            if not text:
                continue
            level = _level(item)
            if level is None:
                blocks.append(Block(text, "text", None, path))
                continue
            if item.style is not None and (item.style.name or "").lower() == "title" and not title_style:
                title_style = text
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(text.split())))
            blocks.append(Block(text, "heading", None, tuple(t for _, t in stack)))
        title = (document.core_properties.title or "").strip() or title_style
        return Extracted(tuple(blocks), title, 0)
