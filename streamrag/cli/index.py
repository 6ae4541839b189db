"""``streamrag index list | promote | rollback | drop | compare``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from streamrag.cli.app import (
    app,
    cli_errors,
    console,
    json_option,
    out,
    print_report,
    settings,
    tenant_option,
)
from streamrag.tools import index_admin
from streamrag.tools.index_compare import compare as run_compare

index_app = typer.Typer(no_args_is_help=True, help="Index versions: list, promote, rollback, drop, compare.")
app.add_typer(index_app, name="index")


@index_app.command("list")
@cli_errors
def list_(json_out: bool = json_option()) -> None:
    """Every index version, its settings and size; * marks the active one."""
    rows = index_admin.list_indexes(settings())
    if json_out:
        out.print_json(json.dumps(rows))
        return
    for r in rows:
        st = r["settings"]
        out.print(f"{'*' if r['active'] else ' '} {r['name']:<20} docs {r['documents']:>8}  chunks {r['chunks']:>9}  "
                  f"model {st.get('embedding_model')}  chunk {st.get('chunk_size')}/{st.get('chunk_overlap')}  "
                  f"fusion {st.get('fusion')}", highlight=False, markup=False)


def _warn_behind(name: str, behind: list[str]) -> None:
    if behind:
        console.print(f"warning: {name} is behind on {len(behind)} documents; live ingest writes it now: catch it up "
                      f"with the ingest workers stopped, `streamrag replay --index {name} --ingest-stopped`",
                      highlight=False, markup=False)


@index_app.command()
@cli_errors
def promote(
    name: str = typer.Argument(..., help="the index version to make active"),
    force: bool = typer.Option(False, "--force", help="promote even while it is behind"),
    json_out: bool = json_option(),
) -> None:
    """Make NAME the active index (every worker switches within STREAMRAG_INDEX_POLL_S)."""
    sw = index_admin.promote(settings(), name, force)
    _warn_behind(name, sw.behind)
    _print_switch(sw.activation.name, sw.activation.previous, sw.behind, json_out)


def _print_switch(name: str, previous: str | None, behind: list[str], json_out: bool) -> None:
    if json_out:
        print_report({"active": name, "previous": previous, "behind": len(behind)}, True)
    else:
        out.print(f"active index: {name} (was {previous})", highlight=False)


@index_app.command()
@cli_errors
def rollback(json_out: bool = json_option()) -> None:
    """Make the previously active index active again."""
    sw = index_admin.rollback(settings())
    _warn_behind(sw.activation.name, sw.behind)
    _print_switch(sw.activation.name, sw.activation.previous, sw.behind, json_out)


@index_app.command()
@cli_errors
def drop(name: str = typer.Argument(..., help="the index version to delete"), json_out: bool = json_option()) -> None:
    """Delete index NAME's tables (refused for the active index)."""
    index_admin.drop(settings(), name)
    if json_out:
        print_report({"dropped": name}, True)
    else:
        out.print(f"dropped index {name}", highlight=False)


@index_app.command()
@cli_errors
def compare(
    a: str = typer.Argument(..., help="the first index version"),
    b: str = typer.Argument(..., help="the index version compared with it"),
    queries: int = typer.Option(200, "--queries", help="the last N queries of the queries topic"),
    queries_file: Path = typer.Option(None, "--queries-file", help="one question (or JSON query) per line"),
    dataset: Path = typer.Option(None, "--dataset", help="a BEIR folder: its test queries, and NDCG@10"),
    tenant: str = tenant_option("default"),
    k: int = typer.Option(10, "--top-k", "-k", help="results compared per query (overlap@k)"),
    json_out: bool = json_option(),
) -> None:
    """Shadow-compare two index versions on the same queries: overlap@k, latency, NDCG@10."""
    report = run_compare(settings(), a, b, queries=queries, queries_file=queries_file, dataset=dataset,
                         tenant=tenant, k=k)
    print_report(report, json_out)
