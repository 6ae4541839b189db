"""``streamrag gateway``: the HTTP API and chat page in front of the query workers (uvicorn)."""

from __future__ import annotations

import typer

from streamrag.cli.app import app, cli_errors, command_library, console, settings


@app.command()
@cli_errors
def gateway(
    host: str = typer.Option(None, "--host", help="address to listen on (default STREAMRAG_GATEWAY_HOST)"),
    port: int = typer.Option(None, "--port", help="port (default STREAMRAG_GATEWAY_PORT)"),
) -> None:
    """Serve the HTTP API (/v1/query, /v1/chat/completions, /v1/documents, /v1/feedback) and the chat page."""
    s = settings()
    h, p = host or s.gateway.host, port or s.gateway.port
    console.print(f"gateway on http://{h}:{p}/ (Ctrl-C to stop)", highlight=False)
    command_library("serve_http")(command_library("gateway_app")(s), host=h, port=p, log_level="warning", access_log=False)
