import time
from typing import Any

import numpy as np
import pytest

from streamrag.connectors.cache_follower import CacheFollower
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.redis_cache import RedisCache
from streamrag.core.cache.policy import TenantPolicy, normalize, tenant_policy
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.config import CacheTenantSettings
from streamrag.core.generation.backend import Draft, GenerationRequest
from streamrag.core.query.processor import QueryProcessor
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings
from streamrag.flows import ingest as ingest_flow
from streamrag.schemas.models import Answer, CacheEntry, CitedDoc, IndexEvent, Query
from tests.builders import Consumed
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder, MemoryPayloadStore, ScriptedChat


def setup(settings: Settings, store: LanceStore, threshold: float = 0.9) -> tuple[Indexer, QueryProcessor, SemanticCache]:
    emb = HashEmbedder()
    s = settings.model_copy(update={"answer_min_score": 0.05})
    cache = SemanticCache(MemoryPayloadStore(), default_policy=TenantPolicy(threshold=threshold), is_current=store.cites_current)
    ing = Indexer(s, store, emb)
    ing.process_batch([
        rec(change("vac", 1, "Employees get twenty five days of paid vacation per year.")),
        rec(change("pay", 1, "Salary bands for engineers are reviewed yearly.", acl={"users": [], "roles": ["hr"]})),
    ])
    return ing, query_processor(s, store, emb, cache=cache), cache


def q(text: str, tenant: str = "acme", user: str | None = "u1", roles: list[str] | None = None) -> Query:
    return Query.model_validate({"query_id": text[:10], "tenant": tenant, "text": text,
                                 "principal": {"user": user, "roles": roles or []}})


def test_normalize() -> None:
    assert normalize("  How many   DAYS? ") == "how many days"


def test_exact_then_semantic_hits_and_below_threshold_misses(settings: Settings, store: LanceStore) -> None:
    _, qp, cache = setup(settings, store)
    (a,) = qp.answer_many([q("how many vacation days do employees get")])
    assert a.status == "ok" and not a.cached
    (b,) = qp.answer_many([q("How many vacation days do employees get?")])
    assert b.cached and b.cache_lookup == "exact" and b.answer == a.answer
    (c,) = qp.answer_many([q("how many vacation days do employees get", user="u2")])  # other scope: semantic
    assert c.cached and c.cache_lookup == "semantic"
    (d,) = qp.answer_many([q("paid vacation days per year for employees overall")])
    assert not d.cached
    assert cache.stats.as_dict()["hit_rate"] > 0


def test_tenant_and_acl_safety(settings: Settings, store: LanceStore) -> None:
    _, qp, _ = setup(settings, store)
    (a,) = qp.answer_many([q("salary bands engineers", roles=["hr"])])
    assert a.citations and any(c.doc_id == "pay" for c in a.citations)
    (b,) = qp.answer_many([q("salary bands engineers", user="u9")])  # no hr role
    assert not b.cached and all(c.doc_id != "pay" for c in b.citations)
    (c,) = qp.answer_many([q("salary bands engineers", tenant="other", roles=["hr"])])
    assert not c.cached


def test_a_newer_version_invalidates_through_the_index_event_the_follower_reads(settings: Settings,
                                                                               store: LanceStore) -> None:
    """The real path: the ingest worker's index event (its message, as it goes to the index-events topic) read by
    the query worker's cache follower drops the entry citing the old version; nothing calls ``invalidate`` here."""
    ing, qp, cache = setup(settings, store)
    qp.answer_many([q("vacation days employees")])
    assert qp.answer_many([q("vacation days employees")])[0].cached
    r = rec(change("vac", 2, "Employees now get thirty days of paid vacation."), key=b"acme/vac")
    (event,) = ing.process_batch([r])
    assert isinstance(event, IndexEvent) and event.status == "indexed"
    msg = ingest_flow.to_message(settings, ingest_flow.Finished(r, event))
    follower = CacheFollower(settings.kafka, settings.topics, settings.json_limits, cache, sealer_for(settings))
    follower.handle(Consumed.of(msg))  # type: ignore[arg-type]
    (a,) = qp.answer_many([q("vacation days employees")])
    assert not a.cached and "thirty" in a.answer


def test_rebuilt_entry_is_checked_against_the_index_once(settings: Settings, store: LanceStore) -> None:
    """An entry from the topic (or Redis) may predate changes this worker never saw as events."""
    ing, qp, cache = setup(settings, store)
    qp.answer_many([q("vacation days employees")])
    entries = list(cache.storage.lru.values())
    ing.process_batch([rec(change("vac", 2, "Employees now get thirty days of paid vacation."))])
    calls: list[Any] = []

    def is_current(tenant: str, cites: list[tuple[str, int]]) -> bool:
        calls.append(cites)
        return store.cites_current(tenant, cites)

    fresh = SemanticCache(cache.storage.payloads, default_policy=TenantPolicy(threshold=0.9), is_current=is_current)
    for e in entries:
        fresh.apply_topic_record(e)
    qp.cache = fresh
    (a,) = qp.answer_many([q("vacation days employees")])
    assert not a.cached and "thirty" in a.answer and len(calls) == 1
    (b,) = qp.answer_many([q("vacation days employees")])
    assert b.cached and len(calls) == 1  # built here, after the change: current without a check


