"""``streamrag tune``: adapt the embedding model to a tenant's corpus (no labels)."""

from __future__ import annotations

from pathlib import Path

import typer

from streamrag.cli.app import (
    app,
    check_tenant,
    cli_errors,
    json_option,
    log_line,
    print_report,
    settings,
    tenant_option,
)
from streamrag.tools.tune import tune as run_tune


@app.command()
@cli_errors
def tune(
    tenant: str = tenant_option(),
    index: str = typer.Option(None, "--index", help="the index version to read the corpus from (default: active)"),
    out_dir: Path = typer.Option(None, "--out", help="model folder to write (default: STREAMRAG_MODEL_DIR/tuned-...)"),
    epochs: int = typer.Option(1, "--epochs", min=1, max=20, help="passes over the training pairs"),
    max_pairs: int = typer.Option(20_000, "--max-pairs", min=64, help="training pairs drawn from the corpus, at most"),
    json_out: bool = json_option(),
) -> None:
    """Fine-tune the embedding model on a tenant's own documents (title/body and inverse-cloze pairs)."""
    check_tenant(tenant)
    report = run_tune(settings(), tenant, index=index, out=out_dir, epochs=epochs, max_pairs=max_pairs, log=log_line)
    print_report(report, json_out)
    log_line(f"next: {report['next']}")
