"""``streamrag eval``: index a BEIR-format dataset through the real ingest path, run every test
query through the real retrieval path, and score each configuration."""

from __future__ import annotations

import csv
import gzip
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrag.connectors.embedding_cache import CachingEmbedder
from streamrag.core.errors import StreamragError
from streamrag.core.evidence import EvidenceCache, measure
from streamrag.core.ports import Embedder
from streamrag.core.records import RawRecord
from streamrag.core.retrieval import Ranked, auto_alpha, fuse
from streamrag.core.scope import scope_for
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_ingest_stages, make_query_processor, make_store
from streamrag.flows.local import ingest_records
from streamrag.schemas.models import Query
from streamrag.tools.fusion_study import VARIANTS, study_fuse
from streamrag.tools.ir_metrics import evaluate

TENANT = "eval"


@dataclass(frozen=True)
class EvalConfig:
    name: str
    fusion: str
    alpha: float = 0.5
    rerank: str = "none"
    doc_weight: float = 0.0
    titles: bool = True  # BM25 over chunk text and document title (False: chunk text only)
    bm25_noise: bool = False  # stress test: each query gets another query's BM25 list (a useless retriever)
    agree_full: float = 0.0  # auto fusion with another agreement constant (a study; 0: the default)
    evidence: bool = True  # auto fusion with the corpus's self-retrieval evidence (core/evidence.py)
    dense_noise: bool = False  # stress test: each query gets another query's dense list (a useless dense retriever)
    study: str = ""  # a fusion variant of tools/fusion_study.py (issue #20's study) instead of ``fusion``


DEFAULT_CONFIGS = [
    EvalConfig("dense-first-chunk", "dense-first"),
    EvalConfig("dense", "dense"),
    EvalConfig("bm25", "bm25"),
    EvalConfig("bm25-notitle", "bm25", titles=False),
    EvalConfig("hybrid-rrf", "rrf"),
    EvalConfig("hybrid-rrf-notitle", "rrf", titles=False),
    EvalConfig("weighted-0.3", "weighted", 0.3),
    EvalConfig("weighted-0.5", "weighted", 0.5),
    EvalConfig("weighted-0.7", "weighted", 0.7),
    EvalConfig("auto", "auto"),
    EvalConfig("auto-notitle", "auto", titles=False),
    EvalConfig("auto+doc", "auto", doc_weight=0.1),
    EvalConfig("auto+doc0.25", "auto", doc_weight=0.25),
    EvalConfig("weighted-0.5+doc", "weighted", 0.5, doc_weight=0.1),
    # a useless second retriever: what each fusion does when BM25 fails on a corpus
    EvalConfig("rrf@bm25-noise", "rrf", bm25_noise=True),
    EvalConfig("weighted-0.5@bm25-noise", "weighted", 0.5, bm25_noise=True),
    EvalConfig("weighted-0.7@bm25-noise", "weighted", 0.7, bm25_noise=True),
    EvalConfig("auto@bm25-noise", "auto", bm25_noise=True),
    # the corpus's evidence ignored (the dense-anchored rule alone), and a useless dense retriever
    EvalConfig("auto-noevidence", "auto", evidence=False),
    EvalConfig("auto-noevidence@bm25-noise", "auto", bm25_noise=True, evidence=False),
    EvalConfig("auto@dense-noise", "auto", dense_noise=True),
    EvalConfig("weighted-0.5@dense-noise", "weighted", 0.5, dense_noise=True),
]
AGREEMENT_STUDY = [EvalConfig(f"auto-{a}", "auto", agree_full=a) for a in (0.1, 0.2, 0.3, 0.4)] + [
    EvalConfig(f"auto-{a}@bm25-noise", "auto", agree_full=a, bm25_noise=True) for a in (0.1, 0.2, 0.3, 0.4)]
FUSION_STUDY = [EvalConfig(f"study-{v}{tag}", "auto", study=v, bm25_noise=tag == "@bm25-noise", dense_noise=tag == "@dense-noise")
                for v in VARIANTS for tag in ("", "@bm25-noise", "@dense-noise")]


