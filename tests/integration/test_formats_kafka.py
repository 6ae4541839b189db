"""Files through Kafka (#24): ``streamrag publish DIR`` sends PDF, DOCX and HTML as their bytes, a file over a
megabyte included (the topics' message limit); the worker indexes them with pages and sections, and a corrupt
file is a dead letter (stage extract) named by its key, the rest of the batch indexed."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fpdf import FPDF
from PIL import Image

from streamrag.connectors.files import records_from_paths
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.tools.publish import publish_records
from tests import docgen
from tests.integration.conftest import chunk_rows, read_topic

pytestmark = pytest.mark.integration


def big_pdf() -> bytes:
    """Two pages of text and a photo-like image that does not compress: about 1.5 MB."""
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (720, 720, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, format="PNG")
    doc = FPDF()
    doc.set_title("Site Survey")
    doc.set_font("Helvetica", size=11)
    doc.add_page()
    doc.start_section("Survey")
    doc.multi_cell(0, 7, "The survey covers the roof, the walls and the cellar of the north building.")
    doc.image(io.BytesIO(buf.getvalue()), w=150)
    doc.add_page()
    doc.start_section("Findings")
    doc.multi_cell(0, 7, "The cellar of the north building floods after heavy rain twice a year.")
    return bytes(doc.output())


def test_publish_dir_sends_files_and_the_worker_extracts_them(
    settings: Settings, start_worker: Any, tmp_path: Path,
) -> None:
    start_worker("ingest")
    docs = tmp_path / "docs"
    docs.mkdir()
    survey = big_pdf()
    assert len(survey) > 1_100_000  # over Kafka's default message limit
    (docs / "survey.pdf").write_bytes(survey)
    (docs / "rooms.docx").write_bytes(docgen.word([("h1", "Rooms"), ("table", [["Room", "Price"], ["Attic", "75 euros"]])]))
    (docs / "guide.html").write_text(docgen.HTML)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a PDF at all")
    skipped: list[tuple[RawRecord, str]] = []
    n = publish_records(settings, records_from_paths([docs], "acme", settings.index.max_doc_bytes),
                        lambda r, e: skipped.append((r, e)))
    assert n == 4 and not skipped
    events = read_topic(settings, settings.topics.index_events, lambda m: len(m) >= 3, timeout=120)
    assert sorted((e["doc_id"], e["status"]) for e in events) == [
        ("guide.html", "indexed"), ("rooms.docx", "indexed"), ("survey.pdf", "indexed")]
    dead = read_topic(settings, settings.topics.dead_letters, lambda m: len(m) >= 1, timeout=60)
    assert len(dead) == 1 and dead[0]["stage"] == "extract" and dead[0]["error"].startswith("corrupt PDF")
    assert base64.b64decode(dead[0]["original_key_b64"]) == b"acme/broken.pdf"
    rows = [r for r in chunk_rows(settings, "acme") if r["doc_id"] == "survey.pdf"]
    assert {(r["page"], r["section"]) for r in rows} == {(1, "Survey"), (2, "Findings")}
    assert rows[0]["title"] == "Site Survey"
