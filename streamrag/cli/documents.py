"""``streamrag ingest``, ``publish`` and ``topics create``."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamrag.cli.app import (
    EXIT_FAILED,
    app,
    check_tenant,
    cli_errors,
    console,
    json_option,
    out,
    print_report,
    settings,
    tenant_option,
    topics_app,
)
from streamrag.connectors.files import delete_record, records_from_paths
from streamrag.connectors.kafka_admin import ensure_topics
from streamrag.core.errors import StreamragError
from streamrag.core.records import RawRecord
from streamrag.flows.local import index_paths
from streamrag.schemas.models import DeadLetter
from streamrag.tools.fusion_evidence import refresh_evidence
from streamrag.tools.publish import publish_records


@app.command()
@cli_errors
def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="files or folders: .pdf, .docx, .html, .md, .txt, .rst, .jsonl[.gz] (DocumentChange per line)"),
    tenant: str = tenant_option(),
    json_out: bool = json_option(),
) -> None:
    """Index files into the local LanceDB through the ingest dataflow (no Kafka)."""
    check_tenant(tenant)
    s = settings()
    refusals = Refusals()
    with Progress(
        TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=json_out or not console.is_terminal,
    ) as bar:
        task = bar.add_task("ingest", total=None)
        report = index_paths(s, paths, tenant, on_progress=lambda n: bar.advance(task, n), refused=refusals)
    counts = {**report.counts(), "refused": len(refusals.seen)}
    if counts.get("indexed", 0):  # measured once here, read by every later ask and worker of this index version
        with console.status("fusion evidence", spinner="dots") if not json_out and console.is_terminal \
                else contextlib.nullcontext():
            refresh_evidence(s, tenant)
    if json_out:
        out.print_json(json.dumps({"counts": counts, "dead_letters": [d.model_dump(mode="json") for d in report.dead],
                                   "refused": [{"where": w, "reason": r} for w, r in refusals.seen]}))
    else:
        out.print(
            f"indexed {counts.get('indexed', 0)} documents ({counts['chunks']} chunks), "
            f"unchanged {counts.get('unchanged', 0)}, stale {counts.get('stale', 0)}, "
            f"dead letters {counts['dead_letters']}, refused {counts['refused']} -> {s.index.lancedb_uri}",
            highlight=False,
        )
        for d in report.dead[:50]:
            out.print(f"  refused {refused_name(d)} [{d.stage}]: {d.error}", highlight=False, markup=False)
        if len(report.dead) > 50:
            out.print(f"  ... and {len(report.dead) - 50} more (--json lists them all)", highlight=False)
    if report.dead or refusals.seen:  # some (or all) files refused: partly failed
        raise typer.Exit(EXIT_FAILED)


class Refusals:
    """Files and lines refused before they are read (connectors.files): each printed at once (on stderr) and kept."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, where: str, reason: str) -> None:
        self.seen.append((where, reason))
        console.print(f"refused {where}: {reason}", highlight=False, markup=False, soft_wrap=True)


def refused_name(d: DeadLetter) -> str:
    """The file a dead letter is about (its line, for JSONL), else its key."""
    if d.source.topic:
        return d.source.topic + (f":{d.source.offset}" if d.source.offset is not None else "")
    key = base64.b64decode(d.original_key_b64).decode("utf-8", "replace") if d.original_key_b64 else ""
    return key or "(no key)"


@app.command()
@cli_errors
def publish(
    paths: list[Path] = typer.Argument(None, help="files or folders to upsert"),
    tenant: str = tenant_option(),
    delete: list[str] = typer.Option(None, "--delete", help="doc id to delete (repeatable)"),
    wait: float = typer.Option(0.0, "--wait", help="seconds to wait until the ingest worker applied them"),
    json_out: bool = json_option(),
) -> None:
    """Publish document changes to the documents topic."""
    check_tenant(tenant)
    s = settings()
    refusals = Refusals()
    files = records_from_paths(paths or [], tenant, s.index.max_doc_bytes, refused=refusals,
                               max_line_bytes=s.json_limits.max_bytes, max_uncompressed=s.index.max_uncompressed_bytes)
    records = [*files, *(delete_record(tenant, d) for d in delete or [])]
    if not records:
        raise StreamragError("nothing to publish: give paths or --delete DOC_ID"
                             + (f" ({len(refusals.seen)} refused)" if refusals.seen else ""))
    bad: list[str] = []

    def skipped(r: RawRecord, error: str) -> None:
        bad.append(error)
        where = (r.topic or "") + (f":{r.offset}" if r.offset is not None else "")
        console.print(f"skipped {where or (r.key or b'').decode('utf-8', 'replace')}: {error}",
                      highlight=False, markup=False)

    with Progress(
        TextColumn("applied"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=json_out or not wait or not console.is_terminal,
    ) as bar:
        task = bar.add_task("applied", total=None)
        n = publish_records(s, records, skipped, wait_s=wait, tenant=tenant,
                            applied=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        print_report({"published": n, "topic": s.topics.documents, "applied": bool(wait and n), "skipped": bad,
                      "refused": [{"where": w, "reason": r} for w, r in refusals.seen]}, True)
    else:
        out.print(f"published {n} document changes to {s.topics.documents}" + (" (applied)" if wait and n else ""),
                  highlight=False)
    if bad or refusals.seen:
        raise StreamragError(f"{len(bad) + len(refusals.seen)} document change(s) or file(s) were refused, not published")


@topics_app.command("create")
@cli_errors
def topics_create(
    partitions: int = typer.Option(None, "--partitions", "-p",
                                   help="partitions of each new topic (default STREAMRAG_KAFKA_PARTITIONS)"),
    json_out: bool = json_option(),
) -> None:
    """Create the project's topics (compacted documents and cache topics)."""
    s = settings()
    print_report(ensure_topics(s.kafka, s.topic_layout, partitions), json_out)
