"""``streamrag documents history TENANT/DOC`` and ``documents rollback TENANT/DOC --to VERSION``."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime

import typer

from streamrag.cli.app import app, check_tenant, cli_errors, out, settings
from streamrag.tools.doc_history import document_history, rollback, split_key

documents_app = typer.Typer(no_args_is_help=True, help="A document's kept versions, and rolling one back.")
app.add_typer(documents_app, name="documents")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


@documents_app.command("history")
@cli_errors
def history(
    document: str = typer.Argument(..., help="TENANT/DOC_ID"),
    json_out: bool = typer.Option(False, "--json", help="print the history as JSON"),
) -> None:
    """Every kept version of a document (STREAMRAG_HISTORY_RETENTION_DAYS), newest first."""
    tenant, doc_id = split_key(document)
    check_tenant(tenant)
    h = document_history(settings(), tenant, doc_id)
    if json_out:
        out.print_json(json.dumps(h))
        return
    cur = h["current"]
    out.print(f"{tenant}/{doc_id}: " + (f"version {cur['version']} {cur['state']} in index {cur['index']}" if cur
                                        else "not in the active index"), highlight=False, markup=False)
    for v in h["versions"]:
        out.print(f"  v{v['version']:<6} {v['op']:<6} {_when(v['applied_ms'])}  index {v['index'] or '-':<10} "
                  f"by {v['publisher'] or '?':<16} {v['chars']} chars  {v['title']}", highlight=False, markup=False)
    if not h["versions"]:
        out.print("  no versions kept", highlight=False)


@documents_app.command("rollback")
@cli_errors
def rollback_(
    document: str = typer.Argument(..., help="TENANT/DOC_ID"),
    to: int = typer.Option(..., "--to", help="the kept version whose content is restored"),
    wait: float = typer.Option(0.0, "--wait", help="seconds to wait until the ingest worker applied it"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Restore a kept version: its content is published again as a new, higher version (documents topic)."""
    tenant, doc_id = split_key(document)
    check_tenant(tenant)
    r = rollback(settings(), tenant, doc_id, to, f"cli:{getpass.getuser()}", wait_s=wait)
    if json_out:
        out.print_json(json.dumps(r))
        return
    out.print(f"{tenant}/{doc_id}: version {to} restored as version {r['version']} ({r['status']})",
              highlight=False, markup=False)
