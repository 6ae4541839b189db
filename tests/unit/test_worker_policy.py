"""Issue #34, the worker's side: what a query's message may decide is checked against operator policy by the
query processor as the worker builds it (flows.components.make_query_processor), whatever the gateway did.
The same attacks over Kafka: tests/integration/test_query_policy_kafka.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from prometheus_client import REGISTRY, generate_latest
from pydantic import ValidationError

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.answering import ExtractiveAnswerer
from streamrag.core.auth import sign_token
from streamrag.core.config import Experiment, ExperimentVariant, TenantKeySettings
from streamrag.core.errors import ConfigError
from streamrag.core.generation.backend import Draft, GenerationRequest
from streamrag.core.generation.expansion import QueryExpander
from streamrag.core.generation.usage import MemoryLedger, TokenBudget, today
from streamrag.core.query.gate import ID_TAKEN, INDEX_FORBIDDEN
from streamrag.core.query.processor import QueryProcessor, Reply
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows import query as query_flow
from streamrag.flows.components import make_query_processor
from streamrag.schemas.models import Answer, DeadLetter, Query
from tests.conftest import Indexer, change, rec
from tests.fakes import HashEmbedder, ScriptedChat

SECRET = "acme-secret-" + "a" * 32
GLOBEX = "globex-secret-" + "g" * 32
ISS, AUD = "https://idp.example", "streamrag"
SALARY = "salary bands for engineers reviewed"
EXPERIMENTS = [Experiment(name="gen", variants=[ExperimentVariant(name="a", share=1),
                                                  ExperimentVariant(name="b", share=1, generator=["local"])])]


def token(user: str = "mallory", roles: list[str] | None = None, tenant: str = "acme", secret: str = SECRET,
          **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": user, "tenant": tenant, "roles": roles or [], "iat": now, "exp": now + 300, "iss": ISS, "aud": AUD,
            **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def build(settings: Settings, store: LanceStore, monkeypatch: pytest.MonkeyPatch, auth: bool = True,
          **update: Any) -> QueryProcessor:
    monkeypatch.setenv("ACME_JWT", SECRET)
    monkeypatch.setenv("GLOBEX_JWT", GLOBEX)
    keys = {t: TenantKeySettings(secret_env=env, issuer=ISS, audience=AUD) for t, env in
            (("acme", "ACME_JWT"), ("globex", "GLOBEX_JWT"))}
    s = settings.model_copy(update={"profile": "production", "answer_min_score": 0.05, "auth_required": auth,
                                    "auth_tenants": keys, "gateway_experiments": EXPERIMENTS, **update})
    emb = HashEmbedder()
    Indexer(s, store, emb).process_batch([
        rec(change("pay", 1, "Salary bands for engineers are reviewed yearly.", acl={"users": [], "roles": ["hr"]})),
        rec(change("vac", 1, "Employees get twenty five days of paid vacation per year.")),
    ])
    return make_query_processor(s, embedder=emb, store=store)


def ask(qp: QueryProcessor, **body: Any) -> tuple[list[DeadLetter], list[Answer]]:
    body = {"query_id": f"q{time.perf_counter_ns()}", "tenant": "acme", "text": SALARY, **body}
    out = qp.process_batch([rec(json.dumps(body).encode())])
    return [o for _, o in out if isinstance(o, DeadLetter)], [o.answer for _, o in out if isinstance(o, Reply)]


def cited(answers: list[Answer]) -> set[str]:
    return {c.doc_id for a in answers for c in a.citations}


# -- 4: the message's principal ----------------------------------------------------------------------------
def test_message_roles_count_only_in_development_when_auth_is_off(settings: Settings, store: LanceStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch, auth=False)  # production profile, auth explicitly off
    _, answers = ask(qp, principal={"user": "mallory", "roles": ["hr", "admin"]})
    assert answers[0].status in ("ok", "no_answer") and "pay" not in cited(answers)
    dev = build(settings, store, monkeypatch, auth=False, profile="development")
    _, answers = ask(dev, principal={"user": "hana", "roles": ["hr"]})
    assert "pay" in cited(answers)  # development: the message's roles count (no tokens there)


def test_a_token_without_the_roles_the_message_claims(settings: Settings, store: LanceStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch)
    _, answers = ask(qp, principal={"user": "boss", "roles": ["hr", "admin"]}, auth_token=token())
    assert answers[0].status in ("ok", "no_answer") and "pay" not in cited(answers)
    _, answers = ask(qp, principal={"user": "boss", "roles": ["admin"]}, auth_token=token(),
                     options={"index": "default"})
    assert answers[0].error == INDEX_FORBIDDEN  # the message's admin role counts for nothing either
    _, hr = ask(qp, auth_token=token("hana", ["hr"]))
    assert "pay" in cited(hr)


# -- 5: options against policy -------------------------------------------------------------------------------
def test_another_index_version_only_for_admins_and_alike_for_every_name(settings: Settings, store: LanceStore,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch)
    dead, real = ask(qp, auth_token=token(), options={"index": "default"})
    _, ghost = ask(qp, auth_token=token(), options={"index": "ghost"})
    assert real[0].status == "error" and real[0].error == ghost[0].error == INDEX_FORBIDDEN
    assert real[0].code == ghost[0].code == dead[0].code == "forbidden"  # the gateway's 403
    assert "default" not in INDEX_FORBIDDEN and dead[0].stage == "validate"
    _, admin = ask(qp, auth_token=token("root", ["admin"]), text="vacation days per year", options={"index": "default"})
    assert admin[0].status == "ok" and admin[0].index == "default"


def test_a_generator_outside_the_tenants_chains_is_forbidden(settings: Settings, store: LanceStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch)
    _, answers = ask(qp, auth_token=token(), options={"generator": ["local"]})
    assert (answers[0].error or "").startswith("forbidden: options.generator local")
    _, ok = ask(qp, auth_token=token(), options={"generator": ["extractive"]})
    assert ok[0].status != "error"
    _, variant = ask(qp, auth_token=token(), options={"generator": ["local"]}, variant="gen/b")  # its A/B variant's
    assert variant[0].status != "error" and variant[0].variant == "gen/b"


@pytest.mark.parametrize(("body", "words"), [
    ({"options": {"expand": 5}}, "options.expand is at most 1"),
    ({"top_k": 100}, "top_k is at most 20"),
    ({"options": {"variants": ["x" * 4_000] * 8}}, "at most 3 options.variants"),
    ({"options": {"variants": ["y" * 501]}}, "at most 500 characters"),
])
def test_work_a_query_may_ask_is_bounded(settings: Settings, store: LanceStore, monkeypatch: pytest.MonkeyPatch,
                                         body: dict[str, Any], words: str) -> None:
    qp = build(settings, store, monkeypatch)
    dead, answers = ask(qp, auth_token=token(), **body)
    assert answers[0].status == "error" and answers[0].code == "invalid_query" and words in (answers[0].error or "")
    assert dead[0].stage == "validate" and dead[0].code == "invalid_query"


class Recording:
    """A generator that keeps the requests it gets (and answers extractively)."""

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def generate(self, req: GenerationRequest) -> Draft:
        self.requests.append(req)
        return ExtractiveAnswerer().generate(req)


def test_a_long_conversation_is_cut_to_its_latest_turns(settings: Settings, store: LanceStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch)
    qp.generator = rec_gen = Recording()
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "z" * 3_990} for i in range(20)]
    _, answers = ask(qp, auth_token=token("hana", ["hr"]), context=turns)
    assert answers[0].status == "ok"
    history = rec_gen.requests[0].history
    assert 0 < len(history) <= 10 and sum(len(c) for _, c in history) <= 8_000
    assert history[-1][1] == turns[-1]["content"]  # the latest turns are the ones kept


def test_deadline_ms_is_bounded(settings: Settings, store: LanceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        Query(query_id="q", tenant="acme", text="x", deadline_ms=2**63)
    qp = build(settings, store, monkeypatch)
    dead, answers = ask(qp, auth_token=token(), deadline_ms=2**63)
    assert answers[0].code == "invalid_query" and dead[0].stage in ("parse", "validate")


# -- 6: A/B labels -------------------------------------------------------------------------------------------
def lines() -> int:
    return len(generate_latest(REGISTRY).splitlines())


def test_forged_variant_labels_neither_grow_the_metrics_nor_reach_the_audit(settings: Settings, store: LanceStore,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch, auth=False, profile="development")
    qp.drift = None  # its per-tenant gauges appear after 500 questions, labels or not
    ask(qp, text="vacation days per year")  # every unlabelled series this test touches exists now
    before = lines()
    forged = [{"query_id": f"forged-{i}", "tenant": "acme", "text": "vacation days per year", "variant": f"x{i}/y"}
              for i in range(1_000)]
    out = qp.process_batch([rec(json.dumps(b).encode()) for b in forged])
    replies = [o for _, o in out if isinstance(o, Reply)]
    assert len(replies) == 1_000 and all(r.answer.variant == "" for r in replies)
    assert lines() == before, "forged variant labels added metric series"
    audits = [json.loads(m.value) for r in replies[:20]
              for m in query_flow.to_messages(qp.s, (RawRecord(value=b"{}", key=b"k"), r)) if m.topic == qp.s.topics.audit]
    assert audits and all(a["variant"] == "" for a in audits)
    _, real = ask(qp, text="vacation days per year", variant="gen/a")  # a configured variant keeps its label
    assert real[0].variant == "gen/a"


# -- 10: tokens, ids -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("tok", "words"), [
    (lambda: token(exp=int(datetime(2400, 1, 1, tzinfo=UTC).timestamp())), "lives longer"),
    (lambda: token(iat=None, exp=int(time.time()) + 2 * 86_400), "lives longer"),
    (lambda: token(aud="someone-else"), "audience"),
    (lambda: token(iss="https://evil.example"), "issuer"),
    (lambda: token(pad="p" * 9_000), "larger than 8192 bytes"),
])
def test_tokens_are_bounded_in_lifetime_size_audience_and_issuer(settings: Settings, store: LanceStore,
                                                                 monkeypatch: pytest.MonkeyPatch, tok: Any,
                                                                 words: str) -> None:
    qp = build(settings, store, monkeypatch)
    dead, answers = ask(qp, auth_token=tok())
    assert (answers[0].error or "").startswith("unauthenticated") and words in (answers[0].error or "").lower()
    assert dead[0].stage == "auth"


def test_production_keys_must_name_issuer_and_audience(settings: Settings, store: LanceStore,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_JWT", SECRET)
    s = settings.model_copy(update={"profile": "production",
                                    "auth_tenants": {"acme": TenantKeySettings(secret_env="ACME_JWT", issuer=ISS)}})
    with pytest.raises(ConfigError, match="tenant acme needs audience"):
        make_query_processor(s, embedder=HashEmbedder(), store=store)


def test_a_query_id_another_tenant_holds_gets_no_answer(settings: Settings, store: LanceStore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch)
    _, first = ask(qp, query_id="shared-id", auth_token=token("hana", ["hr"]))
    assert first[0].status == "ok"
    dead, answers = ask(qp, query_id="shared-id", tenant="globex", auth_token=token(tenant="globex", secret=GLOBEX))
    assert answers == [] and dead[0].error == ID_TAKEN and dead[0].code == "forbidden"
    dead, answers = ask(qp, query_id="shared-id", auth_token=sign_token(GLOBEX, "acme", "x"))  # unverified
    assert answers == [] and dead[0].stage == "auth"
    _, again = ask(qp, query_id="shared-id", auth_token=token("hana", ["hr"]))  # its own tenant again: answered
    assert again[0].status == "ok"


# -- 11: expansion -------------------------------------------------------------------------------------------
def test_expansion_spends_the_tenants_daily_tokens(settings: Settings, store: LanceStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch, auth=False, profile="development")
    chat = ScriptedChat(reply="- paid leave per year")
    ledger = MemoryLedger()
    qp.expander = QueryExpander(chat, tokens=TokenBudget(ledger, default=30))
    ask(qp, text="vacation days per year", options={"expand": 1})
    spent = ledger.used("acme", today())
    assert len(chat.calls) == 1 and spent > 0
    while ledger.used("acme", today()) < 30:
        ask(qp, text="vacation days per year", options={"expand": 1})
    calls = len(chat.calls)
    _, answers = ask(qp, text="vacation days per year", options={"expand": 1})
    assert answers[0].status == "ok" and len(chat.calls) == calls  # over its budget: no more expansion


def test_a_batchs_expansions_share_one_time_budget(settings: Settings, store: LanceStore,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch, auth=False, profile="development", expand_budget_ms=300)
    qp.expander = QueryExpander(ScriptedChat(reply="a b c d e f g h", delay_s=0.05), budget_ms=300)
    body = {"tenant": "acme", "text": "vacation days per year", "options": {"expand": 1}}
    t0 = time.perf_counter()
    out = qp.process_batch([rec({**body, "query_id": f"e{i}"}) for i in range(6)])
    assert len([o for _, o in out if isinstance(o, Reply)]) == 6
    assert sum(o.answer.timings_ms.get("expand", 0) for _, o in out if isinstance(o, Reply)) < 600
    assert time.perf_counter() - t0 < 10


# -- 12: secrets at rest -----------------------------------------------------------------------------------
def test_query_dead_letters_keep_no_bearer_token(settings: Settings, store: LanceStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch)
    bad = token(aud="someone-else")
    out = qp.process_batch([rec({"query_id": "dl", "tenant": "acme", "text": "x", "auth_token": bad}),
                            rec(b'not json ' + bad.encode())])
    letters = [m for item in out for m in query_flow.to_messages(qp.s, item) if m.topic == qp.s.topics.dead_letters]
    assert len(letters) == 2
    for m in letters:
        original = base64.b64decode(json.loads(m.value)["original_b64"])
        assert bad.encode() not in original and b"auth_token" not in original and b"eyJ" not in original


def test_the_audit_hash_is_keyed(settings: Settings, store: LanceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    qp = build(settings, store, monkeypatch, auth=False, profile="development")
    q = Query(query_id="h", tenant="acme", text="vacation days per year")
    reply = Reply(qp.answer_many([q])[0], None, q)

    def audited(key: bytes) -> str:
        (_, audit) = query_flow.to_messages(qp.s, (RawRecord(value=b"{}", key=b"h"), reply), key=key)
        return str(json.loads(audit.value)["query_sha256"])

    k1, k2 = b"k" * 32, b"j" * 32
    assert audited(k1) != hashlib.sha256(q.text.encode()).hexdigest()
    assert audited(k1) == hmac.new(k1, q.text.encode(), hashlib.sha256).hexdigest() != audited(k2)
    monkeypatch.setenv("STREAMRAG_AUDIT_HASH_KEY", "")
    with pytest.raises(ConfigError, match=r"at least 32"):
        query_flow.audit_key(qp.s.model_copy(update={"profile": "production"}))
    monkeypatch.setenv("STREAMRAG_AUDIT_HASH_KEY", "s" * 40)
    assert query_flow.audit_key(qp.s.model_copy(update={"profile": "production"})) == b"s" * 40
