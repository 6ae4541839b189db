"""Small documents made by the tests: PDFs (fpdf2), DOCX (python-docx), HTML and Markdown."""

from __future__ import annotations

import base64
import io
import zipfile
import zlib
from typing import Any

import docx
from fpdf import FPDF
from pypdf import PdfWriter


def pdf(pages: list[list[tuple[str, int] | str]], title: str = "") -> bytes:
    """One list per page: strings are paragraphs, (heading, level) pairs are outline entries (bookmarks)."""
    doc = FPDF()
    if title:
        doc.set_title(title)
    doc.set_font("Helvetica", size=11)
    for page in pages:
        doc.add_page()
        for item in page:
            if isinstance(item, tuple):
                doc.start_section(item[0], level=item[1])
                doc.multi_cell(0, 7, item[0], new_x="LMARGIN", new_y="NEXT")
            else:
                doc.multi_cell(0, 7, item, new_x="LMARGIN", new_y="NEXT")
                doc.ln(4)
    return bytes(doc.output())


def encrypted(data: bytes, password: str = "secret") -> bytes:
    w = PdfWriter(clone_from=io.BytesIO(data))
    w.encrypt(password)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def word(items: list[Any], title: str = "") -> bytes:
    """Items: ("h1"|"h2", text), ("p", text) or ("table", [[cells], ...])."""
    d = docx.Document()
    if title:
        d.core_properties.title = title
    for kind, value in items:
        if kind.startswith("h"):
            d.add_heading(value, level=int(kind[1:]))
        elif kind == "p":
            d.add_paragraph(value)
        else:
            t = d.add_table(rows=len(value), cols=len(value[0]))
            for r, row in enumerate(value):
                for c, cell in enumerate(row):
                    t.cell(r, c).text = cell
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


HTML = """<!doctype html><html><head><title>Hotel Guide</title>
<style>.banner { color: red } /* STYLETEXT */</style>
<script>var token = "SCRIPTTEXT";</script></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/about">NAVLINK about the company</a></li></ul></nav>
<header><div>HEADERBANNER welcome to the intranet</div></header>
<main><article><h1>Hotel Guide</h1>
<p>This guide explains the hotel rules for travelling staff in some detail, so read it before you book.</p>
<h2>Meals</h2>
<p>Breakfast is served from seven to ten in the morning and the company pays for it in every hotel.</p>
<h3>Dinner</h3>
<p>Dinner is reimbursed up to forty euros per night when you keep the receipt of the restaurant.</p>
</article></main>
<footer><p>FOOTERTEXT Copyright 2024 ACME Corporation. All rights reserved. Imprint and privacy.</p></footer>
</body></html>"""


def file_change(doc_id: str, data: bytes, content_type: str = "", version: int = 1, tenant: str = "acme",
                **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"op": "upsert", "tenant": tenant, "doc_id": doc_id, "version": version,
                         "content_b64": base64.b64encode(data).decode("ascii"), **kw}
    if content_type:
        d["content_type"] = content_type
    return d


def _with_document_xml(write: Any) -> bytes:
    """A real DOCX (python-docx's own parts) whose word/document.xml ``write(zip_entry)`` writes instead."""
    src = zipfile.ZipFile(io.BytesIO(word([("p", "seed")])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            if info.filename == "word/document.xml":
                with z.open("word/document.xml", "w") as fh:
                    write(fh)
            else:
                z.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


_W = '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'


def bloated_docx(xml_bytes: int = 1 << 20) -> bytes:
    """#34's 40 KB DOCX: a document.xml of ``xml_bytes`` of unstyled paragraphs (1 MiB: 30,838 of them)."""
    para = b"<w:p><w:r><w:t>w</w:t></w:r></w:p>"
    n = (xml_bytes - len(_W) - 20) // len(para)
    return _with_document_xml(lambda fh: fh.write(_W.encode() + para * n + b"</w:body></w:document>"))


def zip_bomb_docx(inflated: int = 200_000_000) -> bytes:
    """A DOCX whose document.xml inflates to ``inflated`` bytes (mostly spaces): about 200 KB for 200 MB."""
    def write(fh: Any) -> None:
        fh.write(_W.encode() + b"<w:p><w:r><w:t>")
        chunk = b" " * (1 << 20)
        for _ in range(inflated // len(chunk)):
            fh.write(chunk)
        fh.write(b"bomb</w:t></w:r></w:p></w:body></w:document>")

    return _with_document_xml(write)


def slow_pdf(ops: int) -> bytes:
    """A one-page PDF whose content stream (a few KB compressed) is ``ops`` text operations: pypdf reads about
    35,000 a second, so 600,000 of them keep an extraction busy for most of 20 s."""
    content = zlib.compress(b"BT /F1 1 Tf " + b"(a) Tj 1 0 Td " * ops + b"ET", 9)
    objs = [b"<</Type/Catalog/Pages 2 0 R>>", b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
            b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Resources<</Font<</F1 5 0 R>>>>/Contents 4 0 R>>",
            b"<</Length %d/Filter/FlateDecode>>stream\n" % len(content) + content + b"\nendstream",
            b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)
