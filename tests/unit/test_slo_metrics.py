"""The metrics the SLO rules read (deploy/prometheus/slo-*.yml): a query answered by the real query processor
observes its time to first token and its retrieval time, and every bucket a rule names is one the worker exports."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest

from streamrag.core.generation.backend import Completion
from streamrag.core.generation.chain import GeneratorChain
from streamrag.core.generation.llm_generator import AnswerBudget, LLMGenerator
from streamrag.core.generation.routing import Router
from streamrag.core.query.observe import RETRIEVAL_STAGES
from streamrag.schemas.models import Query, answer_latency_ms
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder, ScriptedChat

PROM = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
HOTEL = "A hotel night in Berlin is reimbursed up to 180 euros. Breakfast is included. Receipts are required."


class SlowFirstToken(ScriptedChat):
    """A model whose first piece comes after 50 ms and whose whole answer after 200 ms."""

    def complete(self, messages, **kw):  # type: ignore[no-untyped-def]
        c = super().complete(messages, **kw)
        time.sleep(0.2)
        return Completion(c.text, c.prompt_tokens, c.completion_tokens, first_token_s=0.05, total_s=0.2)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_an_answer_observes_its_time_to_first_token_and_its_retrieval(settings: Any, store: Any) -> None:
    emb = HashEmbedder()
    Indexer(settings, store, emb).process_batch([rec(change("travel", 1, HOTEL, title="Travel"))])
    qp = query_processor(settings, store, emb, generator=GeneratorChain(
        {"local": LLMGenerator(SlowFirstToken(), AnswerBudget())}, Router(["local"]), retry_backoff_s=0.01))
    names = ("streamrag_time_to_first_token_seconds", "streamrag_retrieval_seconds", "streamrag_answer_seconds")
    before = {n: (sample(f"{n}_count"), sample(f"{n}_sum")) for n in names}
    [a] = qp.answer_many([Query(query_id="q1", tenant="acme", text="hotel night in Berlin reimbursed")])
    assert a.status == "ok" and a.timings_ms["first_token"] == 50.0, a
    delta = {n: (sample(f"{n}_count") - c, sample(f"{n}_sum") - s) for n, (c, s) in before.items()}
    assert all(count == 1 for count, _ in delta.values()), delta
    t = a.timings_ms
    total = answer_latency_ms(t) / 1000
    ttft = (total * 1000 - t["generate"] - t.get("enrich", 0.0) + t["first_token"]) / 1000
    assert delta["streamrag_answer_seconds"][1] == pytest.approx(total)
    assert delta["streamrag_time_to_first_token_seconds"][1] == pytest.approx(ttft)
    assert ttft < total - 0.1  # the first piece, not the whole answer
    retrieval = sum(v for k, v in t.items() if k in RETRIEVAL_STAGES) / 1000
    assert "search" in t and delta["streamrag_retrieval_seconds"][1] == pytest.approx(retrieval)


def test_a_cache_hit_or_extractive_answer_counts_its_whole_time_as_first_token(settings: Any, store: Any) -> None:
    emb = HashEmbedder()
    Indexer(settings, store, emb).process_batch([rec(change("travel", 1, HOTEL, title="Travel"))])
    qp = query_processor(settings, store, emb)  # the settings' extractive answerer: no model, no first token
    before = sample("streamrag_time_to_first_token_seconds_sum")
    [a] = qp.answer_many([Query(query_id="q2", tenant="acme", text="hotel night in Berlin reimbursed")])
    assert "first_token" not in a.timings_ms
    after = sample("streamrag_time_to_first_token_seconds_sum")
    assert after - before == pytest.approx(answer_latency_ms(a.timings_ms) / 1000)


def rule_exprs() -> list[str]:
    out = []
    for f in sorted(PROM.glob("*.yml")):
        doc = yaml.safe_load(f.read_text())
        for g in (doc or {}).get("groups", []) if "groups" in (doc or {}) else []:
            out += [r["expr"] for r in g["rules"]]
    return out


def test_every_bucket_a_rule_reads_is_one_the_worker_exports() -> None:
    """A rule over ``le="3"`` when the worker exports ``le="3.0"`` (or no such bucket) would see nothing, silently."""
    import streamrag.core.telemetry as telemetry  # noqa: F401  (registers the worker's metrics)

    exported = generate_latest(REGISTRY).decode()
    buckets = set(re.findall(r'^(\w+)_bucket\{(?:[^}]*,)?le="([^"]+)"', exported, re.M))
    used = {(m, le) for e in rule_exprs() for m, le in re.findall(r'(\w+)_bucket\{[^}]*le="([^"]+)"', e)}
    assert used, "the SLO rules read histogram buckets"
    for metric, le in sorted(used):
        assert metric.startswith("streamrag_")
        if not any(m == metric for m, _ in buckets):
            pytest.fail(f"{metric} is not exported by the worker's registry")
        assert (metric, le) in buckets, f'{metric} has no bucket le="{le}"'
