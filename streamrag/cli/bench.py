"""``streamrag bench ingest | query | cache``: benchmarks through real Kafka (figures, not tests).

The tools are imported inside the commands: matplotlib and pytrec-eval are the optional [tools]
dependencies, and the workers (which share this CLI) must not import them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from streamrag.cli.app import bench_app, cli_errors, json_option, log_line, out, settings, tenant_option
from streamrag.connectors.kafka_admin import check_reachable
from streamrag.core.errors import StreamragError
from streamrag.core.settings import Settings

_DS = typer.Option(None, "--dataset", "-d", help="BEIR folder for realistic text (default: ../shared/data/beir-scifact if present)")
_OUTDIR = typer.Option(Path("docs/bench"), "--out", help="where JSON (and plots) are written")


def _dataset(d: Path | None) -> Path | None:
    if d is not None:
        return d
    guess = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir-scifact"
    return guess if guess.exists() else None


def _work() -> Path:
    work = Path(".local/bench")
    work.mkdir(parents=True, exist_ok=True)
    return work


@bench_app.command("ingest")
@cli_errors
def bench_ingest_cmd(
    docs: int = typer.Option(300, "--docs", help="documents indexed"),
    processes: str = typer.Option("1,2,4", "--processes", help="comma-separated worker process counts"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """Chunks/s from the documents topic to searchable, beside the raw encoder on the same chunks."""
    from streamrag.tools.bench_ingest import bench_ingest  # optional tooling: see the module docstring
    from streamrag.tools.bench_report import write_report

    s = settings()
    check_reachable(s.kafka)
    procs = [int(x) for x in processes.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="streamrag-bench-") as tmp:
        res = write_report("ingest", bench_ingest(s, _dataset(dataset), docs, procs, Path(tmp), log_line), outdir)
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("extract")
@cli_errors
def bench_extract_cmd(
    docs: int = typer.Option(40, "--docs", help="PDF files made"),
    pages: int = typer.Option(10, "--pages", help="pages per file"),
    per_page: int = typer.Option(2, "--per-page", help="abstracts per page"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """PDF extraction pages/s alone, and its share of ingest time (embedded: no Kafka)."""
    from streamrag.tools.bench_extract import bench_extract  # optional tooling: see the module docstring
    from streamrag.tools.bench_report import write_report

    s = settings()
    with tempfile.TemporaryDirectory(prefix="streamrag-bench-") as tmp:
        res = write_report("extract", bench_extract(s, _dataset(dataset), docs, pages, per_page, Path(tmp), log_line),
                           outdir)
    if json_out:
        out.print_json(json.dumps(res))


def _rig_run(kind: str, title: str, run: Callable[[Settings, Path, Path], dict[str, Any]], dataset: Path | None,
             outdir: Path, json_out: bool) -> None:
    """The query-worker rig benchmarks: settings, broker check, dataset, run, report."""
    from streamrag.tools.bench_report import write_report  # optional tooling: see the module docstring

    s = settings()
    check_reachable(s.kafka)
    ds = _dataset(dataset)
    if ds is None:
        raise StreamragError(f"bench {kind} needs --dataset (a BEIR folder) for its index and questions")
    res = write_report(kind, run(s, ds, _work()), outdir, title)
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("query")
@cli_errors
def bench_query_cmd(
    n: int = typer.Option(300, "--queries", "-n", help="queries sent"),
    rate: float = typer.Option(10.0, "--rate", help="queries per second"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """Publish -> answer round trip p50/p95/p99 and per-stage timings at a steady rate."""
    from streamrag.tools.bench_query import bench_query  # optional tooling: see the module docstring

    _rig_run("query", f"query round trip (cache off), {rate}/s",
             lambda s, ds, work: bench_query(s, ds, n, rate, work, log_line), dataset, outdir, json_out)


@bench_app.command("cache")
@cli_errors
def bench_cache_cmd(
    n: int = typer.Option(40, "--base-queries", help="distinct questions that fill the cache (then asked again, and rephrased)"),
    rate: float = typer.Option(20.0, "--rate", help="queries per second"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """Cache-hit round trip p50/p95/p99, paraphrase hit rate, semantic lookup latency vs entries."""
    from streamrag.tools.bench_query import bench_cache  # optional tooling: see the module docstring

    _rig_run("cache", f"cache-hit round trip, {rate}/s",
             lambda s, ds, work: bench_cache(s, ds, n, rate, work, log_line), dataset, outdir, json_out)


@bench_app.command("generate")
@cli_errors
def bench_generate_cmd(
    n: int = typer.Option(20, "--questions", help="questions asked"),
    distractors: int = typer.Option(300, "--distractors", help="extra abstracts indexed beside the relevant ones"),
    expand: int = typer.Option(2, "--expand", help="query variants for the expansion comparison"),
    parts: str = typer.Option("quality,injection,topical,expansion,kafka", "--parts",
                              help="comma-separated: quality, injection, topical, expansion, kafka (through the workers)"),
    expand_budget_ms: int = typer.Option(None, "--expand-budget-ms", help="default: STREAMRAG_EXPAND_BUDGET_MS"),
    guard: str = typer.Option("both", "--guard", help="injection part: the guard on, off, or both (the difference)"),
    injection_sample: int = typer.Option(None, "--injection-sample",
                                         help="injection part: this many attacks of the labelled set (default: all)"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """Generated answers: grounding, citations, injection resistance, expansion, tokens/s, TTFT via Kafka."""
    # optional tooling: see the module docstring
    from streamrag.tools.bench_generate import GUARD_MODES, bench_generate

    if guard not in GUARD_MODES:
        raise StreamragError(f"--guard must be one of {', '.join(GUARD_MODES)}, not {guard!r}")
    _rig_run("generate", "generated answers (local model)",
             lambda s, ds, work: bench_generate(s, ds, n, distractors, expand, work, log_line,
                                                [p.strip() for p in parts.split(",") if p.strip()], expand_budget_ms,
                                                guard, injection_sample),
             dataset, outdir, json_out)


@bench_app.command("gateway")
@cli_errors
def bench_gateway_cmd(
    n: int = typer.Option(100, "--queries", "-n", help="round trips each way (alternating)"),
    clients: int = typer.Option(8, "--clients", help="parallel clients for the requests/s part"),
    seconds: float = typer.Option(8.0, "--seconds", help="how long each requests/s part runs"),
    outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """The HTTP gateway: round trip p50/p95 vs the same queries straight to Kafka, and requests/s of one process."""
    from streamrag.tools.bench_gateway import bench_gateway  # optional tooling: see the module docstring
    from streamrag.tools.bench_report import write_report

    s = settings()
    check_reachable(s.kafka)
    res = write_report("gateway", bench_gateway(s, n, clients, seconds, _work(), log_line), outdir)
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("overhead")
@cli_errors
def bench_overhead_cmd(
    docs: int = typer.Option(300, "--docs", help="documents indexed"), n: int = typer.Option(200, "--queries", "-n", help="queries per round"),
    rounds: int = typer.Option(4, "--rounds", help="rounds, each with the features on and off (order alternating)"), dataset: Path = _DS, outdir: Path = _OUTDIR,
    json_out: bool = json_option(),
) -> None:
    """Metrics + audit + auth + PII redaction on vs off: query p95 and ingest chunks/s, same run."""
    from streamrag.tools.bench_overhead import bench_overhead  # optional tooling: see the module docstring
    from streamrag.tools.bench_report import write_report

    ds = _dataset(dataset)
    if ds is None:
        raise StreamragError("bench overhead needs --dataset (a BEIR folder) for its documents and questions")
    res = write_report("overhead", bench_overhead(settings(), ds, docs, n, rounds, _work(), log_line), outdir,
                       "metrics, audit, auth, PII on vs off")
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("replay")
@cli_errors
def bench_replay_cmd(
    docs: int = typer.Option(300, "--docs", help="documents indexed"),
    rate: float = typer.Option(10.0, "--rate", help="queries per second while the promote happens"),
    seconds: float = typer.Option(20.0, "--seconds", help="length of the query load (the promote is half-way)"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """Replay chunks/s beside the raw encoder, the speed-up of reused embeddings, the answer gap of a promote."""
    from streamrag.tools.bench_replay import bench_replay  # optional tooling: see the module docstring
    from streamrag.tools.bench_report import write_report

    s = settings()
    check_reachable(s.kafka)
    with tempfile.TemporaryDirectory(prefix="streamrag-bench-") as tmp:
        res = write_report("replay", bench_replay(s, _dataset(dataset), docs, Path(tmp), log_line, rate, seconds), outdir)
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("scale")
@cli_errors
def bench_scale_cmd(
    sizes: str = typer.Option("100000,1000000", "--sizes", help="comma-separated chunk counts"),
    tenants: int = typer.Option(100, "--tenants", help="tenants the chunks are spread over"),
    queries: int = typer.Option(200, "--queries", "-n", help="queries timed at each size"),
    index: str = typer.Option("store", "--index", help="store (its own policy), ivf_pq, ivf_hnsw_sq, ivf_flat or none"),
    nprobes: int = typer.Option(32, "--nprobes", help="IVF partitions searched per query"),
    refine: int = typer.Option(10, "--refine-factor", help="candidates re-scored exactly, x k"),
    ingest_docs: int = typer.Option(0, "--ingest-docs", help="also ingest N real documents (from --dataset) at each size"),
    dataset: Path = typer.Option(None, "--dataset", "-d", help="BEIR folder for --ingest-docs"),
    outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """Store latency and recall@10 at 100k and 1M chunks (synthetic data), tenant + ACL prefilters."""
    from streamrag.tools.bench_report import write_report
    from streamrag.tools.bench_scale import bench_scale

    try:
        counts = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError as exc:
        raise StreamragError(f"--sizes wants comma-separated integers, got {sizes!r}") from exc
    from streamrag.tools.bench_common import machine

    s = settings()
    ingest = None
    if ingest_docs:
        from itertools import islice

        from streamrag.tools.evaluate import corpus_records, load_beir

        folder = _dataset(dataset)
        if folder is None:
            raise StreamragError("--ingest-docs needs --dataset (a BEIR folder)")
        ingest = (s, list(islice(corpus_records(load_beir(folder)[0]), ingest_docs)))
    res = bench_scale(counts, _work(), log_line, tenants=tenants, queries=queries, index=index, nprobes=nprobes,
                      refine=refine, ingest=ingest)
    res = write_report("scale", {"machine": {**machine(s), "device": "cpu", "model": "none (synthetic vectors)"}, **res},
                       outdir)
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("load")
@cli_errors
def bench_load_cmd(
    rates: str = typer.Option("0.05,0.1,0.2", "--rates", help="offered queries per second, comma-separated"),
    duration: float = typer.Option(120.0, "--duration", min=1.0, help="seconds of arrivals per rate"),
    generator: str = typer.Option("local", "--generator", help="local (in-process) or openai (STREAMRAG_OPENAI_*)"),
    tenant: str = tenant_option("acme"),
    drain: float = typer.Option(300.0, "--drain", help="seconds to wait for the last answers of each rate"),
    burst: str = typer.Option("", "--burst", help="instead of rates: N distinct questions at once, e.g. 4,8"),
    concurrency: str = typer.Option("", "--concurrency", help="instead of rates: C in flight, e.g. 1,4,8: the "
                                    "worker's answers/s over a direct client's to the same server (--generator openai)"),
    rounds: int = typer.Option(2, "--rounds", min=1, help="with --concurrency: answers per level = rounds x C"),
    json_out: bool = json_option(),
) -> None:
    """Open-loop Poisson arrivals through one query worker it starts: time to sources, TTFT and final
    p50/p95/p99, answers/s
    (or ``--burst``: questions sent together, each one's first delta and final answer; or ``--concurrency``:
    closed loop, the worker against a direct client of the same server)."""
    from streamrag.tools.bench_concurrency import run_concurrency
    from streamrag.tools.bench_load import plot_load, run_load

    if generator not in ("local", "openai"):
        raise StreamragError("--generator is local or openai")
    try:
        offered = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError as exc:
        raise StreamragError(f"--rates: {exc}") from exc
    try:
        bursts = [int(b) for b in burst.split(",") if b.strip()]
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError as exc:
        raise StreamragError("--burst and --concurrency take comma-separated integers") from exc
    s = settings()
    closed_loop = None
    if levels:
        if min(levels) < 1:
            raise StreamragError("--concurrency takes positive integers")
        if generator != "openai":
            raise StreamragError("--concurrency needs --generator openai (a server)")
        s = s.model_copy(update={"generation_concurrency": max(levels)})

        def closed_loop(p: Any, answers: Any) -> dict[str, Any]:
            return run_concurrency(s, p, answers, levels, rounds, tenant, drain, log_line)

    rep = run_load(s, offered, duration, generator, tenant, drain_s=drain, bursts=bursts, closed_loop=closed_loop)
    work = _work()
    if bursts or levels:
        (work / ("concurrency.json" if levels else "burst.json")).write_text(json.dumps(rep, indent=1))
        out.print_json(json.dumps(rep))
        return
    (work / "load.json").write_text(json.dumps(rep, indent=1))
    plot_load(rep, work / "load.png")
    if json_out:
        out.print_json(json.dumps(rep))
        return
    for r in rep["runs"]:
        log_line(f"offered {r['offered_per_s']}/s: {r['answered']}/{r['sent']} answered, {r['answers_per_s']}/s; "
                 f"sources p50/p95 {r['sources_ms']['p50']}/{r['sources_ms']['p95']} ms, "
                 f"TTFT p50/p95 {r['ttft_s']['p50']}/{r['ttft_s']['p95']} s, final p50/p95/p99 "
                 f"{r['final_s']['p50']}/{r['final_s']['p95']}/{r['final_s']['p99']} s; errors {r['errors']}, "
                 f"expired {r['expired']}, fallbacks {r['fallbacks']}")
    log_line(f"JSON and plot: {work / 'load.json'}, {work / 'load.png'}")


@bench_app.command("fuzz")
@cli_errors
def bench_fuzz_cmd(
    records: int = typer.Option(2000, "--records", min=1, max=1_000_000, help="records published"),
    seed: int = typer.Option(0, "--seed", help="random seed of the records"),
    timeout: float = typer.Option(300.0, "--timeout", help="seconds to wait for every record's outcome"),
    json_out: bool = json_option(),
) -> None:
    """Hostile records to the running ingest and query workers; each one's outcome counted (exit 1 if any is
    unaccounted for)."""
    from streamrag.tools.fuzz import run_fuzz

    rep = run_fuzz(settings(), records, seed=seed, timeout_s=timeout).as_dict()
    if json_out:
        out.print_json(json.dumps(rep))
    else:
        log_line(f"{rep['records']} records ({rep['documents']} documents, {rep['queries']} queries) in "
                 f"{rep['seconds']} s: dead letters {rep['dead_letters']}, index events {rep['index_events']}, "
                 f"answers {rep['answers']}, unaccounted {rep['unaccounted']}")
    if rep["unaccounted"]:
        raise StreamragError(f"{rep['unaccounted']} records have no outcome: {rep['unaccounted_examples'][:3]}")


@bench_app.command("freshness")
@cli_errors
def bench_freshness_cmd(
    changes: int = typer.Option(20, "--changes", min=1, help="changes of the one document"),
    docs: int = typer.Option(300, "--docs", help="abstracts indexed beside it (from --dataset)"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """A changed document, published, until a query through the query worker finds it: p50/p95 by stage."""
    from streamrag.tools.bench_freshness import bench_freshness  # optional tooling: see the module docstring
    from streamrag.tools.bench_report import write_report

    s = settings()
    check_reachable(s.kafka)
    with tempfile.TemporaryDirectory(prefix="streamrag-bench-") as tmp:
        res = write_report("freshness", bench_freshness(s, _dataset(dataset), docs, changes, Path(tmp), log_line), outdir,
                           "freshness: publish -> found")
    if json_out:
        out.print_json(json.dumps(res))


@bench_app.command("start")
@cli_errors
def bench_start_cmd(
    runs: int = typer.Option(3, "--runs", min=1, help="fresh query workers started, one after another"),
    dataset: Path = _DS, outdir: Path = _OUTDIR, json_out: bool = json_option(),
) -> None:
    """A query worker's launch until its first answer, with its imports, Kafka, index, model and wiring times."""
    from streamrag.tools.bench_start import bench_start  # optional tooling: see the module docstring

    _rig_run("start", "start to first answer", lambda s, ds, work: bench_start(s, ds, runs, work, log_line), dataset,
             outdir, json_out)
