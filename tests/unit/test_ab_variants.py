"""A/B variants beyond the gateway: the variant reaches the answer, the audit record and the worker's metrics;
cache entries are keyed by everything that shapes an answer; `streamrag ab report` and its tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from prometheus_client import REGISTRY

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ab_report import MIN_N, compare, figures, report
from streamrag.core.cache.policy import TenantPolicy, options_hash
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.errors import IndexRefused
from streamrag.core.generation.answerer import answerer_tag
from streamrag.core.index_versions import IndexView
from streamrag.core.query.processor import Reply
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows import query as query_flow
from streamrag.schemas.models import AuditRecord, Feedback, Query
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder, MemoryPayloadStore


def q(text: str = "how many vacation days do employees get", variant: str = "", **kw: object) -> Query:
    return Query.model_validate({"query_id": f"q{random.random()}", "tenant": "acme", "text": text,
                                 "principal": {"user": "u1"}, "variant": variant, **kw})


def test_the_variant_reaches_the_answer_the_audit_and_the_metrics(settings: Settings, store: LanceStore) -> None:
    emb = HashEmbedder()
    Indexer(settings, store, emb).process_batch([rec(change("vac", 1, "Employees get twenty five days of paid vacation."))])
    qp = query_processor(settings, store, emb)
    label = {"variant": "fusion1/rrf", "status": "ok", "generator": "extractive"}
    before = REGISTRY.get_sample_value("streamrag_variant_answers_total", label) or 0
    query = q(variant="fusion1/rrf")
    (a,) = qp.answer_many([query])
    assert a.status == "ok" and a.variant == "fusion1/rrf"
    _, audit = query_flow.to_messages(settings, (RawRecord(value=b"{}", key=b"k"), Reply(a, None, query)))
    assert json.loads(audit.value)["variant"] == "fusion1/rrf"
    assert REGISTRY.get_sample_value("streamrag_variant_answers_total", label) == before + 1
    (plain,) = qp.answer_many([q()])
    assert plain.variant == ""


def test_cache_entries_are_not_shared_across_variants_answerers_or_conversations(settings: Settings, store: LanceStore) -> None:
    emb = HashEmbedder()
    Indexer(settings, store, emb).process_batch([rec(change("vac", 1, "Employees get twenty five days of paid vacation."))])
    payloads = MemoryPayloadStore()

    def cache(answerer: str) -> SemanticCache:
        return SemanticCache(payloads, default_policy=TenantPolicy(threshold=0.99), is_current=store.cites_current,
                             answerer=answerer)

    first = query_processor(settings, store, emb, cache=cache("model-a"))
    (a,) = first.answer_many([q()])
    assert not a.cached and first.answer_many([q()])[0].cached  # the same question again: served from the cache
    assert not first.answer_many([q(variant="exp/b")])[0].cached  # another variant never gets it
    assert not first.answer_many([q(context=[{"role": "user", "content": "about contractors"}])])[0].cached
    switched = query_processor(settings, store, emb, cache=cache("model-b"))  # a model or prompt switch
    assert not switched.answer_many([q()])[0].cached


def test_the_answerer_tag_follows_the_model_and_the_prompt(settings: Settings) -> None:
    local = settings.model_copy(update={"generator": "local,extractive"})
    base = answerer_tag(local)
    other_model = local.model_copy(update={"local_model": "smollm2-135m"})
    shorter = local.model_copy(update={"answer_sentences": 2})
    assert len({base, answerer_tag(other_model), answerer_tag(shorter)}) == 3
    assert answerer_tag(local) == base  # stable
    # an extractive-only chain does not depend on which local model is configured
    assert answerer_tag(settings) == answerer_tag(settings.model_copy(update={"local_model": "smollm2-135m"}))
    assert options_hash(q(), "auto", 0.5, "none", answerer="a") != options_hash(q(), "auto", 0.5, "none", answerer="b")


def audits(variant: str, n: int, no_answer: float, latency: float, rng: random.Random) -> list[AuditRecord]:
    return [AuditRecord(query_id=f"{variant}{i}", tenant="acme", status="no_answer" if rng.random() < no_answer else "ok",
                        latency_ms=rng.gauss(latency, latency / 10), variant=variant) for i in range(n)]


def thumbs(variant: str, n: int, up: float, rng: random.Random) -> list[Feedback]:
    return [Feedback(query_id=f"{variant}{i}", tenant="acme", rating=1 if rng.random() < up else -1, variant=variant)
            for i in range(n)]


def test_ab_report_finds_real_differences_and_none_where_there_are_none() -> None:
    rng = random.Random(7)
    a = audits("exp/control", 400, 0.10, 800, rng) + audits("exp/b", 400, 0.25, 1200, rng)
    fb = thumbs("exp/control", 300, 0.5, rng) + thumbs("exp/b", 300, 0.7, rng)
    figs = figures("exp", [*a, *audits("other/x", 50, 0.5, 10, rng)], fb, ["exp/control", "exp/b"])
    assert list(figs) == ["exp/control", "exp/b"] and figs["exp/b"].answers == 400
    by = {c.metric: c for c in compare(figs)}
    assert all(by[m].significant for m in ("positive", "no_answer", "latency"))
    assert by["positive"].effect is not None and by["positive"].effect > 0.1
    assert not by["fallbacks"].significant
    same = figures("exp", audits("exp/control", 300, 0.2, 900, rng) + audits("exp/b", 300, 0.2, 900, rng),
                   thumbs("exp/control", 300, 0.6, rng) + thumbs("exp/b", 300, 0.6, rng))
    assert not any(c.significant for c in compare(same))
    assert report("exp", same)["verdict"] == "no significant difference"


def test_ab_report_says_when_there_is_not_enough_data() -> None:
    rng = random.Random(1)
    figs = figures("exp", audits("exp/control", MIN_N - 1, 0.1, 800, rng) + audits("exp/b", 500, 0.9, 100, rng), [])
    comps = compare(figs)
    assert all(c.p_value is None and not c.significant and "not enough data" in c.note for c in comps)
    assert report("exp", figs)["verdict"] == "not enough data yet for any test"
    assert report("exp", {})["verdict"] == "no data for this experiment"


def test_a_query_chooses_its_generator_chain() -> None:
    from tests.fakes import ScriptedChat
    from tests.unit.test_generation import chain, req

    local = ScriptedChat()
    c = chain({"local": local}, ["local"])
    d = c.generate(req(chain=["extractive"]))  # the variant's chain, over the configured one
    assert d.generator == "extractive" and d.fallback == [] and local.calls == []
    assert c.generate(req()).generator == "fake:fake"


def test_a_query_naming_an_index_version_is_answered_on_it(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"answer_min_score": 0.05})
    emb = HashEmbedder()
    views = {}
    for name in ("default", "green"):
        store = LanceStore(str(tmp_path / name), fts_rebuild_every_s=0)
        Indexer(s, store, emb).process_batch([rec(change("vac", 1, f"Employees get vacation days ({name})."))])
        views[name] = IndexView(name, s, store, emb)

    class Views:
        def current(self) -> IndexView:
            return views["default"]

        def view(self, name: str) -> IndexView:
            if name not in views:
                raise IndexRefused(f"no index named {name!r}")
            return views[name]

    qp = query_processor(s, views["default"].store, emb, views=Views())
    plain, green, unknown = qp.answer_many([q("vacation"), q("vacation", options={"index": "green"}),
                                            q("vacation", options={"index": "blue"})])
    assert plain.index == "default" and plain.status == "ok" and "(default)" in plain.answer
    assert green.index == "green" and green.status == "ok" and "(green)" in green.answer
    assert unknown.status == "error" and "blue" in (unknown.error or "")


def test_the_gateway_sets_a_variants_generator_and_index() -> None:
    from streamrag.core.config import Experiment
    from tests.unit.test_gateway import make

    exp = Experiment.model_validate({"name": "gen", "variants": [
        {"name": "local", "share": 0.5}, {"name": "plain", "share": 0.5, "generator": ["extractive"], "index": "green",
                                           "prompt": "brief"}]})
    c, fake = make(gateway_experiments=[exp.model_dump()])
    seen = set()
    for i in range(40):
        r = c.post("/v1/query", json={"tenant": "acme", "text": "q", "principal": {"user": f"u{i}"}})
        o = fake.queries[-1].options
        seen.add((r.headers["X-Streamrag-Variant"], tuple(o.generator or ()), o.index, o.prompt, fake.queries[-1].variant))
    assert seen == {("gen/local", (), None, None, "gen/local"), ("gen/plain", ("extractive",), "green", "brief", "gen/plain")}


def test_a_named_prompt_sets_the_role_and_length_and_keeps_sources_as_data() -> None:
    from streamrag.core.generation.prompt import SOURCES_ARE_DATA, approx_tokens, build_prompt
    from tests.unit.test_generation import ranked as ranked_texts

    p = build_prompt("How much?", ranked_texts("Hotels get 180 euros."), approx_tokens, 1024, sentences=2,
                     role="You answer like a pirate.")
    assert p.messages[0]["content"] == f"You answer like a pirate. {SOURCES_ARE_DATA}"
    assert "at most 2 sentences" in p.messages[-1]["content"]


def test_a_query_asks_for_a_named_prompt_and_an_unknown_one_is_refused(settings: Settings, store: LanceStore) -> None:
    from tests.fakes import ScriptedChat
    from tests.unit.test_generation import chain

    s = settings.model_copy(update={"answer_min_score": 0.05, "prompts": {"brief": {"system": "Be brief.", "sentences": 1}}})
    emb = HashEmbedder()
    Indexer(s, store, emb).process_batch([rec(change("vac", 1, "Employees get twenty five days of paid vacation."))])
    chat = ScriptedChat()
    qp = query_processor(s, store, emb, generator=chain({"local": chat}, ["local"]))
    brief, plain, unknown = qp.answer_many([q(options={"prompt": "brief"}), q(), q(options={"prompt": "nope"})])
    assert brief.status == plain.status == "ok" and unknown.status == "error" and "nope" in (unknown.error or "")
    systems = [m[0]["content"] for m in chat.calls]
    assert systems[0].startswith("Be brief.") and not systems[1].startswith("Be brief.")
    assert "at most 1 sentences" in chat.calls[0][-1]["content"]
    assert options_hash(q(options={"prompt": "brief"}), "auto", 0.5, "none") != options_hash(q(), "auto", 0.5, "none")
