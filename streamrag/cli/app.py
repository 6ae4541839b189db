"""The typer application, its sub-commands' groups, the one-line error handling and the exit codes they share.

The root group imports a command's module only when that command runs (or its own ``--help`` is asked for):
``streamrag --help`` lists every command from ``COMMAND_MODULES`` without importing any of them.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import typer
import typer.main
from rich.console import Console
from typer.core import TyperCommand, TyperGroup

from streamrag.core.errors import StreamragError
from streamrag.core.lazy import import_named

if TYPE_CHECKING:
    from streamrag.core.settings import Settings

# What each exit status means, the same for every command (the epilog of ``streamrag --help``, docs/cli.md).
EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_CODES = {
    EXIT_DONE: "done",
    EXIT_FAILED: "refused or partly failed (an invalid input, a service down, some files or records not taken): "
                 "one line on stderr says why",
    EXIT_USAGE: "usage: an unknown command or option, a missing or malformed argument",
    EXIT_UNEXPECTED: "an unexpected error, one line on stderr (STREAMRAG_LOG_LEVEL=DEBUG prints the traceback)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
EPILOG = "Exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + "."

# Every command of the root group: the module that defines it (imported when it runs) and its one-line help,
# shown by ``streamrag --help`` without importing the module (a unit test holds each to the command's own).
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "ingest": ("streamrag.cli.documents", "Index files into the local LanceDB through the ingest dataflow (no Kafka)."),
    "publish": ("streamrag.cli.documents", "Publish document changes to the documents topic."),
    "ask": ("streamrag.cli.ask", "Answer a question from the index (locally, or through the query worker with "
                                 "--via-kafka)."),
    "demo": ("streamrag.cli.demo", "Ingest the bundled handbook with the embedded path and answer a few questions."),
    "eval": ("streamrag.cli.evaluation", "Retrieval quality on a BEIR folder (``eval --dataset DIR``); answer quality "
                                         "(``eval answers``)."),
    "status": ("streamrag.cli.status", "Documents and chunks per tenant, table versions, topic offsets and worker "
                                       "lag, cache workers."),
    "gateway": ("streamrag.cli.gateway", "Serve the HTTP API (/v1/query, /v1/chat/completions, /v1/documents, "
                                         "/v1/feedback) and the chat page."),
    "tune": ("streamrag.cli.tune", "Fine-tune the embedding model on a tenant's own documents (title/body and "
                                   "inverse-cloze pairs)."),
    "topics": ("streamrag.cli.documents", "Kafka topics."),
    "worker": ("streamrag.cli.workers", "Long-lived dataflow workers."),
    "replay": ("streamrag.cli.replay", "Rebuild or catch up an index version from the documents topic."),
    "index": ("streamrag.cli.index", "Index versions: list, promote, rollback, drop, compare."),
    "cluster": ("streamrag.cli.cluster", "The ingest bytewax cluster."),
    "models": ("streamrag.cli.models", "Packaged local models: list, assemble; the question encoder's ONNX export."),
    "documents": ("streamrag.cli.doc_history", "A document's kept versions, and rolling one back."),
    "audit": ("streamrag.cli.audit", "What answers said, read back from the audit topic."),
    "ab": ("streamrag.cli.ab", "A/B experiments (STREAMRAG_GATEWAY_EXPERIMENTS)."),
    "bench": ("streamrag.cli.bench", "Benchmarks through real Kafka (figures, not tests)."),
}


class LazyGroup(TyperGroup):
    """The root group: lists ``COMMAND_MODULES`` as they are; imports a command's module when it is looked up
    to run (or to print its own help)."""

    listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMAND_MODULES, *(n for n in self.commands if n not in COMMAND_MODULES)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        spec = COMMAND_MODULES.get(cmd_name)
        if spec is not None:
            module, summary = spec
            if self.listing and module not in sys.modules:
                return TyperCommand(name=cmd_name, help=summary)
            if cmd_name not in self.commands or module not in sys.modules or not _has_commands(self.commands[cmd_name]):
                importlib.import_module(module)  # registers its commands on the typer apps
                self.commands.update(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


def _has_commands(cmd: Any) -> bool:
    """False for a group defined here whose commands' module was not imported when the root was built."""
    return not isinstance(cmd, TyperGroup) or bool(cmd.commands)