def test_rebuilt_entries_are_verified_in_bulk(settings: Settings, store: LanceStore) -> None:
    ing, qp, cache = setup(settings, store)
    qp.answer_many([q("vacation days employees")])
    qp.answer_many([q("salary bands engineers", roles=["hr"])])
    entries = list(cache.storage.lru.values())
    assert len(entries) == 2
    ing.process_batch([rec(change("pay", 2, "Salary bands are now reviewed twice a year.", acl={"users": [], "roles": ["hr"]}))])
    calls: list[Any] = []

    def is_current(tenant: str, cites: list[tuple[str, int]]) -> bool:
        calls.append(cites)
        return store.cites_current(tenant, cites)

    fresh = SemanticCache(cache.storage.payloads, default_policy=TenantPolicy(threshold=0.9), is_current=is_current,
                          live_versions=store.live_versions)
    for e in entries:
        fresh.apply_topic_record(e)
    assert fresh.pending() == 2
    assert fresh.verify_pending() == 2
    assert fresh.pending() == 0 and fresh.size() == 1  # the entry citing pay v1 is gone
    qp.cache = fresh
    (a,) = qp.answer_many([q("vacation days employees")])
    assert a.cached and not calls  # verified in bulk: no index read on the hit
    (b,) = qp.answer_many([q("salary bands engineers", roles=["hr"])])
    assert not b.cached and "twice" in b.answer


def test_entry_built_across_an_index_event_is_not_stored(settings: Settings, store: LanceStore) -> None:
    """The race: a newer version's event arrives between retrieval and put."""
    ing, qp, cache = setup(settings, store)
    real = qp.generator

    class AnswerThenEvent:
        name = real.name

        def generate(self, req: GenerationRequest) -> Draft:
            out = real.generate(req)
            cache.invalidate("acme", "vac", 2)  # the follower thread saw v2 meanwhile
            return out

    qp.generator = AnswerThenEvent()
    (a,) = qp.answer_many([q("vacation days employees")])
    assert a.status == "ok" and not a.cached and cache.size() == 0
    qp.generator = real
    ing.process_batch([rec(change("vac", 2, "Employees now get thirty days of paid vacation."))])
    (b,) = qp.answer_many([q("vacation days employees")])
    assert not b.cached and "thirty" in b.answer and cache.size() == 1


def test_semantic_hit_leaves_an_exact_alias(settings: Settings, store: LanceStore) -> None:
    ing, qp, cache = setup(settings, store)
    qp.answer_many([q("how many vacation days do employees get")])
    (a,) = qp.answer_many([q("how many vacation days do employees get", user="u2")])
    assert a.cached and a.cache_lookup == "semantic"
    (b,) = qp.answer_many([q("how many vacation days do employees get", user="u2")])
    assert b.cached and b.cache_lookup == "exact" and b.answer == a.answer
    ing.process_batch([rec(change("vac", 2, "Employees now get thirty days of paid vacation."))])
    cache.invalidate("acme", "vac", 2)
    assert not cache.index.alias
    (c,) = qp.answer_many([q("how many vacation days do employees get", user="u2")])
    assert not c.cached and "thirty" in c.answer


def test_redis_down_bypasses_cache(settings: Settings, store: LanceStore) -> None:
    r = RedisCache("redis://127.0.0.1:1/0", timeout_s=0.05)
    assert r.get("t", "k") is None and not r.healthy() and r.errors >= 1
    emb = HashEmbedder()
    qp = query_processor(settings.model_copy(update={"answer_min_score": 0.05}), store, emb,
                        cache=SemanticCache(r, lru_size=0))
    Indexer(settings, store, emb).process_batch([rec(change("vac", 1, "Vacation is twenty days."))])
    first, second = qp.answer_many([q("vacation")])[0], qp.answer_many([q("vacation")])[0]
    assert first.status == second.status == "ok" and not first.cached and not second.cached  # answered, uncached
    assert not r.healthy() and qp.cache is not None and qp.cache.size() <= 1  # nothing served from a dead Redis


def entry_for(i: int, tenant: str = "acme") -> CacheEntry:
    v = np.zeros(8, dtype=np.float32)
    v[i % 8] = 1.0
    ans = Answer(query_id=f"q{i}", tenant=tenant, status="ok", answer=f"answer {i}")
    return CacheEntry(tenant=tenant, cache_key=f"key{i:04d}", normalized_text=f"question {i}", scope="s",
                      options_hash="o", embedding=v.tolist(), answer=ans, cites=[CitedDoc(doc_id=f"d{i}", version=1)])


