"""DOCX -> headings, paragraphs and table rows in reading order (python-docx), the title from its properties.

Linear in the document's size (#34): python-docx's ``paragraph.style`` scans every style of the document for
a paragraph without one (~2.4 ms each: a 40 KB file of 31k unstyled paragraphs took 71 s), and a table row's
``cells`` looks up the rows above a vertically merged cell. Here the paragraph styles' names are read once into
a dict (style id -> name, and the default), each paragraph's style id from its own ``w:pStyle``, and a table's
rows are walked once, carrying each grid column's text down through vertical merges.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import nsmap
from docx.table import Table
from lxml import etree

from streamrag.core.extraction import Block, Extracted, ExtractionFailed

_HEADING = re.compile(r"^heading (\d)$", re.I)

# a paragraph's text as python-docx reads it (runs and hyperlinks' runs; a tab, break or non-breaking hyphen as
# its character), in one compiled XPath instead of two XPaths compiled per paragraph and per run
_PIECES = ("w:t", "w:tab", "w:br", "w:cr", "w:noBreakHyphen", "w:ptab")
_TEXT = etree.XPath(" | ".join(f"./{r}/{x}" for r in ("w:r", "w:hyperlink/w:r") for x in _PIECES),
                    namespaces={"w": nsmap["w"]})


def _text(p: Any) -> str:
    return "".join(str(e) for e in _TEXT(p))


def _level(name: str) -> int | None:
    """1-9 for a heading style ("Heading N", "Title" as 1), else None."""
    if name.lower() == "title":
        return 1
    m = _HEADING.match(name)
    return int(m.group(1)) if m else None


class _StyleNames:
    """Paragraph style id -> its name, read once; an unknown or missing id is the default paragraph style
    (as python-docx resolves it)."""

    def __init__(self, document: Any) -> None:
        styles = document.styles
        self.names = {s.style_id: s.name or "" for s in styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
        default = styles.default(WD_STYLE_TYPE.PARAGRAPH)
        self.default = (default.name or "") if default is not None else ""

    def of(self, p: Any) -> str:
        sid = p._p.style  # the paragraph's own style id (w:pPr/w:pStyle/@w:val), or None
        return self.names.get(sid, self.default) if sid is not None else self.default


def _cell_text(tc: Any) -> str:
    return " ".join("\n".join(_text(p) for p in tc.p_lst).split())


def _rows(table: Table) -> list[str]:
    """Each row as its cells' text joined by " | " (a cell spanning columns once, a vertically merged cell's
    text in each row it spans); one pass over the rows."""
    out = []
    above: dict[int, str] = {}  # grid column -> the text of the cell that covers it in the row above
    for tr in table._tbl.tr_lst:
        cells: list[str] = []
        col = tr.grid_before
        for tc in tr.tc_lst:
            span = max(1, tc.grid_span)
            text = above.get(col, "") if tc.vMerge == "continue" else _cell_text(tc)
            for c in range(col, col + span):
                above[c] = text
            col += span
            cells.append(text)
        if any(cells):
            out.append(" | ".join(cells))
    return out


class DocxExtractor:
    def extract(self, data: bytes) -> Extracted:
        try:
            document: Any = docx.Document(io.BytesIO(data))
            content = list(document.iter_inner_content())
            styles = _StyleNames(document)
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
            text = _text(item._p).strip()
            if not text:
                continue
            name = styles.of(item)
            level = _level(name)
            if level is None:
                blocks.append(Block(text, "text", None, path))
                continue
            if name.lower() == "title" and not title_style:
                title_style = text
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, " ".join(text.split())))
            blocks.append(Block(text, "heading", None, tuple(t for _, t in stack)))
        title = (document.core_properties.title or "").strip() or title_style
        return Extracted(tuple(blocks), title, 0)
