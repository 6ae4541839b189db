"""The ``streamrag`` command line. Errors print one line and exit non-zero."""

from __future__ import annotations

import json
import logging
import os
import sys
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamrag.core.errors import StreamragError
from streamrag.core.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="streamrag: RAG as a stream-processing dataflow.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
worker_app = typer.Typer(no_args_is_help=True, help="Long-lived dataflow workers.")
app.add_typer(topics_app, name="topics")
app.add_typer(worker_app, name="worker")

console = Console(stderr=True)
out = Console()
F = TypeVar("F")


def cli_errors(fn: F) -> F:
    """Turn expected failures into one line on stderr and exit code 1."""

    @wraps(fn)  # type: ignore[arg-type]
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)  # type: ignore[operator]
        except StreamragError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from exc
        except KeyboardInterrupt as exc:
            raise typer.Exit(130) from exc
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("STREAMRAG_LOG_LEVEL", "").upper() == "DEBUG":
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            console.print(f"[red]error:[/red] {type(exc).__name__}: {first} (STREAMRAG_LOG_LEVEL=DEBUG for details)",
                          highlight=False)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    logging.basicConfig(level=os.environ.get("STREAMRAG_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    return load_settings()


def _check_tenant(tenant: str) -> None:
    from streamrag.core.security import _TENANT_RE

    if not _TENANT_RE.match(tenant):
        raise StreamragError(f"invalid tenant {tenant!r}: letters, digits, '_', '.', '-' (max 64)")


# --------------------------------------------------------------------------------- ingest ---
@app.command()
@cli_errors
def ingest(
    paths: list[Path] = typer.Argument(..., help="files or folders: .txt, .md, .jsonl (DocumentChange per line)"),
    tenant: str = typer.Option(..., "--tenant", "-t"),
    json_out: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Index files into the local LanceDB through the ingest dataflow (no Kafka)."""
    from streamrag.connectors.files import records_from_paths
    from streamrag.flows.local import ingest_records

    _check_tenant(tenant)
    s = _settings()
    records = list(records_from_paths(paths, tenant))
    if not records:
        raise StreamragError("no .txt, .md or .jsonl files found in the given paths")
    with Progress(
        TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=json_out or not console.is_terminal,
    ) as bar:
        task = bar.add_task("ingest", total=len(records))
        report = ingest_records(s, records, on_progress=lambda n: bar.advance(task, n))
    counts = report.counts()
    if json_out:
        out.print_json(json.dumps({"counts": counts, "dead_letters": [d.model_dump(mode="json") for d in report.dead]}))
    else:
        out.print(
            f"indexed {counts.get('indexed', 0)} documents ({counts['chunks']} chunks), "
            f"unchanged {counts.get('unchanged', 0)}, stale {counts.get('stale', 0)}, "
            f"dead letters {counts['dead_letters']} -> {s.lancedb_uri}",
            highlight=False,
        )
        for d in report.dead[:10]:
            out.print(f"  dead letter [{d.stage}] {d.source.topic or ''}: {d.error}", highlight=False, markup=False)
    if report.dead and not any(e.status in ("indexed", "unchanged") for e in report.events):
        raise typer.Exit(1)


# -------------------------------------------------------------------------------- publish ---
@app.command()
@cli_errors
def publish(
    paths: list[Path] = typer.Argument(None, help="files or folders to upsert"),
    tenant: str = typer.Option(..., "--tenant", "-t"),
    delete: list[str] = typer.Option(None, "--delete", help="doc id to delete (repeatable)"),
) -> None:
    """Publish document changes to the documents topic."""
    from streamrag.connectors.kafka import JsonProducer, check_reachable
    from streamrag.schemas.models import DeadLetter
    from streamrag.connectors.files import delete_record, records_from_paths

    _check_tenant(tenant)
    s = _settings()
    records = list(records_from_paths(paths or [], tenant)) + [delete_record(tenant, d) for d in (delete or [])]
    if not records:
        raise StreamragError("nothing to publish: give paths or --delete DOC_ID")
    from streamrag.core.ingest.processor import parse_change

    good, bad = [], 0
    for r in records:
        parsed = parse_change(r)
        if isinstance(parsed, DeadLetter):
            bad += 1
            console.print(f"skipped {r.topic or ''}:{r.offset or ''}: {parsed.error}", highlight=False, markup=False)
        else:
            good.append(parsed)
    if good:
        check_reachable(s)
        p = JsonProducer(s)
        for ch in good:
            p.send(s.topic_documents, ch.key, ch.model_dump_json(exclude_none=True))
        p.flush()
    out.print(f"published {len(good)} document changes to {s.topic_documents}", highlight=False)
    if bad:
        raise StreamragError(f"{bad} invalid document change(s) were not published")


@topics_app.command("create")
@cli_errors
def topics_create(partitions: int = typer.Option(None, "--partitions", "-p")) -> None:
    """Create the project's topics (compacted documents and cache topics)."""
    from streamrag.connectors.kafka import ensure_topics

    for name, state in ensure_topics(_settings(), partitions).items():
        out.print(f"{name}: {state}", highlight=False)


# --------------------------------------------------------------------------------- worker ---
def _run_worker(
    flow_main: str, workers: int, process_id: int | None, addresses: str | None, recovery_dir: str | None
) -> None:
    from datetime import timedelta

    from bytewax.recovery import RecoveryConfig, init_db_dir
    from bytewax.run import cli_main

    s = _settings()
    module, fn = flow_main.split(":")
    flow = getattr(__import__(module, fromlist=[fn]), fn)()
    rdir = recovery_dir or s.recovery_dir
    recovery = None
    if rdir:
        d = Path(rdir)
        d.mkdir(parents=True, exist_ok=True)
        if not any(d.glob("part-*.sqlite3")):
            init_db_dir(d, 1)
        recovery = RecoveryConfig(str(d))
    console.print(f"{flow.flow_id} worker running (Ctrl-C to stop)", highlight=False)
    cli_main(
        flow,
        workers_per_process=workers,
        process_id=process_id,
        addresses=addresses.split(";") if addresses else None,
        epoch_interval=timedelta(seconds=s.snapshot_interval_s),
        recovery_config=recovery,
    )


_W = typer.Option(1, "--workers", "-w", help="worker threads per process (use processes to scale embedding)")
_I = typer.Option(None, "--process-id", "-i")
_A = typer.Option(None, "--addresses", "-a", help="host:port;host:port of every process")
_R = typer.Option(None, "--recovery-dir", "-r", help="resume from here after a restart")


@worker_app.command("ingest")
@cli_errors
def worker_ingest(workers: int = _W, process_id: int = _I, addresses: str = _A, recovery_dir: str = _R) -> None:
    """Run the ingest dataflow against Kafka until stopped."""
    _run_worker("streamrag.flows.ingest:main", workers, process_id, addresses, recovery_dir)


@worker_app.command("query")
@cli_errors
def worker_query(workers: int = _W, process_id: int = _I, addresses: str = _A, recovery_dir: str = _R) -> None:
    """Run the query dataflow against Kafka until stopped."""
    _run_worker("streamrag.flows.query:main", workers, process_id, addresses, recovery_dir)


# ------------------------------------------------------------------------------------ ask ---
def _query(
    text: str, tenant: str, user: str | None, roles: str | None, top_k: int, fusion: str | None,
    alpha: float | None, rerank: str | None, filters: list[str] | None,
) -> Any:
    import uuid

    from pydantic import ValidationError

    from streamrag.schemas.models import Query
    from streamrag.core.ingest.processor import describe_validation

    meta: dict[str, Any] = {}
    for f in filters or []:
        if "=" not in f:
            raise StreamragError(f"bad --filter {f!r}: use key=value or key=v1|v2")
        k, v = f.split("=", 1)
        meta[k] = v.split("|") if "|" in v else v
    try:
        return Query(
            query_id=uuid.uuid4().hex, tenant=tenant, text=text, top_k=top_k,
            principal={"user": user, "roles": [r for r in (roles or "").split(",") if r]},  # type: ignore[arg-type]
            filters={"metadata": meta},  # type: ignore[arg-type]
            options={"fusion": fusion, "alpha": alpha, "rerank": rerank},  # type: ignore[arg-type]
        )
    except ValidationError as exc:
        raise StreamragError(f"invalid query: {describe_validation(exc)}") from exc


def _print_answer(a: Any, json_out: bool) -> None:
    if json_out:
        out.print_json(a.model_dump_json())
        return
    out.print(f"[bold]{a.status}[/bold]" + (f" (cached: {a.cache_lookup})" if a.cached else ""))
    if a.error:
        out.print(f"error: {a.error}", markup=False, highlight=False)
    if a.answer:
        out.print(a.answer, markup=False, highlight=False)
    for i, c in enumerate(a.citations, 1):
        out.print(f"  [{i}] {c.title or c.doc_id} (v{c.version}, score {c.score:.4f}) {c.doc_id}", markup=False, highlight=False)
    if a.timings_ms:
        out.print("  timings ms: " + ", ".join(f"{k} {v:.1f}" for k, v in a.timings_ms.items()), highlight=False)


@app.command()
@cli_errors
def ask(
    question: str = typer.Argument(...),
    tenant: str = typer.Option(..., "--tenant", "-t"),
    user: str = typer.Option(None, "--user", "-u"),
    roles: str = typer.Option(None, "--roles", help="comma-separated"),
    top_k: int = typer.Option(5, "--top-k", "-k"),
    fusion: str = typer.Option(None, "--fusion", help="rrf | weighted | dense | bm25"),
    alpha: float = typer.Option(None, "--alpha"),
    rerank: str = typer.Option(None, "--rerank", help="none | cross-encoder | mmr"),
    filters: list[str] = typer.Option(None, "--filter", help="metadata key=value (or key=a|b); repeatable"),
    via_kafka: bool = typer.Option(False, "--via-kafka", help="publish the query and wait for its answer"),
    timeout: float = typer.Option(30.0, "--timeout"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Answer a question from the index (locally, or through the query worker with --via-kafka)."""
    s = _settings()
    q = _query(question, tenant, user, roles, top_k, fusion, alpha, rerank, filters)
    if via_kafka:
        from streamrag.connectors.kafka import request_answer

        a = request_answer(s, q, timeout)
    else:
        from streamrag.flows.components import make_query_processor

        a = make_query_processor(s).answer_many([q])[0]
    _print_answer(a, json_out)
    if a.status == "error":
        raise typer.Exit(1)


# ----------------------------------------------------------------------------------- eval ---
def _log(msg: str) -> None:
    console.print(msg, highlight=False, markup=False)


@app.command("eval")
@cli_errors
def eval_cmd(
    dataset: Path = typer.Option(..., "--dataset", "-d", help="a BEIR-format folder"),
    config: list[str] = typer.Option(None, "--config", "-c", help="dense, bm25, hybrid-rrf, weighted-A, +rerank"),
    json_out: bool = typer.Option(False, "--json"),
    run_out: Path = typer.Option(None, "--run-out", help="write the ranked lists in TREC run format"),
    db: Path = typer.Option(None, "--db", help="LanceDB folder for the eval index (default: fresh temp folder)"),
) -> None:
    """Retrieval quality (NDCG@10, Recall@10/100, MRR@10, MAP) per configuration on a BEIR dataset."""
    import tempfile

    from streamrag.tools.evaluate import DEFAULT_CONFIGS, EvalConfig, run_eval, write_trec

    s = _settings()
    configs = list(DEFAULT_CONFIGS)
    if config:
        known = {c.name: c for c in DEFAULT_CONFIGS}
        configs = []
        for name in config:
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
            configs.append(EvalConfig(name, c.fusion, c.alpha, rr or "none") if rr else c)
    elif s.rerank != "none":
        configs.append(EvalConfig(f"hybrid-rrf+{s.rerank}", "rrf", rerank=s.rerank))
    cache = Path(s.lancedb_path()).parent / "embcache.sqlite" if s.lancedb_is_local else Path(".local/embcache.sqlite")
    with tempfile.TemporaryDirectory(prefix="streamrag-eval-") as tmp:
        res = run_eval(s, dataset, configs, db or Path(tmp) / "lancedb", cache, log=_log)
    runs = res.pop("_runs")
    if run_out:
        write_trec(runs, run_out)
    if json_out:
        out.print_json(json.dumps(res))
        return
    t = Table(title=f"{res['dataset']}: {res['queries']} queries, {res['documents']} docs, {res['chunks']} chunks, {res['model']}")
    cols = ["NDCG@10", "Recall@10", "Recall@100", "MRR@10", "MAP"]
    t.add_column("config")
    for col in cols:
        t.add_column(col, justify="right")
    for name, m in res["results"].items():
        t.add_row(name, *(f"{m[c]:.4f}" for c in cols))
    out.print(t)


# ----------------------------------------------------------------------------------- demo ---
DEMO_QUESTIONS = [
    "What happens when an older version of a document arrives after a newer one?",
    "Who can see a document that has no ACL?",
    "How do I scale embedding throughput?",
    "What is the capital of Mongolia?",
]


@app.command()
@cli_errors
def demo(tenant: str = typer.Option("demo", "--tenant", "-t")) -> None:
    """Ingest the bundled docs with the embedded path and answer a few questions."""
    from importlib.resources import files

    from streamrag.flows.components import make_query_processor
    from streamrag.connectors.files import records_from_paths
    from streamrag.flows.local import ingest_records

    s = _settings()
    corpus = Path(str(files("streamrag.cli") / "corpus"))
    report = ingest_records(s, records_from_paths([corpus], tenant))
    c = report.counts()
    out.print(f"[bold]ingested[/bold] {corpus}: {c.get('indexed', 0)} indexed, {c.get('unchanged', 0)} unchanged, "
              f"{c['dead_letters']} dead letters -> {s.lancedb_uri}", highlight=False)
    qp = make_query_processor(s)
    for question in DEMO_QUESTIONS:
        out.rule(question)
        _print_answer(qp.answer_many([_query(question, tenant, None, None, 3, None, None, None, None)])[0], False)


# ---------------------------------------------------------------------------------- bench ---
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks through real Kafka (figures, not tests).")
app.add_typer(bench_app, name="bench")
_DS = typer.Option(None, "--dataset", "-d", help="BEIR folder for realistic text (default: ../shared/data/beir-scifact if present)")
_OUTDIR = typer.Option(Path("docs/bench"), "--out", help="where JSON (and plots) are written")


def _dataset(d: Path | None) -> Path | None:
    if d is not None:
        return d
    guess = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir-scifact"
    return guess if guess.exists() else None


@bench_app.command("ingest")
@cli_errors
def bench_ingest_cmd(
    docs: int = typer.Option(300, "--docs"),
    processes: str = typer.Option("1,2,4", "--processes", help="comma-separated worker process counts"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Chunks/s from the documents topic to searchable, beside the raw encoder on the same chunks."""
    import tempfile

    from streamrag.connectors.kafka import check_reachable
    from streamrag.tools.bench import bench_ingest, plot_scaling

    s = _settings()
    check_reachable(s)
    procs = [int(x) for x in processes.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="streamrag-bench-") as tmp:
        res = bench_ingest(s, _dataset(dataset), docs, procs, Path(tmp), _log)
    outdir.mkdir(parents=True, exist_ok=True)
    name = f"ingest-{res['machine']['device']}"
    (outdir / f"{name}.json").write_text(json.dumps(res, indent=2))
    if len(procs) > 1:
        plot_scaling(res["pipeline"], res["raw_chunks_per_s"], outdir / f"{name}-scaling.png")
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("query")
@cli_errors
def bench_query_cmd(
    n: int = typer.Option(300, "--queries", "-n"), rate: float = typer.Option(10.0, "--rate"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Publish -> answer round trip p50/p95/p99 and per-stage timings at a steady rate."""
    from streamrag.tools.bench import bench_query

    _bench_rig("query", lambda s, ds, work: bench_query(s, ds, n, rate, work, _log), dataset, outdir, json_out,
               f"query round trip (cache off), {rate}/s")


@bench_app.command("cache")
@cli_errors
def bench_cache_cmd(
    n: int = typer.Option(40, "--base-queries", "-n"), rate: float = typer.Option(20.0, "--rate"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Cache-hit round trip p50/p95/p99, paraphrase hit rate, semantic lookup latency vs entries."""
    from streamrag.tools.bench import bench_cache

    _bench_rig("cache", lambda s, ds, work: bench_cache(s, ds, n, rate, work, _log), dataset, outdir, json_out,
               f"cache-hit round trip, {rate}/s")


def _bench_rig(kind: str, fn: Any, dataset: Path | None, outdir: Path, json_out: bool, title: str) -> None:
    from streamrag.connectors.kafka import check_reachable
    from streamrag.tools.bench import plot_latencies

    s = _settings()
    check_reachable(s)
    ds = _dataset(dataset)
    if ds is None:
        raise StreamragError(f"bench {kind} needs --dataset (a BEIR folder) for its index and questions")
    work = Path(".local/bench")
    work.mkdir(parents=True, exist_ok=True)
    res = fn(s, ds, work)
    lat = res.pop("_latencies")
    outdir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{res['machine']['device']}"
    (outdir / f"{name}.json").write_text(json.dumps(res, indent=2))
    if lat:
        plot_latencies(lat, f"{title}, {res['chunks']} chunks", outdir / f"{name}.png")
    if json_out:
        out.print_json(json.dumps(res))


# --------------------------------------------------------------------------------- status ---
@app.command()
@cli_errors
def status(json_out: bool = typer.Option(False, "--json")) -> None:
    """Documents and chunks per tenant, table versions, topic offsets and worker lag."""
    from streamrag.connectors.kafka import topic_offsets
    from streamrag.flows.components import make_store

    s = _settings()
    report: dict[str, Any] = {"index": make_store(s).stats()}
    try:
        topics = topic_offsets(s, [s.topic_documents], group=s.ingest_group)
        topics.update(topic_offsets(s, [s.topic_queries], group=s.query_group))
        others = [s.topic_answers, s.topic_cache, s.topic_index_events, s.topic_dead_letters]
        topics.update(topic_offsets(s, others))
        report["kafka"] = {"bootstrap": s.kafka_bootstrap, "topics": topics}
    except StreamragError as exc:
        report["kafka"] = {"bootstrap": s.kafka_bootstrap, "error": str(exc)}
    report["cache_workers"] = _cache_stats(s)
    if json_out:
        out.print_json(json.dumps(report))
        return
    t = Table(title=f"index {report['index']['uri']}  versions {report['index']['versions']}")
    for c in ("tenant", "documents", "chunks"):
        t.add_column(c)
    for tenant, v in sorted(report["index"]["tenants"].items()):
        t.add_row(tenant, str(v["documents"]), str(v["chunks"]))
    out.print(t)
    k = report["kafka"]
    if "error" in k:
        out.print(f"kafka: {k['error']}", highlight=False)
    else:
        kt = Table(title=f"kafka {k['bootstrap']}")
        for c in ("topic", "messages", "worker lag"):
            kt.add_column(c)
        for name, info in k["topics"].items():
            kt.add_row(name, str(info.get("messages", "-")), str(info.get("lag", "")))
        out.print(kt)
    for worker, st in report["cache_workers"].items():
        if isinstance(st, dict):
            out.print(f"cache {worker}: entries {st.get('entries')}, hit rate {st.get('hit_rate')} "
                      f"(exact {st.get('exact_hits')}, semantic {st.get('semantic_hits')}, "
                      f"refused: unsafe {st.get('unsafe_skips')}, guard {st.get('guarded')}), "
                      f"lookup p95 {st.get('lookup_ms_p95')} ms", highlight=False)


def _cache_stats(s: Settings) -> dict[str, Any]:
    """Per query worker: cache hit rates and lookup latency (published to Redis every 10 s)."""
    from streamrag.connectors.redis_cache import RedisCache

    r = RedisCache(s.redis_url, timeout_s=0.5)
    keys = r._call(lambda c: list(c.scan_iter("streamrag:stats:cache:*", count=100)), None)
    if keys is None:
        return {"error": f"redis at {s.redis_url} unavailable"}
    out: dict[str, Any] = {}
    for k in keys:
        raw = r._call(lambda c, k=k: c.get(k), None)
        if raw:
            out[k.decode().removeprefix("streamrag:stats:cache:")] = json.loads(raw)
    return out


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