def load_commands() -> None:
    """Import every command's module (the documentation and the tests walk the whole tree)."""
    for module in dict.fromkeys(m for m, _ in COMMAND_MODULES.values()):
        importlib.import_module(module)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=LazyGroup, epilog=EPILOG,
                  help="streamrag: RAG as a stream-processing dataflow.")
topics_app = typer.Typer(no_args_is_help=True, help=COMMAND_MODULES["topics"][1])
worker_app = typer.Typer(no_args_is_help=True, help=COMMAND_MODULES["worker"][1])
bench_app = typer.Typer(no_args_is_help=True, help=COMMAND_MODULES["bench"][1])
app.add_typer(topics_app, name="topics")
app.add_typer(worker_app, name="worker")
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("streamrag")
        except PackageNotFoundError:
            v = "unknown (not installed)"
        typer.echo(f"streamrag {v}")
        raise typer.Exit(EXIT_DONE)


@app.callback()
def root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print streamrag's version and exit"),
) -> None:
    """streamrag: RAG as a stream-processing dataflow."""


console = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Expected failures (StreamragError): one line on stderr, exit 1; unexpected ones: one line, exit 3."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StreamragError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from exc
        except KeyboardInterrupt as exc:
            raise typer.Exit(EXIT_INTERRUPTED) from exc
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("STREAMRAG_LOG_LEVEL", "").upper() == "DEBUG":
                raise
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            console.print(f"[red]error:[/red] {type(exc).__name__}: {first} (STREAMRAG_LOG_LEVEL=DEBUG for details)",
                          highlight=False)
            raise typer.Exit(EXIT_UNEXPECTED) from exc

    return wrapper  # type: ignore[return-value]


# What one command alone needs of a heavy library, imported by name when that command runs: every other command,
# a worker's start first, pays for none of them (scipy's statistics ~2 s, FastAPI and uvicorn ~1 s).
COMMAND_LIBRARIES = {
    "ab_report": "streamrag.tools.ab_report:ab_report",
    "gateway_app": "streamrag.gateway.app:create_app",
    "gateway_server_options": "streamrag.gateway.http_server:server_options",
    "serve_http": "uvicorn:run",
}


def command_library(name: str) -> Any:
    """The function registered in COMMAND_LIBRARIES as ``name``, its module imported now."""
    return import_named(COMMAND_LIBRARIES[name])


def settings() -> Settings:
    """Logging, then the one settings object of this process."""
    from streamrag.connectors.lancedb_connect import use_object_store
    from streamrag.core.settings import load_settings

    logging.basicConfig(level=os.environ.get("STREAMRAG_LOG_LEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = load_settings()
    use_object_store(s.encryption)  # an s3:// index written with the deployment's server-side encryption
    return s


def check_tenant(tenant: str) -> None:
    from streamrag.core.security import valid_tenant

    if not valid_tenant(tenant):
        raise StreamragError(f"invalid tenant {tenant!r}: letters, digits, '_', '.', '-' (max 64)")


def log_line(msg: str) -> None:
    console.print(msg, highlight=False, markup=False)


# The shared options: each long name has one short flag (or none) and one meaning in every command.
def json_option() -> Any:
    return typer.Option(False, "--json", help="print the report as JSON (stdout) instead of text")


def tenant_option(default: Any = ...) -> Any:
    return typer.Option(default, "--tenant", "-t", help="the tenant whose documents and index are used")


def print_report(report: Any, as_json: bool) -> None:
    """A command's report: JSON with --json, else one ``key: value`` line per entry."""
    import json

    if as_json:
        out.print_json(json.dumps(report, default=str))
        return
    for key, value in (report.items() if isinstance(report, dict) else [("result", report)]):
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out.print(f"{key}: {text}", highlight=False, markup=False, soft_wrap=True)
