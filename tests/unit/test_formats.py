"""Real documents (#24): PDF, DOCX, HTML and Markdown through the ``extract`` stage, chunks that follow their
structure, page and section in chunk rows and citations, bad files dead-lettered one by one."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.connectors.files import records_from_paths
from streamrag.connectors.lancedb_schema import chunk_schema
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.chunking import chunk_blocks
from streamrag.core.extraction import DOCX, HTML, MARKDOWN, PDF, Block, parse_markdown, sniff, type_of
from streamrag.core.query.processor import QueryProcessor
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter, DocumentChange, IndexEvent, Query
from streamrag.schemas.vocabulary import INGEST_STAGES
from tests import docgen
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder

TRAVEL = [
    [("Chapter 1", 0), "Hotels are booked by the travel office for every trip that lasts more than one day.",
     "Trains are taken in second class unless the journey is longer than four hours."],
    [("Chapter 2", 0), ("Meals", 1), "Breakfast costs are refunded up to seventeen euros when the hotel does not include it."],
]


def make(settings: Settings, store: LanceStore, **kw: Any) -> tuple[Indexer, QueryProcessor]:
    emb = HashEmbedder()
    s = settings.model_copy(update={"answer_min_score": 0.05, "chunk_size": 64, "chunk_overlap": 8, **kw})
    return Indexer(s, store, emb), query_processor(s, store, emb)


def ask(qp: QueryProcessor, text: str) -> Any:
    (a,) = qp.answer_many([Query.model_validate({"query_id": "q1", "tenant": "acme", "text": text})])
    return a


def outputs(ing: Indexer, *changes: dict[str, Any]) -> tuple[dict[str, IndexEvent], dict[str, DeadLetter]]:
    events: dict[str, IndexEvent] = {}
    dead: dict[str, DeadLetter] = {}
    for o in ing.process_batch([rec(c, key=f"acme/{c['doc_id']}".encode()) for c in changes]):
        if isinstance(o, IndexEvent):
            events[o.doc_id] = o
        else:
            dead[base64.b64decode(o.original_key_b64 or "").decode()] = o
    return events, dead


def rows(store: LanceStore, doc_id: str) -> list[dict[str, Any]]:
    return sorted((r for r in store.chunk_rows("acme") if r["doc_id"] == doc_id), key=lambda r: r["chunk_no"])


# -- the formats ----------------------------------------------------------------------------------------------
def test_pdf_fact_on_page_two_is_cited_with_page_two_and_its_section(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    events, dead = outputs(ing, docgen.file_change("policy.pdf", docgen.pdf(TRAVEL, title="Travel Policy"), PDF))
    assert not dead and events["policy.pdf"].status == "indexed"
    a = ask(qp, "How much of the breakfast costs is refunded?")
    assert a.status == "ok" and "seventeen euros" in a.answer
    top = a.citations[0]
    assert top.doc_id == "policy.pdf" and top.page == 2 and top.section == "Chapter 2 \u203a Meals"
    assert top.title == "Travel Policy"  # from the PDF's own metadata
    got = rows(store, "policy.pdf")
    assert [(r["page"], r["section"]) for r in got] == [(1, "Chapter 1"), (2, "Chapter 2 \u203a Meals")]
    assert "Breakfast" not in got[0]["text"] and "Hotels" not in got[1]["text"]  # no chunk crosses the page


def test_docx_fact_only_in_a_table_is_found_as_a_whole_row(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    data = docgen.word([
        ("h1", "Rooms"), ("p", "The rooms of the guest house are listed below with their nightly prices."),
        ("h2", "Prices"), ("table", [["Room", "Price per night"], ["Garden suite", "120 euros"],
                                     ["Penthouse with terrace", "900 euros"]]),
    ], title="Guest House")
    events, dead = outputs(ing, docgen.file_change("rooms.docx", data, DOCX))
    assert not dead and events["rooms.docx"].status == "indexed"
    a = ask(qp, "What does the penthouse with terrace cost?")
    assert a.status == "ok" and a.citations[0].doc_id == "rooms.docx" and "900 euros" in a.citations[0].snippet
    assert a.citations[0].section == "Rooms \u203a Prices" and a.citations[0].title == "Guest House"
    table = [r for r in rows(store, "rooms.docx") if "Penthouse" in r["text"]]
    assert len(table) == 1 and "Penthouse with terrace | 900 euros" in table[0]["text"]


def test_html_main_text_is_indexed_and_navigation_footer_script_are_not(settings: Settings, store: LanceStore) -> None:
    ing, qp = make(settings, store)
    events, dead = outputs(ing, docgen.file_change("guide.html", docgen.HTML.encode(), HTML))
    assert not dead and events["guide.html"].status == "indexed"
    text = " ".join(r["text"] for r in rows(store, "guide.html"))
    assert "forty euros per night" in text and "Breakfast is served" in text
    for boilerplate in ("NAVLINK", "HEADERBANNER", "FOOTERTEXT", "SCRIPTTEXT", "STYLETEXT"):
        assert boilerplate not in text
    a = ask(qp, "How much is dinner reimbursed per night?")
    assert a.citations[0].doc_id == "guide.html" and a.citations[0].section == "Hotel Guide \u203a Meals \u203a Dinner"
    assert a.citations[0].title == "Hotel Guide" and a.citations[0].page is None


def test_markdown_keeps_its_headings_and_front_matter_title(settings: Settings, store: LanceStore) -> None:
    ing, _ = make(settings, store)
    md = "---\ntitle: Expenses\n---\n# Travel\n\nTrains are second class.\n\n## Meals\n\nBreakfast is paid.\n"
    events, dead = outputs(ing, change("exp.md", 1, md, content_type=MARKDOWN))
    assert not dead and events["exp.md"].chunk_count == 2
    got = rows(store, "exp.md")
    assert [r["section"] for r in got] == ["Travel", "Travel \u203a Meals"] and got[0]["title"] == "Expenses"
    assert got[1]["text"] == "Meals\nBreakfast is paid."


def test_plain_text_changes_are_chunked_as_before(settings: Settings, store: LanceStore) -> None:
    ing, _ = make(settings, store)
    events, _ = outputs(ing, change("t", 1, "# Not a heading here\n\nplain text is indexed as it is."))
    r = rows(store, "t")
    assert events["t"].chunk_count == 1 and r[0]["page"] is None and r[0]["section"] is None
    assert r[0]["text"].startswith("# Not a heading")


# -- bad files, one by one ------------------------------------------------------------------------------------
def test_bad_files_are_dead_letters_by_name_and_the_rest_of_the_batch_is_indexed(
    settings: Settings, store: LanceStore,
) -> None:
    ing, _ = make(settings, store, max_doc_bytes=60_000)
    good = docgen.pdf(TRAVEL)
    events, dead = outputs(
        ing,
        docgen.file_change("good.pdf", good, PDF),
        docgen.file_change("corrupt.pdf", b"%PDF-1.7\n" + b"\x00garbage " * 200, PDF),
        docgen.file_change("half.pdf", good[: len(good) // 2], PDF),
        docgen.file_change("locked.pdf", docgen.encrypted(good), PDF),
        docgen.file_change("scan.pdf", docgen.pdf([[]]), PDF),
        docgen.file_change("big.pdf", good + b"%" + bytes(range(256)) * 240, PDF),
        docgen.file_change("sheet.xlsx", b"PK\x03\x04" + b"\x00" * 64, ""),
        docgen.file_change("old.doc", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "application/msword"),
        docgen.file_change("rooms.docx", docgen.word([("p", "Rooms cost 120 euros.")]), DOCX),
        docgen.file_change("guide.html", docgen.HTML.encode(), HTML),
        change("plain", 1, "a plain text document"),
    )
    assert set(events) == {"good.pdf", "rooms.docx", "guide.html", "plain"}
    assert all(e.status == "indexed" for e in events.values())
    assert all(d.stage == "extract" for d in dead.values())
    reasons = {k.split("/", 1)[1]: d.error for k, d in dead.items()}
    assert reasons["corrupt.pdf"].startswith("corrupt PDF")
    assert reasons["half.pdf"].startswith("corrupt PDF")
    assert reasons["locked.pdf"] == "encrypted PDF: its text needs a password"
    assert reasons["scan.pdf"].startswith("empty PDF: no text found (1 page without a text layer")
    assert reasons["big.pdf"] == "file too large: more than STREAMRAG_MAX_DOC_BYTES=60000 bytes"
    assert reasons["sheet.xlsx"].startswith("unknown type: the content is none of")
    assert reasons["old.doc"].startswith("unknown type: no extractor for 'application/msword'")
    assert DocumentChange.model_validate_json(dead["acme/corrupt.pdf"].original()).doc_id == "corrupt.pdf"


def test_extract_is_a_named_stage_before_chunk() -> None:
    assert INGEST_STAGES.index("parse") < INGEST_STAGES.index("extract") < INGEST_STAGES.index("redact")
    assert INGEST_STAGES.index("extract") < INGEST_STAGES.index("chunk")


def test_a_change_carries_text_or_a_file_and_old_producers_keep_working() -> None:
    old = DocumentChange.model_validate({"op": "upsert", "tenant": "a", "doc_id": "d", "version": 1, "text": "x"})
    assert old.content_b64 == "" and old.content_type == ""
    assert "content_b64" not in old.wire_json() and "content_type" not in old.wire_json()
    with pytest.raises(ValueError, match="text or content_b64, not both"):
        DocumentChange.model_validate({"op": "upsert", "tenant": "a", "doc_id": "d", "version": 1, "text": "x",
                                       "content_b64": "eA=="})


# -- replay and reuse -----------------------------------------------------------------------------------------
def test_an_unchanged_file_reuses_its_chunks_and_embeddings(settings: Settings, store: LanceStore) -> None:
    ing, _ = make(settings, store)
    data = docgen.pdf(TRAVEL)
    outputs(ing, docgen.file_change("p.pdf", data, PDF, version=1))
    events, _ = outputs(ing, docgen.file_change("p.pdf", data, PDF, version=1))  # the same record again
    assert events["p.pdf"].status == "unchanged"
    encoded = ing.stages.encoded_chunks
    events, _ = outputs(ing, docgen.file_change("p.pdf", data, PDF, version=2))  # a new version, same bytes
    assert events["p.pdf"].status == "indexed" and ing.stages.encoded_chunks == encoded
    assert ing.stages.reused_chunks == events["p.pdf"].chunk_count == 2


# -- chunking by structure ------------------------------------------------------------------------------------
def test_chunks_do_not_cross_headings_or_pages_and_tables_keep_whole_rows() -> None:
    blocks = [
        Block("Chapter 1", "heading", 1, ("Chapter 1",)),
        Block("one two three four five.", "text", 1, ("Chapter 1",)),
        Block("six seven eight.", "text", 2, ("Chapter 1",)),
        Block("Meals", "heading", 2, ("Chapter 1", "Meals")),
        *(Block(f"row {i} | cell {i} | value {i}", "row", 2, ("Chapter 1", "Meals"), "Name | Cell | Value")
          for i in range(6)),
    ]
    cs = chunk_blocks(blocks, size=20, overlap=4)
    assert [(c.page, c.section) for c in cs[:2]] == [(1, ("Chapter 1",)), (2, ("Chapter 1",))]
    assert cs[0].text == "Chapter 1\none two three four five." and cs[1].text == "six seven eight."
    tables = cs[2:]
    assert tables[0].text.startswith("Meals\nrow 0") and all(c.section == ("Chapter 1", "Meals") for c in tables)
    assert all(c.n_tokens <= 20 for c in cs)
    for c in tables[1:]:  # a table that goes on repeats its header; no row is cut
        assert c.text.startswith("Name | Cell | Value\nrow ")
    lines = [ln for c in tables for ln in c.text.split("\n") if ln.startswith("row")]
    assert lines == [f"row {i} | cell {i} | value {i}" for i in range(6)]


def test_a_block_larger_than_a_chunk_is_cut_and_its_heading_leads() -> None:
    words = " ".join(f"w{i}." for i in range(60))
    cs = chunk_blocks([Block("Intro", "heading", None, ("Intro",)), Block(words, "text", None, ("Intro",))],
                      size=20, overlap=4)
    assert len(cs) > 2 and cs[0].text.startswith("Intro\nw0.") and not cs[1].text.startswith("Intro")


def test_markdown_parsing() -> None:
    got = parse_markdown("# A\n\ntext\n\n```\n# not a heading\n```\n\nB\n-\n\n| x | y |\n|---|---|\n| 1 | 2 |\n")
    assert [(b.kind, b.text, b.section) for b in got.blocks] == [
        ("heading", "A", ("A",)), ("text", "text", ("A",)), ("text", "```\n# not a heading\n```", ("A",)),
        ("heading", "B", ("A", "B")), ("row", "x | y", ("A", "B")), ("row", "1 | 2", ("A", "B")),
    ]
    assert got.title == "A" and got.blocks[-1].header == "x | y"


def test_types_by_suffix_then_content() -> None:
    assert type_of("a.PDF", b"") == PDF and type_of("x", b"%PDF-1.4 ...") == PDF
    assert type_of("page", b"  <!DOCTYPE html><html>") == HTML and sniff(b"\x00\x01") is None
    assert sniff(b"PK\x03\x04....word/document.xml") == DOCX and sniff(b"PK\x03\x04 xl/") is None


# -- files, the CLI, the store --------------------------------------------------------------------------------
def test_files_are_sent_by_type_and_oversized_ones_are_read_only_that_far(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(docgen.pdf(TRAVEL))
    (tmp_path / "b.md").write_text("# B\n\ntext\n")
    (tmp_path / "c.txt").write_text("plain")
    (tmp_path / "d.html").write_text(docgen.HTML)
    (tmp_path / "e.png").write_bytes(b"\x89PNG")  # not walked for
    (tmp_path / ".hidden.md").write_text("# hidden")
    (tmp_path / "big.docx").write_bytes(b"PK" * 5_000)
    got = {json.loads(r.value or b"")["doc_id"]: json.loads(r.value or b"") for r in records_from_paths([tmp_path], "acme", 4_000)}
    assert set(got) == {"a.pdf", "b.md", "c.txt", "d.html", "big.docx"}
    assert got["a.pdf"]["content_type"] == PDF and "text" not in got["a.pdf"]
    assert got["b.md"]["content_type"] == MARKDOWN and got["b.md"]["text"].startswith("# B")
    assert "content_type" not in got["c.txt"] and got["d.html"]["content_type"] == HTML
    assert len(base64.b64decode(got["big.docx"]["content_b64"])) == 4_001


def test_ingest_dir_prints_refused_files_and_exits_1_when_any_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("STREAMRAG_MAX_DOC_BYTES", "50000")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "policy.pdf").write_bytes(docgen.pdf(TRAVEL, title="Travel Policy"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nnot really a pdf")
    (docs / "huge.html").write_text("<html><body><p>" + "lorem ipsum " * 10_000 + "</p></body></html>")
    r = CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"])
    assert r.exit_code == 1, r.output  # partly failed: the good file is indexed, the refused ones named
    out = " ".join(r.stdout.split())
    assert "indexed 1 documents" in out and "dead letters 2" in out
    assert f"refused {docs / 'broken.pdf'} [extract]: corrupt PDF" in out
    assert f"refused {docs / 'huge.html'} [extract]: file too large" in out
    r = CliRunner().invoke(app, ["ask", "breakfast costs refunded", "--tenant", "acme", "--json"])
    cite = json.loads(r.stdout)["citations"][0]
    assert cite["doc_id"] == "policy.pdf" and cite["page"] == 2 and cite["section"] == "Chapter 2 \u203a Meals"
    (docs / "policy.pdf").unlink()
    r = CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"])
    assert r.exit_code == 1 and "refused" in r.stdout


def test_a_chunks_table_made_before_page_and_section_gains_them(settings: Settings, tmp_path: Path) -> None:
    store = LanceStore(settings.lancedb_path(), fts_rebuild_every_s=0)
    old = pa.schema([f for f in chunk_schema(64) if f.name not in ("page", "section")])
    store.db.create_table("chunks", schema=old)
    ing, qp = make(settings, store)
    outputs(ing, change("plain", 1, "an old style document about hotels"))
    outputs(ing, docgen.file_change("policy.pdf", docgen.pdf(TRAVEL), PDF))
    assert {"page", "section"} <= set(store.table("chunks").schema.names)  # type: ignore[union-attr]
    a = ask(qp, "breakfast costs refunded")
    assert a.citations[0].page == 2


def test_a_table_without_the_columns_still_answers(settings: Settings, store: LanceStore) -> None:
    ing, _ = make(settings, store)
    outputs(ing, change("plain", 1, "an old style document about hotels"))
    store.db.open_table("chunks").drop_columns(["page", "section"])  # as a table made before them
    fresh = LanceStore(settings.lancedb_path(), fts_rebuild_every_s=0)
    qp = query_processor(settings.model_copy(update={"answer_min_score": 0.05}), fresh, HashEmbedder())
    a = ask(qp, "old style document hotels")
    assert a.status == "ok" and a.citations[0].page is None and a.citations[0].section == ""
    assert fresh.chunk_rows("acme")[0]["doc_id"] == "plain"


def test_redaction_reaches_an_extracted_documents_text_headings_and_title(settings: Settings, store: LanceStore) -> None:
    ing, _ = make(settings, store, pii_redaction=True)
    md = "# Contact jane.doe@example.com\n\nWrite to jane.doe@example.com about rooms.\n"
    outputs(ing, change("c.md", 1, md, content_type=MARKDOWN))
    (r,) = rows(store, "c.md")
    assert "jane.doe" not in r["text"] + r["section"] + r["title"] and "about rooms" in r["text"]
