"""``streamrag eval answers``: are the answers right? Index a question set's corpus through the real ingest
path, ask each question through the query path the workers use (``make_query_processor``: the configured
retrieval, packing, generator chain and grounding; in-process, no Kafka), and score the answers with
``core/answer_metrics.py`` per generator chain.

Input: a BEIR folder with ``answers.jsonl`` (``{"_id": query id, "answers": [...]}``; gold documents from
``qrels/test.tsv``), or a SQuAD-format JSON file (each paragraph a document; ``is_impossible`` questions are
unanswerable). Unanswerable questions may also come from another set (``unanswerable_from``: a BEIR folder,
answers not needed, or a SQuAD file): its questions are asked against this corpus, which does not hold them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamrag.connectors.embedding_cache import CachingEmbedder
from streamrag.core.answer_metrics import citation_scores, cited_docs, refused, score_answer
from streamrag.core.errors import StreamragError
from streamrag.core.percentiles import percentiles
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_query_processor, make_store
from streamrag.flows.generators import make_generator, warm_up
from streamrag.schemas.models import Answer, Query
from streamrag.tools.bench_common import machine
from streamrag.tools.evaluate import TENANT, corpus_records, index_corpus, load_beir

MAX_SQUAD_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    golds: list[str]  # gold answers (empty: unanswerable)
    gold_docs: frozenset[str]

    @property
    def answerable(self) -> bool:
        return bool(self.golds)


@dataclass(frozen=True)
class QuestionSet:
    name: str
    questions: list[Question]
    records: Callable[[], Iterator[RawRecord]]  # the corpus as ingest records (read when indexed)


def _record(doc_id: str, title: str, text: str) -> RawRecord:
    change = {"op": "upsert", "tenant": TENANT, "doc_id": doc_id, "version": 1, "title": title, "text": text or title or "(empty)"}
    return RawRecord(value=json.dumps(change).encode("utf-8"), key=None)


def _beir(d: Path, need_answers: bool) -> QuestionSet:
    corpus, queries, qrels = load_beir(d)
    answers: dict[str, list[str]] = {}
    if (d / "answers.jsonl").exists():
        with (d / "answers.jsonl").open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    o = json.loads(line) if line.strip() else None
                    if o is not None:
                        answers[str(o["_id"])] = [str(a) for a in o["answers"] if str(a).strip()]
                except (ValueError, KeyError, TypeError) as exc:
                    raise StreamragError(f"{d / 'answers.jsonl'} line {n}: not {{\"_id\", \"answers\": [...]}} ({exc})") from exc
    elif need_answers:
        raise StreamragError(f"{d} has no answers.jsonl ({{\"_id\": query id, \"answers\": [...]}} a line)")
    qs = [Question(q, queries[q], answers.get(q, []), frozenset(doc for doc, s in qrels[q].items() if s > 0))
          for q in queries if not need_answers or answers.get(q)]
    return QuestionSet(d.name, qs, lambda: corpus_records(corpus))


def _squad(f: Path) -> QuestionSet:
    if f.stat().st_size > MAX_SQUAD_BYTES:
        raise StreamragError(f"{f} is over {MAX_SQUAD_BYTES // 2**20} MiB")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))["data"]
        docs: list[tuple[str, str, str]] = []
        qs: list[Question] = []
        for ai, article in enumerate(data):
            for pi, para in enumerate(article["paragraphs"]):
                doc = f"a{ai}p{pi}"
                docs.append((doc, str(article.get("title", "")), str(para["context"])))
                for qa in para["qas"]:
                    golds = [] if qa.get("is_impossible") else [str(a["text"]) for a in qa["answers"] if str(a["text"]).strip()]
                    qs.append(Question(str(qa["id"]), str(qa["question"]), golds, frozenset([doc]) if golds else frozenset()))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StreamragError(f"{f} is not a SQuAD-format JSON file ({type(exc).__name__}: {exc})") from exc
    return QuestionSet(f.stem, qs, lambda: (_record(*d) for d in docs))


def load_set(path: Path, need_answers: bool = True) -> QuestionSet:
    """A BEIR folder (with answers.jsonl when ``need_answers``) or a SQuAD JSON file."""
    if path.is_dir():
        return _beir(path, need_answers)
    if path.is_file():
        return _squad(path)
    raise StreamragError(f"no such dataset: {path}")


def mix(answerable: list[Question], unanswerable: list[Question]) -> list[Question]:
    """The unanswerable questions spread evenly among the answerable ones."""
    out: list[Question] = []
    step = (len(answerable) + 1) / (len(unanswerable) + 1)
    ui = 0
    for i, q in enumerate(answerable):
        while ui < len(unanswerable) and (ui + 1) * step <= i + 1:
            out.append(unanswerable[ui])
            ui += 1
        out.append(q)
    return out + unanswerable[ui:]


def select(qset: QuestionSet, n: int, other: QuestionSet | None, n_other: int) -> list[Question]:
    """The first ``n`` answerable questions (0: all) with the set's own unanswerable ones met on the way, and
    ``n_other`` questions of ``other`` (answerable there, not here)."""
    answerable: list[Question] = []
    unanswerable: list[Question] = []
    for q in qset.questions:
        if n and len(answerable) >= n:
            break
        (answerable if q.answerable else unanswerable).append(q)
    if other is not None and n_other:
        unanswerable += [Question(f"other:{q.qid}", q.text, [], frozenset()) for q in other.questions[:n_other]]
    return mix(answerable, unanswerable)


def corpus_subset(qset: QuestionSet, questions: list[Question], max_docs: int) -> Iterator[RawRecord]:
    """The corpus, or (``max_docs`` > 0) the asked questions' gold documents and the first others up to ``max_docs``."""
    wanted = {d for q in questions for d in q.gold_docs}
    room = max(max_docs - len(wanted), 0)
    for r in qset.records():
        if not max_docs:
            yield r
            continue
        doc = json.loads(r.value or b"{}").get("doc_id")
        if doc in wanted or room > 0:
            room -= doc not in wanted
            yield r


