"""A cold embedded ``streamrag ask`` reports model loading as ``load``, not as the query's embedding time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import streamrag.flows.index_views as index_views
from streamrag.cli import app
from tests.fakes import HashEmbedder

LOAD_S = 0.8


class SlowLoadingEmbedder(HashEmbedder):
    """Its first call takes ``LOAD_S`` (the model loading), later calls are fast."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded = False

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.loaded:
            time.sleep(LOAD_S)
            self.loaded = True
        return super().embed(texts)


def test_cold_ask_reports_loading_apart_from_embedding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("STREAMRAG_GENERATOR", "extractive")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hotel.md").write_text("# Travel\n\nA hotel night in Berlin costs at most 120 euros.\n")
    monkeypatch.setattr(index_views, "embedder_for", lambda s: HashEmbedder())
    assert CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"]).exit_code == 0
    monkeypatch.setattr(index_views, "question_embedder_for", lambda s: SlowLoadingEmbedder())  # a fresh process's model
    r = CliRunner().invoke(app, ["ask", "hotel night Berlin", "--tenant", "acme", "--json"])
    assert r.exit_code == 0, r.output
    timings = json.loads(r.output)["timings_ms"]
    assert timings["load"] >= LOAD_S * 1000
    assert timings["embed"] < LOAD_S * 1000 / 2  # generous: the query's own embedding is a hash here


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return super().embed(texts)


def test_an_embedded_ask_reads_the_evidence_that_ingest_measured_and_measures_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamrag.connectors.lancedb_evidence import LanceEvidenceStore
    from streamrag.core.index_versions import DEFAULT_INDEX

    monkeypatch.setenv("STREAMRAG_LANCEDB_URI", str(tmp_path / "db"))
    monkeypatch.setenv("STREAMRAG_GENERATOR", "extractive")
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = ["volcano lava magma crater", "violin orchestra melody", "glacier ice polar", "railway station track"]
    for i in range(32):
        t = topics[i % 4]
        (docs / f"d{i}.md").write_text(f"The {t} note {i} begins here. It tells of {t} in place {i}. "
                                       f"Then {t} ends for item {i}.\n")
    monkeypatch.setattr(index_views, "embedder_for", lambda s: HashEmbedder())
    assert CliRunner().invoke(app, ["ingest", str(docs), "--tenant", "acme"]).exit_code == 0
    stored = LanceEvidenceStore(str(tmp_path / "db")).load(DEFAULT_INDEX, "acme")
    assert stored is not None and stored[1].samples >= 20  # measured once, at ingest
    counting = CountingEmbedder()
    monkeypatch.setattr(index_views, "question_embedder_for", lambda s: counting)
    r = CliRunner().invoke(app, ["ask", "volcano lava", "--tenant", "acme", "--json"])
    assert r.exit_code == 0, r.output
    time.sleep(0.5)
    assert counting.texts <= 10  # the warm-up and the question: no evidence measured (hundreds of texts) here
