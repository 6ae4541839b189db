"""``streamrag eval``: retrieval quality on a BEIR folder; ``streamrag eval answers``: answer quality."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streamrag.cli.app import app, cli_errors, console, json_option, log_line, out, settings
from streamrag.core.errors import StreamragError

eval_app = typer.Typer(help="Retrieval quality on a BEIR folder (``eval --dataset DIR``); answer quality (``eval answers``).")
app.add_typer(eval_app, name="eval")


def _embedding_cache() -> Path:
    s = settings()
    return Path(s.lancedb_path()).parent / "embcache.sqlite" if s.lancedb_is_local else Path(".local/embcache.sqlite")


@eval_app.callback(invoke_without_command=True)
@cli_errors
def eval_cmd(
    ctx: typer.Context,
    dataset: Path = typer.Option(None, "--dataset", "-d", help="a BEIR-format folder"),
    config: list[str] = typer.Option(None, "--config", "-c", help="dense, bm25, hybrid-rrf, weighted-A, +rerank"),
    json_out: bool = json_option(),
    run_out: Path = typer.Option(None, "--run-out", help="write the ranked lists in TREC run format"),
    db: Path = typer.Option(None, "--db", help="LanceDB folder for the eval index (default: fresh temp folder)"),
) -> None:
    """Retrieval quality (NDCG@10, Recall@10/100, MRR@10, MAP) per configuration on a BEIR dataset, averaged
    over the queries with both a text and a judgment (BEIR's convention)."""
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None:
        raise StreamragError("--dataset DIR is needed (a BEIR folder), or a subcommand: eval answers --help")
    # Tooling stays out of the workers' import path (pytrec-eval is in the optional [tools] group).
    from streamrag.tools.evaluate import parse_configs, run_eval, write_trec

    s = settings()
    configs = parse_configs(config, s.retrieval.rerank)
    with tempfile.TemporaryDirectory(prefix="streamrag-eval-") as tmp:
        res = run_eval(s, dataset, configs, db or Path(tmp) / "lancedb", _embedding_cache(), log=log_line)
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


@eval_app.command("answers")
@cli_errors
def answers_cmd(
    dataset: Path = typer.Option(..., "--dataset", "-d", help="a BEIR folder with answers.jsonl, or a SQuAD JSON file"),
    n: int = typer.Option(0, "--queries", "-n", min=0, help="answerable questions asked (0: all), the first ones of the set"),
    generator: list[str] = typer.Option(None, "--generator", "-g",
                                        help="a generator chain per configuration (extractive, local, openai,local); default: the configured one"),
    unanswerable_from: Path = typer.Option(None, "--unanswerable-from", help="another set whose questions this corpus cannot answer"),
    unanswerable: int | None = typer.Option(None, "--unanswerable", min=0,
                                            help="questions taken from --unanswerable-from (default: a fifth of all asked)"),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, max=100, help="sources per answer"),
    max_docs: int = typer.Option(0, "--max-docs", min=0, help="index the asked questions' gold documents and others up to this many (0: the whole corpus)"),
    outdir: Path = typer.Option(Path("docs/bench"), "--out", help="where the JSON is written (never over an existing file)"),
    json_out: bool = json_option(),
    db: Path = typer.Option(None, "--db", help="LanceDB folder for the eval index (default: fresh temp folder)"),
) -> None:
    """Answer quality: correct (gold in the first sentence, or token recall of a long gold), the gold document
    cited, citation precision, refusals of unanswerable questions, latency, tokens and fallbacks (docs/answers.md)."""
    from streamrag.tools.answer_eval import load_set, run_answers, select, write_answers

    s = settings()
    if unanswerable and unanswerable_from is None:
        raise StreamragError("--unanswerable N needs --unanswerable-from DIR (a set whose questions this corpus cannot answer)")
    qset = load_set(dataset)
    other = load_set(unanswerable_from, need_answers=False) if unanswerable_from is not None else None
    if other is not None and unanswerable is None:  # a fifth of all questions asked
        unanswerable = max(1, sum(q.answerable for q in select(qset, n, None, 0)) // 4)
    questions = select(qset, n, other, unanswerable or 0)
    chains = generator or [",".join(s.generation.generator)]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=json_out or not console.is_terminal) as bar:

        def progress(label: str, total: int) -> Callable[[], None]:
            task = bar.add_task(label, total=total)
            return lambda: bar.advance(task)

        with tempfile.TemporaryDirectory(prefix="streamrag-eval-") as tmp:
            res = run_answers(s, qset, questions, chains, db or Path(tmp) / "lancedb", _embedding_cache(), top_k=top_k,
                              max_docs=max_docs, log=log_line, progress=progress)
    res["unanswerable_from"] = str(unanswerable_from) if unanswerable_from is not None else None
    path = write_answers(res, outdir)
    if json_out:
        out.print_json(json.dumps(res, ensure_ascii=False))
        return
    log_line(f"written {path}")
    t = Table(title=f"{res['dataset']}: {res['answerable']} answerable + {res['unanswerable']} unanswerable questions, "
                    f"{res['documents']} docs, {res['embedding_model']}")
    cols = ["correct", "contained", "recall", "cite hit", "cite prec", "wrong refusals", "unans. refused",
            "first p50 ms", "final p50 ms", "final p95 ms", "fallbacks"]
    t.add_column("generator")
    for col in cols:
        t.add_column(col, justify="right")
    for name, m in res["results"].items():
        a, u, lat = m["answerable"], m["unanswerable"], m["latency_ms"]
        t.add_row(name, *(f"{v:.3f}" for v in (a["correct"], a["contained"], a["recall"], a["citation_hit"],
                                                a["citation_precision"], a["wrongly_refused"], u["refused"])),
                  *(f"{lat[k]:.0f}" for k in ("first_token_p50", "final_p50", "final_p95")), str(m["fallbacks"]["answers"]))
    out.print(t)
