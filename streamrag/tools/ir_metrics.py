"""IR metrics through pytrec_eval (trec_eval's own implementation)."""

from __future__ import annotations

from collections.abc import Mapping

import pytrec_eval

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

MEASURES = {"ndcg_cut_10": "NDCG@10", "recall_10": "Recall@10", "recall_100": "Recall@100", "map": "MAP"}


def evaluate(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean NDCG@10, Recall@10, Recall@100, MRR@10 and MAP over the queries in qrels with at least one
    judgment (a query the run has no ranking for scores 0). Which queries are asked is the caller's: BEIR
    scores those with both a text and a judgment (``tools.evaluate.load_beir`` gives exactly those)."""
    qrels_d = {q: dict(d) for q, d in qrels.items() if d}
    if not qrels_d:
        return {label: 0.0 for label in (*MEASURES.values(), "MRR@10")}
    run_d = {q: dict(run.get(q, {})) or {"__none__": 0.0} for q in qrels_d}
    ev = pytrec_eval.RelevanceEvaluator(qrels_d, {"ndcg_cut.10", "recall.10,100", "map"})
    per_q = ev.evaluate(run_d)
    # MRR@10: reciprocal rank of the first relevant document within the top 10.
    top10 = {q: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:10]) for q, d in run_d.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels_d, {"recip_rank"}).evaluate(top10)
    n = len(qrels_d) or 1
    out = {label: sum(per_q[q][m] for q in qrels_d) / n for m, label in MEASURES.items()}
    out["MRR@10"] = sum(rr[q]["recip_rank"] for q in qrels_d) / n
    return {k: round(v, 4) for k, v in out.items()}
