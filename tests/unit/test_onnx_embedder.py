"""A process that answers questions runs the model on ONNX Runtime alone once its export exists: the
PyTorch model's vectors and token spans, and neither torch nor transformers imported in that process."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.connectors.onnx_embedder import OnnxEmbedder, OnnxModelFolder, onnx_path
from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder, resolve_model_path
from streamrag.core.ports import Embedder
from streamrag.flows.components import make_question_embedder
from tests.contracts import EmbedderContract

MODEL = "all-MiniLM-L6-v2"
FOLDER = Path(resolve_model_path(MODEL))
LONG = " ".join(f"word{i} of a long passage about hotel nights in Berlin" for i in range(80))  # past 256 tokens
TEXTS = ["How many vacation days do employees get?", "社員食堂は何時に開きますか？", "x", LONG]


@pytest.fixture(scope="module")
def torch_model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(MODEL, device="cpu")


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export ``streamrag models export-onnx`` writes (as the first question on PyTorch would)."""
    models = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STREAMRAG_MODEL_DIR", str(models))
        mp.setenv("STREAMRAG_EMBEDDING_MODEL", MODEL)
        r = CliRunner().invoke(app, ["models", "export-onnx"])
    assert r.exit_code == 0, r.output
    assert onnx_path(models / "onnx", MODEL).is_file() and str(models / "onnx") in r.output.replace("\n", "")
    return models / "onnx"


@pytest.fixture(scope="module")
def onnx_model(onnx_dir: Path) -> OnnxEmbedder:
    e = OnnxEmbedder.from_export(MODEL, FOLDER, onnx_dir)
    assert e is not None
    return e


class TestOnnxEmbedder(EmbedderContract):
    @pytest.fixture(autouse=True)
    def _model(self, onnx_model: OnnxEmbedder) -> None:
        self.model = onnx_model

    def make(self) -> Embedder:
        return self.model


def test_the_pytorch_models_vectors_and_token_spans(onnx_model: OnnxEmbedder, torch_model: SentenceTransformerEmbedder) -> None:
    """Questions and passages (padded together in one batch, the long one truncated at the model's 256 tokens)."""
    assert onnx_model.dim == torch_model.dim and onnx_model.max_tokens == torch_model.max_tokens
    assert np.allclose(onnx_model.embed_queries(TEXTS), torch_model.embed_queries(TEXTS), atol=1e-4)
    assert np.allclose(onnx_model.embed(TEXTS), torch_model.embed(TEXTS), atol=1e-4)
    assert onnx_model.token_spans(LONG) == torch_model.token_spans(LONG)  # chunking: no truncation


def test_a_model_with_prompts_gets_them(onnx_model: OnnxEmbedder, torch_model: SentenceTransformerEmbedder) -> None:
    e5like = OnnxEmbedder(MODEL, dataclasses.replace(onnx_model.folder, prompts={"query": "query: ", "passage": "passage: "}),
                          onnx_model.export)
    raw = torch_model.model.encode(["query: " + TEXTS[0], "passage: " + TEXTS[0]], normalize_embeddings=True)
    assert np.allclose(e5like.embed_queries(TEXTS[:1])[0], raw[0], atol=1e-4)
    assert np.allclose(e5like.embed(TEXTS[:1])[0], raw[1], atol=1e-4)


def _folder_with_pooling(tmp_path: Path, **pooling: bool) -> Path:
    d = tmp_path / "model"
    shutil.copytree(FOLDER, d, ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    conf = json.loads((d / "1_Pooling" / "config.json").read_text())
    (d / "1_Pooling" / "config.json").write_text(json.dumps({**conf, **pooling}))
    return d


def test_only_mean_pooling_models_with_an_export_qualify(tmp_path: Path, onnx_dir: Path) -> None:
    assert OnnxModelFolder.read(_folder_with_pooling(tmp_path / "mean")) is not None
    cls = _folder_with_pooling(tmp_path / "cls", pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    assert OnnxModelFolder.read(cls) is None
    assert OnnxEmbedder.from_export(MODEL, cls, onnx_dir) is None
    assert OnnxEmbedder.from_export(MODEL, FOLDER, tmp_path / "no-export") is None


def test_a_question_process_uses_onnx_only_where_the_export_exists(onnx_dir: Path, tmp_path: Path) -> None:
    assert isinstance(make_question_embedder(MODEL, "cpu", 64, 0, "onnx", str(onnx_dir)), OnnxEmbedder)
    assert isinstance(make_question_embedder(MODEL, "cpu", 64, 0, "onnx", str(tmp_path)), SentenceTransformerEmbedder)
    assert isinstance(make_question_embedder(MODEL, "cpu", 64, 0, "torch", str(onnx_dir)), SentenceTransformerEmbedder)
    assert isinstance(make_question_embedder(MODEL, "cuda", 64, 0, "onnx", str(onnx_dir)), SentenceTransformerEmbedder)


# What `streamrag worker query` loads before its first question (query_flow.main without Kafka): the whole
# CLI, the index views of a question process warmed up, the query processor; then the modules it imported.
_QUERY_PROCESS = """
import sys
import streamrag.cli
from streamrag.core.settings import load_settings
from streamrag.flows.components import make_query_processor
from streamrag.flows.index_views import IndexViews
from streamrag.flows.query import query_worker_settings
s = query_worker_settings(load_settings())
views = IndexViews(s, questions=True)
views.current().embedder.embed(["warm up"])
views.current().embedder.embed_queries(["warm up"])
make_query_processor(s, views=views)
print("imported:" + ",".join(m for m in ("torch", "transformers", "sentence_transformers", "openai", "scipy", "fastapi", "pypdf")
               if m in sys.modules))
"""


def _query_process_imports(tmp_path: Path, model_dir: Path) -> set[str]:
    env = {**os.environ, "STREAMRAG_LANCEDB_URI": str(tmp_path / "db"), "STREAMRAG_GENERATOR": "extractive",
           "STREAMRAG_MODEL_DIR": str(model_dir), "STREAMRAG_EMBEDDING_MODEL": MODEL, "STREAMRAG_DEVICE": "cpu",
           "STREAMRAG_QUERY_ENCODER": "onnx", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", _QUERY_PROCESS], env=env, capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr[-2000:]
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("imported:"), r.stdout[-2000:]
    return set(filter(None, line.removeprefix("imported:").split(",")))


def test_the_query_process_imports_no_torch_once_the_export_exists(tmp_path: Path) -> None:
    """The first process on a machine exports the model with PyTorch; the next ones load ONNX Runtime only
    (and no generator, PDF or statistics library they do not use)."""
    model_dir = tmp_path / "models"
    assert "torch" in _query_process_imports(tmp_path, model_dir)  # no export yet: PyTorch, which writes it
    assert onnx_path(model_dir / "onnx", MODEL).is_file()
    assert _query_process_imports(tmp_path, model_dir) == set()
