"""``streamrag tune``: a tenant's corpus in, a loadable model folder out (no labels used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder
from streamrag.core.errors import StreamragError
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.settings import Settings
from streamrag.tools.tune import tune
from tests.conftest import change, rec
from tests.fakes import HashEmbedder


def test_tune_writes_a_model_that_loads_and_differs_from_the_base(settings: Settings, tmp_path: Path) -> None:
    store = LanceStore(settings.lancedb_path())
    stages = IngestStages.from_settings(settings, store, HashEmbedder())
    stages.process_batch([rec(change(f"d{i}", 1, f"Document {i} explains how topic {i} relates to budget item {i}.",
                                     title=f"Budget item {i} and topic {i}")) for i in range(70)])
    with pytest.raises(StreamragError, match="too little text"):
        tune(settings, "other-tenant", log=lambda m: None)
    out = tmp_path / "tuned"
    report: dict[str, Any] = tune(settings, "acme", out=out, log=lambda m: None)
    assert report["pairs"] == 70 and report["steps"] == 3 and (out / "config.json").exists()
    assert "streamrag replay --index tuned-acme --set embedding_model=" in report["next"]
    base = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu").embed(["Budget item 3"])
    tuned = SentenceTransformerEmbedder(str(out), device="cpu").embed(["Budget item 3"])
    assert tuned.shape == base.shape and not np.allclose(tuned, base)