def ask(qp: Any, q: Question, top_k: int) -> tuple[Answer, float, float]:
    """The answer, its final latency and its first-token latency in ms (the whole answer when no model streamed it)."""
    t0 = time.perf_counter()
    a: Answer = qp.answer_many([Query(query_id=q.qid[:128], tenant=TENANT, text=q.text[:4000], top_k=top_k)])[0]
    final = (time.perf_counter() - t0) * 1000
    first, gen = a.timings_ms.get("first_token"), a.timings_ms.get("generate")
    return a, final, final if first is None or gen is None else final - gen + first


def score_row(q: Question, a: Answer, final_ms: float, first_ms: float) -> dict[str, Any]:
    row: dict[str, Any] = {"id": q.qid, "answerable": q.answerable, "status": a.status, "generator": a.generator,
                           "refused": refused(a.status, a.answer), "final_ms": round(final_ms, 1),
                           "first_token_ms": round(first_ms, 1), "model_first_token": "first_token" in a.timings_ms,
                           "prompt_tokens": a.usage.prompt_tokens, "completion_tokens": a.usage.completion_tokens,
                           "fallback": [f[:160] for f in a.fallback], "answer": a.answer[:300]}
    if q.answerable:
        s = score_answer(a.answer, q.golds) if a.status == "ok" else None
        sources = [c.doc_id for c in a.citations]
        hit, precision = citation_scores(cited_docs(a.answer, sources), q.gold_docs)
        row.update({"gold": q.golds[:3], "correct": bool(s and s.correct), "contained": bool(s and s.contained),
                    "recall": s.recall if s else 0.0, "long_gold": bool(s and s.long_gold),
                    "citation_hit": hit, "citation_precision": precision, "source_hit": bool(q.gold_docs & set(sources))})
    return row


def _share(rows: list[dict[str, Any]], key: str) -> float:
    return round(sum(bool(r[key]) for r in rows) / len(rows), 4) if rows else 0.0


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's figures from its rows (see docs/answers.md for each definition)."""
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    cited = [r["citation_precision"] for r in ans if r["citation_precision"] is not None]
    fallbacks = Counter(f.split(":", 1)[0] + ": " + f.split(":", 1)[1].strip()[:60] if ":" in f else f
                        for r in rows for f in r["fallback"])
    final = [r["final_ms"] for r in rows]
    first = [r["first_token_ms"] for r in rows]
    return {
        "answerable": {
            "questions": len(ans), "correct": _share(ans, "correct"), "contained": _share(ans, "contained"),
            "recall": round(sum(r["recall"] for r in ans) / len(ans), 4) if ans else 0.0,
            "recall_0.5": round(sum(r["recall"] >= 0.5 for r in ans) / len(ans), 4) if ans else 0.0,
            "long_golds": sum(r["long_gold"] for r in ans),
            "citation_hit": _share(ans, "citation_hit"), "source_hit": _share(ans, "source_hit"),
            "citation_precision": round(sum(cited) / len(cited), 4) if cited else 0.0,
            "cited_answers": len(cited), "wrongly_refused": _share(ans, "refused"),
        },
        "unanswerable": {"questions": len(una), "refused": _share(una, "refused")},
        "statuses": dict(Counter(r["status"] for r in rows)),
        "generators": dict(Counter(r["generator"] or "-" for r in rows)),
        "latency_ms": {**(percentiles(first, (50, 95), 1, prefix="first_token_p") or {"first_token_p50": 0.0, "first_token_p95": 0.0}),
                       **(percentiles(final, (50, 95), 1, prefix="final_p") or {"final_p50": 0.0, "final_p95": 0.0}),
                       "model_first_token": sum(r["model_first_token"] for r in rows)},
        "tokens": {"prompt": sum(r["prompt_tokens"] for r in rows), "completion": sum(r["completion_tokens"] for r in rows),
                   "prompt_mean": round(sum(r["prompt_tokens"] for r in rows) / len(rows), 1) if rows else 0.0,
                   "completion_mean": round(sum(r["completion_tokens"] for r in rows) / len(rows), 1) if rows else 0.0},
        "fallbacks": {"answers": sum(bool(r["fallback"]) for r in rows), "reasons": dict(fallbacks.most_common(10))},
    }


