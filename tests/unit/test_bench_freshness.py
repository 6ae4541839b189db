"""``bench freshness``'s pieces that need no workers: the ingest stages read from /metrics, a found change."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streamrag.tools.bench_freshness import found, stage_sums_of


def test_ingest_stage_seconds_are_read_from_a_metrics_page() -> None:
    reg = CollectorRegistry()
    h = Histogram("streamrag_stage_seconds", "per stage", ["flow", "stage"], registry=reg)
    h.labels("ingest", "embed").observe(0.25)
    h.labels("ingest", "embed").observe(0.5)
    h.labels("ingest", "write").observe(0.125)
    h.labels("query", "embed").observe(9.0)  # another flow's stages are not the ingest worker's
    assert stage_sums_of(generate_latest(reg).decode()) == {"embed": 0.75, "write": 0.125}


def test_a_change_is_found_only_when_a_citation_carries_its_token() -> None:
    old = {"citations": [{"doc_id": "freshness-probe", "snippet": "zqold is the calibration code"}]}
    new = {"citations": [{"doc_id": "x", "snippet": "other"}, {"doc_id": "freshness-probe", "snippet": "zqnew is the code"}]}
    assert not found(old, "zqnew") and found(new, "zqnew") and not found({"citations": []}, "zqnew")
