"""A real Prometheus server (Debian's package) scrapes an ingest worker's /metrics; a metric the worker
counted is read back through Prometheus' HTTP API, and the alert rules (alerts.yml and the GPU SLO profile)
load and evaluate on what the worker exports: the freshness SLO's bucket is one the worker writes."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamrag.core.settings import Settings
from streamrag.tools.status import scrape_workers
from tests.integration.conftest import chunk_rows as rows
from tests.integration.conftest import produce, wait_for
from tests.net import free_port

pytestmark = pytest.mark.integration


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.read().decode()


def test_prometheus_scrapes_a_worker(settings: Settings, start_worker: Any, tmp_path: Path) -> None:
    prom = shutil.which("prometheus")
    assert prom, "prometheus is installed by scripts/promtool-check (Debian's package)"
    base = free_port()  # the ingest worker (process 0) serves STREAMRAG_METRICS_PORT + 0
    start_worker("ingest", overrides={"STREAMRAG_METRICS_PORT": str(base)})
    produce(settings, settings.topics.documents, [
        (f"acme/m{i}", {"op": "upsert", "tenant": "acme", "doc_id": f"m{i}", "version": 1, "text": f"metric doc {i}"})
        for i in range(3)
    ] + [("acme/bad", b"{not json")])
    wait_for(lambda: len(rows(settings)) >= 3, timeout=120)
    def scraped() -> str | None:
        t = get(f"http://127.0.0.1:{base}/metrics")
        return t if 'outcome="indexed"' in t else None

    text = wait_for(scraped, 30)
    assert 'streamrag_stage_seconds_bucket{flow="ingest"' in text and "streamrag_index_freshness_seconds" in text
    shown = scrape_workers(settings.model_copy(update={"metrics_port": base}))  # what `streamrag status` shows
    assert shown["ingest"]["streamrag_records_total{flow=ingest,outcome=indexed}"] >= 3

    web = free_port()
    rules = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules / 'alerts.yml'}', '{rules / 'slo-gpu.yml'}']\n"
        f"scrape_configs: [{{job_name: streamrag, static_configs: [{{targets: ['127.0.0.1:{base}']}}]}}]\n"
    )
    proc = subprocess.Popen(
        [prom, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        query = urllib.parse.quote('sum(streamrag_records_total{flow="ingest",outcome="indexed"})')

        def indexed() -> float | None:
            try:
                res = json.loads(get(f"http://127.0.0.1:{web}/api/v1/query?query={query}"))["data"]["result"]
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                return None
            return float(res[0]["value"][1]) if res and float(res[0]["value"][1]) >= 3 else None

        assert wait_for(indexed, timeout=60) >= 3
        dead = urllib.parse.quote('sum(streamrag_dead_letters_total{flow="ingest"})')
        res = json.loads(get(f"http://127.0.0.1:{web}/api/v1/query?query={dead}"))["data"]["result"]
        assert res and float(res[0]["value"][1]) >= 1

        def value(expr: str) -> float | None:
            try:
                res = json.loads(get(f"http://127.0.0.1:{web}/api/v1/query?query={urllib.parse.quote(expr)}"))
            except (urllib.error.URLError, OSError, ValueError):
                return None
            found = res["data"]["result"]
            return float(found[0]["value"][1]) if found else None

        # documents indexed while Prometheus watches: the share slower than 30 s is a number (no series at all,
        # were the rule's le="30.0" not a bucket the worker exports; NaN without documents in the window)
        produce(settings, settings.topics.documents, [
            (f"acme/n{i}", {"op": "upsert", "tenant": "acme", "doc_id": f"n{i}", "version": 1, "text": f"fresh doc {i}"})
            for i in range(3)
        ])
        def ratio() -> list[float] | None:  # in a list: 0.0 (every document fresh) is an answer
            v = value("streamrag:freshness_slow:ratio_rate5m")
            return None if v is None or math.isnan(v) else [v]

        [slow] = wait_for(ratio, timeout=60)
        assert 0.0 <= slow <= 1.0
        assert value('streamrag:slo_threshold_seconds{slo="answer"}') == 3.0
        groups = json.loads(get(f"http://127.0.0.1:{web}/api/v1/rules"))["data"]["groups"]
        assert {g["name"] for g in groups} >= {"streamrag-sli", "streamrag-slo", "streamrag-ops",
                                                "streamrag-sli-gpu", "streamrag-slo-gpu"}
        assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups
    finally:
        proc.terminate()
        proc.wait(20)
        time.sleep(0.1)
