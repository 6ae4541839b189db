"""``streamrag gateway``: the HTTP API and chat page in front of the query workers (uvicorn).

With auth off it listens on loopback only, unless STREAMRAG_GATEWAY_ALLOW_UNAUTHENTICATED_PUBLIC names the
risk; uvicorn bounds idle keep-alive connections, the time and size of a request head and the connections at
once (``gateway.http_server``)."""

from __future__ import annotations

import ipaddress
import sys

import typer

from streamrag.cli.app import app, cli_errors, command_library, console, settings
from streamrag.core.settings import Settings


def loopback(host: str) -> bool:
    """127.x, ::1 or localhost: reachable from this machine only."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a name or 0.0.0.0 / "": other machines may reach it


def refusal(s: Settings, host: str) -> str | None:
    """Why the gateway must not listen on ``host`` with these settings, or None."""
    if s.auth_on or loopback(host) or s.gateway.allow_unauthenticated_public:
        return None
    return (f"error: auth is off and the gateway would listen on {host} (beyond loopback): anyone who reaches it "
            "could ask, write and delete as any tenant; set STREAMRAG_PROFILE=production (verified tokens) or, "
            "to accept the risk, STREAMRAG_GATEWAY_ALLOW_UNAUTHENTICATED_PUBLIC=true")


@app.command()
@cli_errors
def gateway(
    host: str = typer.Option(None, "--host", help="address to listen on (default STREAMRAG_GATEWAY_HOST)"),
    port: int = typer.Option(None, "--port", help="port (default STREAMRAG_GATEWAY_PORT)"),
) -> None:
    """Serve the HTTP API (/v1/query, /v1/chat/completions, /v1/documents, /v1/feedback) and the chat page."""
    s = settings()
    h, p = host or s.gateway.host, port or s.gateway.port
    why = refusal(s, h)
    if why is not None:
        print(why, file=sys.stderr)
        raise typer.Exit(1)
    g = s.gateway
    if g.metrics_port:  # /metrics on a port of its own (e.g. for Prometheus only, off the public listener)
        from prometheus_client import start_http_server

        start_http_server(g.metrics_port, addr=s.worker.metrics_host)
    console.print(f"gateway on http://{h}:{p}/ (Ctrl-C to stop)", highlight=False)
    command_library("serve_http")(command_library("gateway_app")(s), host=h, port=p, log_level="warning",
                                  access_log=False, **command_library("gateway_server_options")(g))
