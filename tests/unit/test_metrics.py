"""Each metric against a hand-worked example."""

import json
import math
from pathlib import Path

import pytest

from streamrag.tools.evaluate import load_beir
from streamrag.tools.ir_metrics import evaluate

QRELS = {"q1": {"d1": 1, "d3": 2}, "q2": {"d9": 1}}
RUN = {
    # q1 ranking: d2, d1, d3, d4 ; relevant d1 (gain 1) at rank 2, d3 (gain 2) at rank 3
    "q1": {"d2": 0.9, "d1": 0.8, "d3": 0.7, "d4": 0.6},
    # q2: relevant doc never retrieved
    "q2": {"d5": 0.5},
}


def test_metrics_match_hand_computation() -> None:
    m = evaluate(QRELS, RUN)
    # trec_eval's ndcg uses gain = rel and discount log2(rank + 1)
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    ndcg_q1 = dcg / idcg
    assert m["NDCG@10"] == pytest.approx((ndcg_q1 + 0.0) / 2, abs=1e-4)
    assert m["Recall@10"] == pytest.approx((1.0 + 0.0) / 2, abs=1e-4)
    assert m["Recall@100"] == pytest.approx(0.5, abs=1e-4)
    assert m["MRR@10"] == pytest.approx((1 / 2 + 0) / 2, abs=1e-4)
    # AP(q1) = (1/2 + 2/3) / 2 ; AP(q2) = 0
    assert m["MAP"] == pytest.approx(((1 / 2 + 2 / 3) / 2) / 2, abs=1e-4)


def test_mrr_is_cut_at_ten() -> None:
    run = {"q": {f"x{i}": 100.0 - i for i in range(10)} | {"rel": 1.0}}
    assert evaluate({"q": {"rel": 1}}, run)["MRR@10"] == 0.0


def test_queries_scored_are_those_with_text_and_a_judgment(tmp_path: Path) -> None:
    """BEIR / pytrec_eval: a judged query without text is not asked, so it is not scored (it used to count as
    0 and took a public Arabic set from 0.780 to 0.0555 NDCG@10)."""
    d = tmp_path / "beir"
    (d / "qrels").mkdir(parents=True)
    (d / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n" for i in range(3)))
    (d / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "one"}) + "\n" + json.dumps({"_id": "q2", "text": "two"})
                                     + "\n" + json.dumps({"_id": "q5", "text": "unjudged"}) + "\n")
    judged_without_text = "".join(f"q{i}\td0\t1\n" for i in range(10, 60))
    (d / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td0\t0\n" + judged_without_text)
    _, queries, qrels = load_beir(d)
    assert set(queries) == set(qrels) == {"q1", "q2"}
    run = {"q1": {"d1": 1.0, "d0": 0.5}, "q2": {"d2": 1.0}}
    assert evaluate(qrels, run)["NDCG@10"] == 1.0
    assert evaluate(qrels | {"q3": {}}, run)["NDCG@10"] == 1.0  # no judgment: not scored
    assert evaluate({}, run)["NDCG@10"] == 0.0
