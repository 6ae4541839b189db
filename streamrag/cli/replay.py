"""``streamrag replay`` (rebuild or catch up an index version from the documents topic) and
``streamrag replay dead-letters``."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from streamrag.cli.app import app, cli_errors, console, json_option, out, settings
from streamrag.core.errors import ConfigError
from streamrag.core.index_versions import parse_overrides
from streamrag.schemas.models import as_utc
from streamrag.tools.replay import replay as run_replay
from streamrag.tools.replay_dead_letters import replay_dead_letters

replay_app = typer.Typer(no_args_is_help=True, invoke_without_command=True,
                         help="Rebuild or catch up an index version from the documents topic.")
app.add_typer(replay_app, name="replay")


def parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"--since wants an ISO 8601 time (2026-11-22T10:00:00Z), got {text!r}") from exc
    return as_utc(t)


@replay_app.callback()
@cli_errors
def replay(
    ctx: typer.Context,
    index: str = typer.Option(None, "--index", help="the index version to build or catch up"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="read the whole topic again"),
    since: str = typer.Option(None, "--since", help="start at this time (ISO 8601)"),
    overrides: list[str] = typer.Option(None, "--set", help="KEY=VALUE settings field for a new index (repeatable)"),
    follow: bool = typer.Option(False, "--follow", help="keep tailing the topic after catching up"),
    json_out: bool = json_option(),
    ingest_stopped: bool = typer.Option(False, "--ingest-stopped",
                                        help="the ingest workers are stopped: replay into the active version"),
) -> None:
    """Build index NAME from the compacted documents topic through the ingest stages (resumable)."""
    if ctx.invoked_subcommand is not None:
        return
    if not index:
        raise ConfigError("replay needs --index NAME (or the dead-letters subcommand)")
    if from_beginning and since:
        raise ConfigError("--from-beginning and --since exclude each other")
    start: str | datetime = "beginning" if from_beginning else parse_time(since) if since else "resume"
    sets = parse_overrides(overrides or [])
    s = settings()
    with Progress(
        TextColumn(f"replay {index}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]} rec/s"), TimeRemainingColumn(),
        console=console, disable=json_out or not console.is_terminal,
    ) as bar:
        task = bar.add_task("replay", total=None, rate="-")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.0f}" if elapsed else "-")

        report = run_replay(s, index, start=start, overrides=sets, follow=follow, progress=progress,
                            ingest_stopped=ingest_stopped)
    if json_out:
        out.print_json(json.dumps(report.as_dict()))
        return
    d = report.as_dict()
    out.print(
        f"index {index}{' (new)' if report.created else ''}: read {report.read} records in {d['seconds']} s "
        f"({d['records_per_s']}/s), {report.outcomes or {}}, dead letters {report.dead_letters}; chunks encoded "
        f"{report.encoded}, reused {report.reused}" + ("; caught up with the topic" if report.caught_up else "")
        + ("; stopped: it is the active version now, which live ingest writes" if report.promoted else ""),
        highlight=False,
    )


@replay_app.command("dead-letters")
@cli_errors
def dead_letters(
    stage: str = typer.Option(None, "--stage", help="only dead letters of this stage (parse, validate, embed, ...)"),
    since: str = typer.Option(None, "--since", help="from this time (ISO 8601) instead of where the last run ended"),
    dry_run: bool = typer.Option(False, "--dry-run", help="count what would be replayed; publish nothing"),
    json_out: bool = json_option(),
) -> None:
    """Re-publish dead-lettered documents (original bytes) to the documents topic, once."""
    with Progress(
        TextColumn("dead letters read"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=json_out or not console.is_terminal,
    ) as bar:
        task = bar.add_task("read", total=None)
        r = replay_dead_letters(settings(), stage=stage, since=parse_time(since) if since else None, dry_run=dry_run,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    if json_out:
        out.print_json(json.dumps(r.as_dict()))
        return
    verb = "would replay" if dry_run else "replayed"
    out.print(f"{verb} {r.replayed} dead letters; skipped {r.skipped or 0}", highlight=False)
