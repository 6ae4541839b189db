"""``streamrag status``: the index per tenant, topics and lag, each query worker's cache."""

from __future__ import annotations

import json

from rich.table import Table

from streamrag.cli.app import app, cli_errors, json_option, out, settings
from streamrag.tools.status import collect_status


@app.command()
@cli_errors
def status(json_out: bool = json_option()) -> None:
    """Documents and chunks per tenant, table versions, topic offsets and worker lag, cache workers."""
    report = collect_status(settings())
    if json_out:
        out.print_json(json.dumps(report))
        return
    t = Table(title=f"active index {report['active_index']} at {report['index']['uri']}  table versions {report['index']['versions']}")
    for c in ("tenant", "documents", "chunks"):
        t.add_column(c)
    for tenant, v in sorted(report["index"]["tenants"].items()):
        t.add_row(tenant, str(v["documents"]), str(v["chunks"]))
    out.print(t)
    k = report["kafka"]
    if "error" in k:
        out.print(f"kafka: {k['error']}", highlight=False)
    else:
        kt = Table(title=f"kafka {k['bootstrap']}")
        for c in ("topic", "messages", "worker lag"):
            kt.add_column(c)
        for name, info in k["topics"].items():
            kt.add_row(name, str(info.get("messages", "-")), str(info.get("lag", "")))
        out.print(kt)
    for kind, numbers in report.get("metrics", {}).items():
        mt = Table(title=f"{kind} worker {numbers.get('endpoint', '')}")
        mt.add_column("metric")
        mt.add_column("value")
        for name, value in numbers.items():
            if name != "endpoint":
                mt.add_row(name, f"{value:g}")
        out.print(mt)
    for worker, led in report.get("crash_ledgers", {}).items():
        last = led.get("last_crash") or {}
        out.print(f"worker {worker}: restarts after a crash {led['crash_restarts']}"
                  + (f" (last in step {last.get('stage')}, {len(last.get('positions') or [])} record(s) in hand)" if last else "")
                  + f", suspects {led['suspects']}, dead-lettered for crashing it {led['dead_lettered']}", highlight=False)
    for worker, st in report["cache_workers"].items():
        if isinstance(st, dict):
            out.print(f"cache {worker}: follower {st.get('follower')} (restarts {st.get('follower_restarts')}), "
                      f"serving {st.get('serving')}, entries {st.get('entries')}, hit rate {st.get('hit_rate')} "
                      f"(exact {st.get('exact_hits')}, semantic {st.get('semantic_hits')}, "
                      f"refused: unsafe {st.get('unsafe_skips')}, guard {st.get('guarded')}), "
                      f"lookup p95 {st.get('lookup_ms_p95')} ms", highlight=False)
        else:
            out.print(f"cache workers: {st}", highlight=False)
