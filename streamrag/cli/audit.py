"""``streamrag audit show QUERY_ID`` and ``audit search --user U --since T``: what answers said, from the audit
topic."""

from __future__ import annotations

import json

import typer

from streamrag.cli.app import app, cli_errors, out, settings
from streamrag.core.errors import StreamragError
from streamrag.schemas.models import AuditRecord
from streamrag.tools.audit_log import audit_search, audit_show, since_time

audit_app = typer.Typer(no_args_is_help=True, help="What answers said, read back from the audit topic.")
app.add_typer(audit_app, name="audit")


def _line(a: AuditRecord) -> str:
    who = a.principal or "?"
    return f"{a.at:%Y-%m-%d %H:%M:%S} {a.query_id} {a.tenant}/{who} {a.status} index {a.index or '-'} " \
           f"{len(a.chunks)} chunks {a.latency_ms:.0f} ms"


@audit_app.command("show")
@cli_errors
def show(
    query_id: str = typer.Argument(..., help="the answer's query id"),
    json_out: bool = typer.Option(False, "--json", help="print the audit record as JSON"),
) -> None:
    """One answer's audit record: who asked, what was answered, the cited chunks and scores, the index version."""
    a = audit_show(settings(), query_id)
    if a is None:
        raise StreamragError(f"no audit record of query {query_id[:128]!r} on the audit topic (past its retention?)")
    if json_out:
        out.print_json(a.model_dump_json())
        return
    out.print(_line(a), highlight=False, markup=False)
    if a.query_text is not None:
        out.print(f"question: {a.query_text}", highlight=False, markup=False)
    said = a.answer_text if a.answer_text is not None else (f"(kept as a keyed hash: {a.answer_hmac})" if a.answer_hmac
                                                            else "(none)")
    out.print(f"answer: {said}", highlight=False, markup=False)
    for c in a.chunks:
        out.print(f"  {c.score:.4f}  {c.doc_id} v{c.version}  {c.chunk_id}", highlight=False, markup=False)
    extra = {"generator": a.generator, "model": a.model, "grounded": a.grounded, "fallback": a.fallback,
             "variant": a.variant, "usage": a.usage.model_dump(), "timings_ms": a.timings_ms}
    out.print(json.dumps(extra), highlight=False, markup=False)


@audit_app.command("search")
@cli_errors
def search(
    user: str = typer.Option(None, "--user", help="the (verified) user who asked"),
    since: str = typer.Option(None, "--since", help="at or after this time: ISO 8601, or a time ago (30m, 12h, 7d)"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="only this tenant's answers"),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="the newest this many"),
    json_out: bool = typer.Option(False, "--json", help="print the audit records as JSON"),
) -> None:
    """The answers a user (or tenant) was given since a time, newest first."""
    found = audit_search(settings(), user=user, since=since_time(since) if since else None, tenant=tenant, limit=limit)
    if json_out:
        out.print_json(json.dumps([a.model_dump(mode="json") for a in found]))
        return
    for a in found:
        out.print(_line(a), highlight=False, markup=False)
    if not found:
        out.print("no audit records match", highlight=False)