def run_answers(settings: Settings, qset: QuestionSet, questions: list[Question], chains: list[str], db_dir: Path,
                cache_path: Path, *, top_k: int = 5, max_docs: int = 0, log: Callable[[str], None] = print,
                progress: Callable[[str, int], Callable[[], None]] | None = None) -> dict[str, Any]:
    """Index ``qset``'s corpus, then ask ``questions`` once per generator chain; figures per chain.
    ``progress(label, total)`` gives the function to call after each question."""
    if not questions:
        raise StreamragError(f"{qset.name}: no questions to ask")
    s = settings.model_copy(update={"lancedb_uri": str(db_dir), "fts_rebuild_every_s": 1e9, "optimize_every_s": 1e9,
                                    "stream_deltas": False})
    embedder_for(s).embed(["warm up"])  # a model that cannot load: one line now, not a failed dataflow
    emb = CachingEmbedder(embedder_for(s), cache_path)
    store = make_store(s)
    t0 = time.perf_counter()
    report = index_corpus(s, store, emb, corpus_subset(qset, questions, max_docs))
    index_s = time.perf_counter() - t0
    store.maintain(force=True)
    log(f"indexed {report['documents']} documents, {report['chunks']} chunks in {index_s:.1f}s")
    results: dict[str, Any] = {}
    rows_by: dict[str, list[dict[str, Any]]] = {}
    for chain_text in chains:
        sc = s.model_copy(update={"generator": chain_text})
        chain = make_generator(sc)
        warm_up(chain)  # a local model loads before the first question is timed
        qp = make_query_processor(sc, embedder=emb, store=store, generator=chain)
        if qp.retriever.evidence_cache is not None and s.retrieval.fusion == "auto":
            # as a worker that has answered its first questions: auto fusion with the corpus's evidence
            t_ev = time.perf_counter()
            ev = qp.retriever.evidence_cache.wait(TENANT)
            log(f"fusion evidence {ev} in {time.perf_counter() - t_ev:.1f}s")
        name = "+".join(sc.generation.generator)
        step = progress(name, len(questions)) if progress else (lambda: None)
        rows = []
        for q in questions:
            rows.append(score_row(q, *ask(qp, q, top_k)))
            step()
        rows_by[name] = rows
        results[name] = summarise(rows)
        log(f"{name}: {json.dumps(results[name]['answerable'])}")
    return {
        "kind": "answers", "dataset": qset.name, "questions": len(questions),
        "answerable": sum(q.answerable for q in questions), "unanswerable": sum(not q.answerable for q in questions),
        "documents": report["documents"], "chunks": report["chunks"], "subset": bool(max_docs),
        "index_seconds": round(index_s, 1), "embedding_model": s.index.embedding_model, "top_k": top_k,
        "fusion": s.retrieval.fusion, "prompt_packing": s.generation.prompt_packing, "machine": machine(s),
        "results": results, "rows": rows_by,
    }


def write_answers(res: dict[str, Any], outdir: Path) -> Path:
    """``answers-<dataset>-<chains>[-N].json`` under ``outdir``; an existing file is never overwritten."""
    outdir.mkdir(parents=True, exist_ok=True)
    base = f"answers-{res['dataset']}-{'_'.join(res['results'])}".replace("/", "_")
    path, i = outdir / f"{base}.json", 2
    while path.exists():
        path, i = outdir / f"{base}-{i}.json", i + 1
    path.write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