def open_text(path: Path) -> Any:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def load_beir(d: Path, split: str = "test") -> tuple[Path, dict[str, str], dict[str, dict[str, int]]]:
    """(corpus file, query texts, judgments) of the queries that have both a text and a judgment."""
    corpus = next((p for p in (d / "corpus.jsonl", d / "corpus.jsonl.gz") if p.exists()), None)
    if corpus is None or not (d / "queries.jsonl").exists() or not (d / "qrels" / f"{split}.tsv").exists():
        raise StreamragError(f"{d} is not a BEIR dataset (needs corpus.jsonl[.gz], queries.jsonl, qrels/{split}.tsv)")
    queries = {}
    with (d / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                queries[str(o["_id"])] = o["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (d / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0] == "query-id":
                continue
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    # BEIR's convention (and pytrec_eval's, which scores the queries a run has): the queries scored are those
    # with both a text and at least one judgment; a judged query without text is not asked, so not scored
    scored = {q: j for q, j in qrels.items() if j and q in queries}
    return corpus, {q: queries[q] for q in scored}, scored


def corpus_records(corpus: Path) -> Iterator[RawRecord]:
    with open_text(corpus) as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            change = {"op": "upsert", "tenant": TENANT, "doc_id": str(o["_id"]), "version": 1,
                      "title": o.get("title") or "", "text": o.get("text") or o.get("title") or "(empty)"}
            yield RawRecord(value=json.dumps(change).encode("utf-8"), key=None)


def doc_run(ranked: list[Ranked], depth: int = 100) -> dict[str, float]:
    """Chunk ranking -> document ranking (a document scores its best chunk)."""
    out: dict[str, float] = {}
    for r in ranked:
        if r.hit.doc_id not in out:
            out[r.hit.doc_id] = r.score
            if len(out) >= depth:
                break
    return out


def run_eval(
    settings: Settings,
    dataset: Path,
    configs: list[EvalConfig],
    db_dir: Path,
    cache_path: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    corpus, queries, qrels = load_beir(dataset)
    s = settings.model_copy(update={"lancedb_uri": str(db_dir), "fts_rebuild_every_s": 1e9, "optimize_every_s": 1e9})
    embedder_for(s).embed(["warm up"])  # a model that cannot load: one line now, not a failed dataflow
    emb = CachingEmbedder(embedder_for(s), cache_path)
    store = make_store(s)
    t0 = time.perf_counter()
    report = index_corpus(s, store, emb, corpus_records(corpus))
    index_s = time.perf_counter() - t0
    store.maintain(force=True)
    log(f"indexed {report['documents']} documents, {report['chunks']} chunks in {index_s:.1f}s "
        f"(embedding cache: {emb.hits} hits, {emb.misses} encoded)")

    t2 = time.perf_counter()
    evidence = measure(store.sample_texts(TENANT, EvidenceCache.POOL), emb.embed, embed_queries=emb.embed_queries)
    log(f"self-retrieval evidence (MRR@10 on pseudo-queries): {evidence} in {time.perf_counter() - t2:.1f}s")
    qp = make_query_processor(s, embedder=emb, store=store)
    depth = 100
    t1 = time.perf_counter()
    qids = list(queries)
    vecs = emb.embed_queries([queries[q] for q in qids])
    lists: dict[str, Any] = {}
    for qid, v in zip(qids, vecs, strict=True):
        q = Query(query_id=qid, tenant=TENANT, text=queries[qid], top_k=10)
        # the production candidate count (STREAMRAG_MIN_CANDIDATES, overfetch): fusion sees what a worker sees
        res = qp.retriever.retrieve(q, [list(v)], [q.text], "rrf", 0.5)
        plain = [store.text_search(q.text, scope_for(q), qp.retriever.candidates(q.top_k), titles=False)]
        lists[qid] = (res.dense_lists, res.bm25_lists, plain)
    search_s = time.perf_counter() - t1
    results: dict[str, Any] = {}
    runs: dict[str, dict[str, dict[str, float]]] = {}
    for cfg in configs:
        run: dict[str, dict[str, float]] = {}
        for i, (qid, (dl, bl, plain)) in enumerate(lists.items()):
            if not cfg.titles:
                bl = plain
            if cfg.bm25_noise:
                bl = list(lists.values())[(i + 1) % len(lists)][1]
            if cfg.dense_noise:
                dl = list(lists.values())[(i + 1) % len(lists)][0]
            ev = evidence if cfg.evidence else None
            if cfg.fusion == "dense-first":
                # the published protocol: one vector per document (title + text, truncated by the model)
                ranked = fuse([[h for h in dl[0] if h.chunk_no == 0]], bl, "dense", cfg.alpha)
            elif cfg.study:
                ranked = study_fuse(VARIANTS[cfg.study], dl[0], bl[0], ev)
            elif cfg.agree_full:  # a study of the auto fusion's one constant
                ranked = fuse(dl, bl, "weighted", auto_alpha(dl[0], bl[0], cfg.agree_full, ev), cfg.doc_weight)
            else:
                ranked = fuse(dl, bl, cfg.fusion, cfg.alpha, cfg.doc_weight, ev)  # type: ignore[arg-type]
            if cfg.rerank != "none":
                ranked = qp.reranker_for(cfg.rerank).rerank(queries[qid], ranked, 10)
            run[qid] = doc_run(ranked, depth)
        runs[cfg.name] = run
        results[cfg.name] = evaluate(qrels, run)
    return {
        "dataset": str(dataset), "queries": len(qids), "documents": report["documents"], "chunks": report["chunks"],
        "model": s.index.embedding_model, "candidates": qp.retriever.candidates(10), "chunk_size": s.chunk.size, "chunk_overlap": s.chunk.overlap,
        "index_seconds": round(index_s, 1), "search_seconds": round(search_s, 1),
        "default": s.retrieval.fusion, "evidence": None if evidence is None else
        {"dense": evidence.dense, "bm25": evidence.bm25, "samples": evidence.samples},
        "results": results, "_runs": runs,
    }


def index_corpus(s: Settings, store: Any, emb: Embedder, records: Iterator[RawRecord]) -> dict[str, int]:
    """The ingest dataflow over a corpus, with the given (caching) embedder."""
    report = ingest_records(s, records, stages=make_ingest_stages(s, embedder=emb, store=store))
    counts = report.counts()
    documents = counts.get("indexed", 0) + counts.get("unchanged", 0)
    chunks = counts["chunks"] or sum(1 for _ in store.chunk_rows(TENANT))
    return {"documents": documents, "chunks": chunks, "dead": counts["dead_letters"]}


def write_trec(runs: dict[str, dict[str, dict[str, float]]], path: Path) -> None:
    with path.open("w") as f:
        for name, run in runs.items():
            for qid, docs in run.items():
                for rank, (doc, score) in enumerate(sorted(docs.items(), key=lambda kv: -kv[1]), 1):
                    f.write(f"{qid} Q0 {doc} {rank} {score:.6f} {name}\n")


def parse_configs(names: list[str] | None, default_rerank: str = "none") -> list[EvalConfig]:
    """``--config`` names (dense, bm25, hybrid-rrf, weighted-A, each optionally +RERANK) -> configs."""
    if not names:
        configs = list(DEFAULT_CONFIGS)
        if default_rerank != "none":
            configs.append(EvalConfig(f"hybrid-rrf+{default_rerank}", "rrf", rerank=default_rerank))
        return configs
    known = {c.name: c for c in DEFAULT_CONFIGS + AGREEMENT_STUDY + FUSION_STUDY}
    configs = []
    for name in names:
        base, _, rr = name.partition("+")
        if base in known:
            c = known[base]
        elif base.startswith("weighted-"):
            try:
                c = EvalConfig(base, "weighted", float(base.split("-", 1)[1]))
            except ValueError as exc:
                raise StreamragError(f"bad config {name!r}") from exc
        else:
            raise StreamragError(f"unknown config {name!r} (dense, bm25, hybrid-rrf, weighted-0.5, ...+mmr)")
        if rr and rr not in ("mmr", "cross-encoder", "embedder"):
            raise StreamragError(f"unknown reranker {rr!r} in {name!r} (mmr, cross-encoder, embedder)")
        configs.append(EvalConfig(name, c.fusion, c.alpha, rr) if rr else c)
    return configs
