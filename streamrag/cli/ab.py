"""``streamrag ab report EXPERIMENT``: an A/B experiment's variants compared (feedback, no_answer, fallbacks,
latency) with significance tests."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from streamrag.cli.app import app, cli_errors, command_library, out, settings

ab_app = typer.Typer(no_args_is_help=True, help="A/B experiments (STREAMRAG_GATEWAY_EXPERIMENTS).")
app.add_typer(ab_app, name="ab")


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _ms(x: Any) -> str:
    return "-" if x is None else f"{x:.0f}"


@ab_app.command("report")
@cli_errors
def report(
    experiment: str = typer.Argument(..., help="the experiment's name"),
    as_json: bool = typer.Option(False, "--json", help="the report as JSON"),
) -> None:
    """Compare an experiment's variants on the audit and feedback topics: each against the first variant."""
    rep = command_library("ab_report")(settings(), experiment)
    if as_json:
        out.print_json(json.dumps(rep))
        return
    t = Table(title=f"experiment {experiment}")
    for col in ("variant", "answers", "ratings", "positive", "no_answer", "fallbacks", "p50 ms", "p95 ms"):
        t.add_column(col)
    for v in rep["variants"]:  # type: ignore[attr-defined]
        t.add_row(v["variant"], str(v["answers"]), str(v["ratings"]), _pct(v["positive_rate"]),
                  _pct(v["no_answer_rate"]), _pct(v["fallback_rate"]), _ms(v["latency_p50_ms"]), _ms(v["latency_p95_ms"]))
    out.print(t)
    for c in rep["comparisons"]:  # type: ignore[attr-defined]
        p = "-" if c["p_value"] is None else f"p={c['p_value']:.3g}"
        out.print(f"{c['variant']} vs {c['control']} on {c['metric']}: {p} {c['note']}".rstrip(), highlight=False)
    out.print(f"verdict: {rep['verdict']}", highlight=False)
