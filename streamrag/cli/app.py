"""The typer application, its sub-commands' groups, and the one-line error handling they share."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from streamrag.core.errors import StreamragError
from streamrag.core.lazy import import_named
from streamrag.core.security import valid_tenant
from streamrag.core.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="streamrag: RAG as a stream-processing dataflow.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
worker_app = typer.Typer(no_args_is_help=True, help="Long-lived dataflow workers.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks through real Kafka (figures, not tests).")
app.add_typer(topics_app, name="topics")
app.add_typer(worker_app, name="worker")
app.add_typer(bench_app, name="bench")

console = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(fn: F) -> F:
    """Expected failures: one line on stderr, exit 1; unexpected ones: one line, exit 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
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
    logging.basicConfig(level=os.environ.get("STREAMRAG_LOG_LEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return load_settings()


def check_tenant(tenant: str) -> None:
    if not valid_tenant(tenant):
        raise StreamragError(f"invalid tenant {tenant!r}: letters, digits, '_', '.', '-' (max 64)")


def log_line(msg: str) -> None:
    console.print(msg, highlight=False, markup=False)
