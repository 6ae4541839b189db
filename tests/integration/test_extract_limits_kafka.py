"""Extraction limits through Kafka (#34 finding 2): ``streamrag publish DIR`` sends a 40 KB DOCX of 31k
unstyled paragraphs, a ZIP bomb, a file past the extraction time limit and an ordinary file in one go; the
ingest worker indexes the bloated and the ordinary file, dead-letters the bomb and the slow file at
``extract`` naming their limits, and keeps going."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from streamrag.connectors.files import records_from_paths
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.tools.publish import publish_records
from tests import docgen
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration


def test_bomb_and_slow_file_are_dead_letters_and_the_files_beside_them_are_indexed(
    settings: Settings, start_worker: Any, tmp_path: Path,
) -> None:
    start_worker("ingest", overrides={"STREAMRAG_EXTRACT_TIMEOUT_S": "6"})
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bloated.docx").write_bytes(docgen.bloated_docx(1 << 20))
    (docs / "bomb.docx").write_bytes(docgen.zip_bomb_docx(200_000_000))
    (docs / "slow.pdf").write_bytes(docgen.slow_pdf(600_000))  # ~17 s of extraction: over 6 s
    (docs / "rooms.docx").write_bytes(docgen.word([("h1", "Rooms"), ("p", "The attic costs 75 euros.")]))
    skipped: list[tuple[RawRecord, str]] = []
    t0 = time.monotonic()
    n = publish_records(settings, records_from_paths([docs], "acme", settings.index.max_doc_bytes),
                        lambda r, e: skipped.append((r, e)), tenant="acme")
    assert n == 4 and not skipped
    events = read_topic(settings, settings.topics.index_events, lambda m: len(m) >= 2, timeout=180)
    dead = read_topic(settings, settings.topics.dead_letters, lambda m: len(m) >= 2, timeout=60)
    took = time.monotonic() - t0
    assert sorted((e["doc_id"], e["status"]) for e in events) == [("bloated.docx", "indexed"), ("rooms.docx", "indexed")]
    reasons = {base64.b64decode(d["original_key_b64"]).decode(): (d["stage"], d["error"]) for d in dead}
    assert reasons["acme/bomb.docx"][0] == "extract" and reasons["acme/bomb.docx"][1].startswith(
        "uncompressed size over 50000000 bytes")
    # past the time limit, or (on a quick machine) refused by pypdf's own per-stream bound first: dead at extract
    assert reasons["acme/slow.pdf"][0] == "extract"
    assert took < 120, took  # the worker's start (its model) included
