"""``streamrag index compare A B``: shadow comparison of two index versions before a promote.

The same queries (the last N of the queries topic, a file, or a BEIR folder's test queries) run
through retrieval on both versions, each with its own model and fusion defaults. Reported: how much
the top-k documents agree (overlap@k), retrieval latency p50/p95 per version (embedding included),
and NDCG@10 of both when a BEIR folder gives relevance labels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from streamrag.connectors.kafka_topic_reader import TopicReader
from streamrag.core.errors import IndexRefused
from streamrag.core.index_versions import IndexView
from streamrag.core.json_limits import Reason, read_model
from streamrag.core.percentiles import percentiles
from streamrag.core.retrieval import Retriever
from streamrag.core.settings import Settings
from streamrag.flows.index_views import IndexViews
from streamrag.schemas.models import Query
from streamrag.tools.evaluate import doc_run, load_beir
from streamrag.tools.ir_metrics import evaluate


def recent_queries(s: Settings, n: int) -> list[Query]:
    """The last ``n`` valid queries on the queries topic."""
    reader = TopicReader(s.kafka, s.topics.queries, f"{s.worker.query_group}-compare", "beginning")
    ends = reader.ends()
    for p in reader.partitions:  # only the tail of each partition
        reader.position[p] = max(reader.position[p], ends[p] - n)
    reader.reassign()
    found: list[tuple[int, Query]] = []
    try:
        while reader.behind(ends) > 0:
            recs = reader.read(1000, 1.0)
            for r in recs:
                q = read_model(r.value, Query, s.json_limits)
                if not isinstance(q, Reason):
                    found.append((r.timestamp_ms or 0, q))
            if not recs and reader.behind() == 0:
                break
    finally:
        reader.close()
    found.sort(key=lambda tq: tq[0])
    return [q for _, q in found[-n:]]


def file_queries(path: Path, tenant: str) -> list[Query]:
    """One query per line: a JSON query object, or plain question text (asked in ``tenant``)."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            out.append(Query.model_validate({"query_id": f"q{i}", "tenant": tenant, **json.loads(line)}))
        else:
            out.append(Query(query_id=f"q{i}", tenant=tenant, text=line))
    return out


def _run(view: IndexView, queries: list[Query], k: int) -> tuple[dict[str, dict[str, float]], list[float]]:
    retriever = Retriever.for_config(view.store, view.settings.retrieval)
    runs: dict[str, dict[str, float]] = {}
    lat: list[float] = []
    view.embedder.embed(["warm up"])
    for q in queries:
        t0 = time.perf_counter()
        vec = view.embedder.embed_queries([q.text])[0]
        fusion = q.options.fusion or view.settings.retrieval.fusion
        alpha = view.settings.retrieval.alpha if q.options.alpha is None else q.options.alpha
        res = retriever.retrieve(q, [list(vec)], [q.text], fusion, alpha, k=max(k * 3, 30))
        lat.append((time.perf_counter() - t0) * 1000)
        runs[q.query_id] = doc_run(res.ranked, 100)
    return runs, lat


def _top(run: dict[str, float], k: int) -> set[str]:
    return {d for d, _ in sorted(run.items(), key=lambda kv: -kv[1])[:k]}


def compare(
    s: Settings, a: str, b: str, *, queries: int = 200, queries_file: Path | None = None,
    dataset: Path | None = None, tenant: str = "default", k: int = 10,
) -> dict[str, Any]:
    if a == b:
        raise IndexRefused(f"compare needs two different index versions (got {a!r} twice)")
    views = IndexViews(s)
    va, vb = views.view(a), views.view(b)
    qrels = None
    if dataset is not None:
        _, texts, qrels = load_beir(dataset)
        qs = [Query(query_id=qid, tenant=tenant, text=t) for qid, t in texts.items()]
    elif queries_file is not None:
        qs = file_queries(queries_file, tenant)
    else:
        qs = recent_queries(s, queries)
    if not qs:
        return {"queries": 0, "note": "no queries to compare"}
    run_a, lat_a = _run(va, qs, k)
    run_b, lat_b = _run(vb, qs, k)
    overlaps = [len(_top(run_a[q.query_id], k) & _top(run_b[q.query_id], k)) / k for q in qs]
    out: dict[str, Any] = {"queries": len(qs), "k": k, f"overlap@{k}": round(float(np.mean(overlaps)), 4)}
    for name, run, lat in ((a, run_a, lat_a), (b, run_b, lat_b)):
        row: dict[str, Any] = percentiles(lat, (50, 95), suffix="_ms")
        if qrels is not None:
            row["NDCG@10"] = evaluate(qrels, run)["NDCG@10"]
        out[name] = row
    return out