@pytest.mark.parametrize("n", [1, 1000])
def test_rebuild_from_topic_records(n: int) -> None:
    """A starting worker rebuilds every entry from the topic; tombstones remove them again."""
    fresh = SemanticCache(MemoryPayloadStore(), default_policy=TenantPolicy(threshold=0.9))
    entries = [entry_for(i) for i in range(n)]
    for e in entries:
        fresh.apply_topic_record(e)
    assert fresh.size() == n
    assert sum(len(g) for g in fresh.index.groups.values()) == n
    assert len(fresh.index.by_doc) == n
    for e in entries[: n // 2]:
        fresh.apply_topic_record(None, f"acme/{e.cache_key}")
    assert fresh.size() == n - n // 2
    assert fresh.invalidate("acme", f"d{n - 1}", 2) == [entries[-1].cache_key]


def test_not_serving_while_the_follower_is_down(settings: Settings, store: LanceStore) -> None:
    _, qp, cache = setup(settings, store)
    qp.answer_many([q("vacation days employees")])
    assert qp.answer_many([q("vacation days employees")])[0].cached
    cache.serving = False
    (a,) = qp.answer_many([q("vacation days employees")])
    assert not a.cached and a.status == "ok" and cache.stats.bypassed >= 1


def test_ttl_per_tenant_and_document_type(settings: Settings, store: LanceStore) -> None:
    from datetime import UTC, datetime

    acme = {"acme": CacheTenantSettings(ttl_s=600, ttl_by_type={"news": 60})}
    pol = tenant_policy("acme", TenantPolicy(ttl_s=3600), acme)
    assert pol.ttl_for([]) == 600 and pol.ttl_for(["news", "memo"]) == 60
    assert tenant_policy("other", TenantPolicy(ttl_s=3600), acme).ttl_s == 3600
    emb = HashEmbedder()
    cache = SemanticCache(MemoryPayloadStore(), tenant_overrides=acme)
    qp = query_processor(settings.model_copy(update={"answer_min_score": 0.05}), store, emb, cache=cache)
    Indexer(settings, store, emb).process_batch([rec(change("n", 1, "Breaking news about rates.", metadata={"type": "news"}))])
    qp.answer_many([q("breaking news rates")])
    (entry,) = cache.storage.lru.values()
    assert entry.expires_at is not None
    left = (entry.expires_at - datetime.now(UTC)).total_seconds()
    assert 50 < left <= 60


@pytest.mark.parametrize(("a", "b", "conflict"), [
    ("ALDH1 expression is associated with better breast cancer outcomes.",
     "ALDH1 expression is associated with poorer prognosis in breast cancer.", True),
    ("Tau phosphorylation causing GABA neuron degeneration.", "Tau phosphorylation, delaying GABA neuron degeneration.", True),
    ("revenue in 2019", "revenue in 2020", True),
    ("is the drug safe", "isn't the drug safe", True),
    ("X lowers Y", "X raises Y", True),
    ("0-dimensional biomaterials show inductive properties.", "Is it true that 0-dimensional biomaterials show inductive properties?", False),
    ("Does X cause Y", "X causes Y", False),
    ("X increased Y", "X increases Y", False),
])
def test_polarity_conflict(a: str, b: str, conflict: bool) -> None:
    from streamrag.core.cache.policy import polarity_conflict

    assert polarity_conflict(a, b) is conflict


def test_polarity_guard_refuses_the_opposite_question(settings: Settings, store: LanceStore) -> None:
    _, qp, cache = setup(settings, store, threshold=0.5)
    (a,) = qp.answer_many([q("do employees get more vacation days")])
    assert a.status == "ok" and not a.cached
    (b,) = qp.answer_many([q("do employees get fewer vacation days")])
    assert not b.cached and cache.stats.guarded == 1
    cache.default_policy = TenantPolicy(threshold=0.5, guard=False)
    (c,) = qp.answer_many([q("do employees get less vacation days")])
    assert c.cached and c.cache_lookup == "semantic"


def test_event_memory_is_bounded(settings: Settings, store: LanceStore) -> None:
    _, qp, cache = setup(settings, store)
    cache.tracker.seen_max = 50
    for i in range(60):
        cache.invalidate("acme", f"doc{i}", 2)
    assert len(cache.tracker.seen) <= 50
    # answers built across the overflow are stored but checked against the index on first hit
    cache.tracker.lost_at = time.time() + 1
    qp.answer_many([q("vacation days employees")])
    assert cache.size() == 1 and cache.pending() == 1


def test_a_fallback_answer_is_not_cached(settings: Settings, store: LanceStore) -> None:
    from streamrag.core.generation.backend import GenerationError
    from tests.unit.test_generation import chain

    _, qp, _ = setup(settings, store)
    down = ScriptedChat(fail=GenerationError("server down"))
    qp.generator = chain({"openai": down}, ["openai"])
    (a,) = qp.answer_many([q("how many vacation days do employees get")])
    assert a.generator == "extractive" and a.fallback
    up = ScriptedChat(reply="Employees get twenty five days of paid vacation per year [1].")
    qp.generator = chain({"openai": up}, ["openai"])
    (b,) = qp.answer_many([q("how many vacation days do employees get")])
    assert not b.cached and b.generator == "fake:fake" and len(up.calls) == 1  # the model is back: asked again
    (c,) = qp.answer_many([q("how many vacation days do employees get")])
    assert c.cached and c.generator == "fake:fake"
