"""Where benchmark figures go: JSON (and PNG plots) under docs/bench/, named by kind and device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from streamrag.tools.plots import plot_latencies, plot_scaling


def write_report(kind: str, res: dict[str, Any], outdir: Path, title: str = "") -> dict[str, Any]:
    """Write ``res`` (less its raw latencies, which become a histogram) and return what was written."""
    lat = res.pop("_latencies", None)
    outdir.mkdir(parents=True, exist_ok=True)
    name = f"{kind}-{res['machine']['device']}"
    (outdir / f"{name}.json").write_text(json.dumps(res, indent=2))
    if lat:
        plot_latencies(lat, f"{title}, {res.get('chunks')} chunks", outdir / f"{name}.png")
    if kind == "ingest" and len(res.get("pipeline", [])) > 1:
        plot_scaling(res["pipeline"], res["raw_chunks_per_s"], outdir / f"{name}-scaling.png")
    return res
