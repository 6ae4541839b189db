"""``streamrag eval``: retrieval quality on a BEIR folder."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.table import Table

from streamrag.cli.app import app, cli_errors, json_option, log_line, out, settings


@app.command("eval")
@cli_errors
def eval_cmd(
    dataset: Path = typer.Option(..., "--dataset", "-d", help="a BEIR-format folder"),
    config: list[str] = typer.Option(None, "--config", "-c", help="dense, bm25, hybrid-rrf, weighted-A, +rerank"),
    json_out: bool = json_option(),
    run_out: Path = typer.Option(None, "--run-out", help="write the ranked lists in TREC run format"),
    db: Path = typer.Option(None, "--db", help="LanceDB folder for the eval index (default: fresh temp folder)"),
) -> None:
    """Retrieval quality (NDCG@10, Recall@10/100, MRR@10, MAP) per configuration on a BEIR dataset."""
    # Tooling stays out of the workers' import path (pytrec-eval is in the optional [tools] group).
    from streamrag.tools.evaluate import parse_configs, run_eval, write_trec

    s = settings()
    configs = parse_configs(config, s.retrieval.rerank)
    cache = Path(s.lancedb_path()).parent / "embcache.sqlite" if s.lancedb_is_local else Path(".local/embcache.sqlite")
    with tempfile.TemporaryDirectory(prefix="streamrag-eval-") as tmp:
        res = run_eval(s, dataset, configs, db or Path(tmp) / "lancedb", cache, log=log_line)
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
