"""The alert rules as files (deploy/prometheus): every alert has a promtool unit test in which it fires and one in
which it stays quiet; both SLO profiles define the same rules, the GPU one holds the product's seeds; each
Prometheus config loads the common rules and exactly one profile; the dashboard has a panel per objective; and the
promtool tests pass (where promtool is installed: scripts/promtool-check installs it for the test command)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
PROFILES = ("slo-gpu.yml", "slo-cpu.yml")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rule_files() -> list[Path]:
    return [p for p in sorted(PROM.glob("*.yml")) if not p.name.endswith("_test.yml")
            and not p.name.startswith("prometheus")]


def rules(path: Path, kind: str) -> dict[str, dict[str, Any]]:
    return {r[kind]: r for g in load(path)["groups"] for r in g["rules"] if kind in r}


def test_rule_files_are_the_common_ones_and_two_profiles() -> None:
    assert [p.name for p in rule_files()] == ["alerts.yml", "slo-cpu.yml", "slo-gpu.yml"]


@pytest.mark.parametrize("rule_file", ["alerts.yml", *PROFILES])
def test_every_alert_has_a_firing_and_a_quiet_promtool_case(rule_file: str) -> None:
    alerts = set(rules(PROM / rule_file, "alert"))
    assert alerts
    fires: set[str] = set()
    quiet: set[str] = set()
    for t in PROM.glob("*_test.yml"):
        doc = load(t)
        if rule_file not in doc["rule_files"]:
            continue
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert not alerts - fires, f"{rule_file}: no test in which these fire: {sorted(alerts - fires)}"
    assert not alerts - quiet, f"{rule_file}: no test in which these stay quiet: {sorted(alerts - quiet)}"


def test_the_slos_cover_first_token_answer_retrieval_freshness_errors_and_cache() -> None:
    slo = {r["labels"]["slo"] for f in rule_files() for r in rules(f, "alert").values() if "slo" in r["labels"]}
    assert slo == {"ttft", "answer", "retrieval", "freshness", "errors", "cache"}


def thresholds(profile: str) -> dict[str, float]:
    recs = [r for g in load(PROM / profile)["groups"] for r in g["rules"]
            if r.get("record") == "streamrag:slo_threshold_seconds"]
    return {r["labels"]["slo"]: float(re.fullmatch(r"vector\((.+)\)", r["expr"])[1]) for r in recs}  # type: ignore[index]


def test_both_profiles_define_the_same_rules_and_the_gpu_one_holds_the_seeds() -> None:
    gpu, cpu = (load(PROM / p) for p in PROFILES)
    names = [{(r.get("record"), r.get("alert")) for g in doc["groups"] for r in g["rules"]} for doc in (gpu, cpu)]
    assert names[0] == names[1]
    # the product's seeds: an answer within 3 s, retrieval under 100 ms
    assert thresholds("slo-gpu.yml") == {"ttft": 1.0, "answer": 3.0, "retrieval": 0.1, "freshness": 30.0}
    assert thresholds("slo-cpu.yml") == {"ttft": 15.0, "answer": 30.0, "retrieval": 0.25, "freshness": 120.0}
    for profile in PROFILES:  # each recorded ratio reads the bucket of its profile's threshold
        th = thresholds(profile)
        for rec, r in rules(PROM / profile, "record").items():
            if m := re.fullmatch(r"streamrag:(\w+)_slow:ratio_rate\w+", rec):
                le = re.search(r'le="([^"]+)"', r["expr"])
                assert le and float(le[1]) == th[m[1]], (profile, rec)


def test_each_config_loads_the_common_rules_and_one_profile() -> None:
    for config, profile in (("prometheus.yml", "slo-gpu.yml"), ("prometheus-compose.yml", "slo-cpu.yml")):
        assert load(PROM / config)["rule_files"] == ["alerts.yml", profile]


def test_the_dashboard_has_a_panel_per_objective_with_its_threshold() -> None:
    dash = json.loads((ROOT / "deploy" / "grafana" / "streamrag.json").read_text())
    panels = [(p["title"], [t["expr"] for t in p.get("targets", [])]) for p in dash["panels"]]
    metrics = {"ttft": "streamrag_time_to_first_token_seconds", "answer": "streamrag_answer_seconds",
               "retrieval": "streamrag_retrieval_seconds", "freshness": "streamrag_index_freshness_seconds"}
    for slo, metric in metrics.items():
        assert any(any(metric in e for e in exprs) and f'streamrag:slo_threshold_seconds{{slo="{slo}"}}' in exprs
                   for _, exprs in panels), f"no panel shows the {slo} objective and its threshold"
    assert any(any('status="error"' in e for e in exprs) and "vector(0.001)" in exprs for _, exprs in panels)
    assert any(any("streamrag:cache_hit:ratio_rate1d" in e for e in exprs) for _, exprs in panels)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) not installed")
def test_promtool_checks_and_tests_every_rule_file() -> None:
    files = [str(p) for p in rule_files()]
    subprocess.run(["promtool", "check", "rules", *files], check=True, capture_output=True, timeout=120)
    tests = [str(p) for p in sorted(PROM.glob("*_test.yml"))]
    assert len(tests) == 3
    out = subprocess.run(["promtool", "test", "rules", *tests], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_kubernetes_base_ships_these_rule_files_unchanged() -> None:
    """deploy/k8s/base/prometheus-rules holds copies (kustomize reads no file outside its folder) that cannot drift:
    after changing a rule file, copy it there (cp deploy/prometheus/<file> deploy/k8s/base/prometheus-rules/)."""
    shipped = ROOT / "deploy" / "k8s" / "base" / "prometheus-rules"
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in rule_files())
    for p in rule_files():
        assert (shipped / p.name).read_bytes() == p.read_bytes(), f"cp {p.relative_to(ROOT)} {shipped.relative_to(ROOT)}/"
    kust = load(ROOT / "deploy" / "k8s" / "base" / "kustomization.yaml")
    (gen,) = [g for g in kust["configMapGenerator"] if g["name"] == "streamrag-prometheus-rules"]
    assert sorted(gen["files"]) == sorted(f"prometheus-rules/{p.name}" for p in rule_files())
