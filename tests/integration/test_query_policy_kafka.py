"""Issue #34 over real Kafka: a production query worker trusts a query message only as far as its token and the
operator's policy allow (identity, options, A/B labels, token lifetime and claims, query ids of other tenants,
no bearer tokens in dead letters, keyed audit hashes), and the gateway's reply router hands a request only its
own tenant's answer."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest

from streamrag.connectors.kafka_replies import ReplyRouter
from streamrag.core.query.gate import ID_TAKEN, INDEX_FORBIDDEN
from streamrag.core.settings import Settings
from tests.integration.conftest import chunk_rows as rows
from tests.integration.conftest import produce, read_topic, wait_for

pytestmark = pytest.mark.integration
ACME, GLOBEX, AUDIT_KEY = "it-acme-" + "a" * 32, "it-globex-" + "g" * 32, "it-audit-key-" + "k" * 32
ISS, AUD = "https://idp.example", "streamrag"


def token(user: str = "mallory", roles: list[str] | None = None, tenant: str = "acme", secret: str = ACME,
          **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": user, "tenant": tenant, "roles": roles or [], "iat": now, "exp": now + 300, "iss": ISS, "aud": AUD,
            **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def query(text: str = "What are the salary bands for engineers?", **body: Any) -> tuple[str, dict[str, Any]]:
    qid = body.pop("query_id", None) or uuid.uuid4().hex
    return qid, {"query_id": qid, "tenant": "acme", "text": text, **body}


@pytest.fixture(scope="module")
def worker(settings: Settings, start_worker: Any) -> Any:
    produce(settings, settings.topics.documents, [
        ("acme/vacation", {"op": "upsert", "tenant": "acme", "doc_id": "vacation", "version": 1, "title": "vacation",
                           "text": "Employees get twenty five days of paid vacation per year."}),
        ("acme/salaries", {"op": "upsert", "tenant": "acme", "doc_id": "salaries", "version": 1, "title": "salaries",
                           "text": "The salary bands for engineers are confidential and reviewed yearly.",
                           "acl": {"users": [], "roles": ["hr"]}}),
    ])
    start_worker("ingest")
    wait_for(lambda: len(rows(settings)) >= 2, timeout=120)
    keys = {t: {"secret_env": env, "issuer": ISS, "audience": AUD} for t, env in (("acme", "IT_ACME_JWT"),
                                                                                   ("globex", "IT_GLOBEX_JWT"))}
    experiments = [{"name": "gen", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1}]}]
    return start_worker("query", overrides={
        "STREAMRAG_PROFILE": "production", "STREAMRAG_AUTH_TENANTS": json.dumps(keys),
        "STREAMRAG_GATEWAY_EXPERIMENTS": json.dumps(experiments), "STREAMRAG_METRICS_PORT": "0",
        "IT_ACME_JWT": ACME, "IT_GLOBEX_JWT": GLOBEX, "STREAMRAG_AUDIT_HASH_KEY": AUDIT_KEY,
        # the production profile needs the payload keys (#38): one AES-256 key, URL-safe base64
        "STREAMRAG_ENCRYPTION_KEYS": base64.urlsafe_b64encode(bytes(range(32))).decode(),
    })


def ask(settings: Settings, *queries: tuple[str, dict[str, Any]], timeout: float = 150) -> dict[str, dict[str, Any]]:
    """Each query's final answer (one per query)."""
    produce(settings, settings.topics.queries, list(queries))
    ids = {qid for qid, _ in queries}
    msgs = read_topic(settings, settings.topics.answers,
                      lambda m: ids <= {a["query_id"] for a in m if a and a.get("kind") == "final"}, timeout=timeout)
    return {a["query_id"]: a for a in msgs if a and a.get("kind") == "final" and a["query_id"] in ids}


def dead_letters(settings: Settings, ids: set[str], timeout: float = 60) -> dict[str, dict[str, Any]]:
    def key(d: dict[str, Any]) -> str:
        return base64.b64decode(d.get("original_key_b64") or "").decode()

    msgs = read_topic(settings, settings.topics.dead_letters, lambda m: ids <= {key(d) for d in m if d}, timeout=timeout)
    return {key(d): d for d in msgs if d and key(d) in ids}


def test_message_roles_count_for_nothing_beside_a_token(settings: Settings, worker: Any) -> None:
    claimed = {"user": "boss", "roles": ["hr", "admin"]}
    spoof = query(principal=claimed, auth_token=token())
    admin = query(principal=claimed, auth_token=token(), options={"index": "default"})
    hr = query(auth_token=token("hana", ["hr"]))
    got = ask(settings, spoof, admin, hr)
    assert got[spoof[0]]["status"] in ("ok", "no_answer")
    assert "salaries" not in {c["doc_id"] for c in got[spoof[0]]["citations"]}
    assert got[admin[0]]["error"] == INDEX_FORBIDDEN
    assert "salaries" in {c["doc_id"] for c in got[hr[0]]["citations"]}


def test_options_are_held_to_policy(settings: Settings, worker: Any) -> None:
    t = token()
    real, ghost = query(auth_token=t, options={"index": "default"}), query(auth_token=t, options={"index": "ghost"})
    gen = query(auth_token=t, options={"generator": ["local"]})
    bounded = [query(auth_token=t, options={"expand": 5}), query(auth_token=t, top_k=100),
               query(auth_token=t, options={"variants": ["v" * 4_000] * 8}), query(auth_token=t, deadline_ms=2**63)]
    admin = query("How many vacation days do employees get?", auth_token=token("root", ["admin"]),
                  options={"index": "default"})
    got = ask(settings, real, ghost, gen, admin, *bounded)
    assert got[real[0]]["error"] == got[ghost[0]]["error"] == INDEX_FORBIDDEN  # the same words: no names told
    assert got[gen[0]]["error"].startswith("forbidden: options.generator")
    for qid, _ in bounded:
        assert got[qid]["status"] == "error" and got[qid]["error"].startswith("invalid query"), got[qid]
    assert got[admin[0]]["status"] == "ok" and got[admin[0]]["index"] == "default"


def test_tokens_too_long_lived_foreign_or_large_are_refused(settings: Settings, worker: Any) -> None:
    far = int(datetime(2400, 1, 1, tzinfo=UTC).timestamp())
    bad = [query(auth_token=token(exp=far)), query(auth_token=token(aud="another-app")),
           query(auth_token=token(iss="https://evil.example")), query(auth_token=token(pad="p" * 9_000))]
    got = ask(settings, *bad)
    for qid, _ in bad:
        assert got[qid]["status"] == "error" and got[qid]["error"].startswith("unauthenticated"), got[qid]
    letters = dead_letters(settings, {qid for qid, _ in bad})
    for qid, body in bad:  # 12: a refused query's dead letter keeps no bearer token
        original = base64.b64decode(letters[qid]["original_b64"])
        assert letters[qid]["stage"] == "auth" and body["auth_token"].encode() not in original
        assert b"auth_token" not in original and b"eyJ" not in original


def test_another_tenants_query_under_the_same_id_cannot_answer_or_fail_it(settings: Settings, worker: Any) -> None:
    router = ReplyRouter(settings.kafka, [settings.topics.answers])
    router.start()
    got: list[dict[str, Any] | str] = []
    done = threading.Event()
    qid, body = query("How many vacation days do employees get?", auth_token=token("hana"))

    def deliver(item: dict[str, Any] | str) -> None:
        got.append(item)
        if isinstance(item, dict) and item.get("kind") == "final":
            done.set()

    try:
        assert router.register(qid, deliver, tenant="acme")
        produce(settings, settings.topics.queries, [(qid, body)])
        assert done.wait(120)
        # globex, with a valid token of its own, and a forger claiming acme, reuse the id
        produce(settings, settings.topics.queries, [
            (qid, {"query_id": qid, "tenant": "globex", "text": "anything", "auth_token": token(tenant="globex", secret=GLOBEX)}),
            (qid, {"query_id": qid, "tenant": "acme", "text": "anything", "auth_token": token(secret=GLOBEX)}),
        ])
        wait_for(lambda: len([d for d in read_topic(settings, settings.topics.dead_letters, lambda m: False, timeout=2)
                              if d and base64.b64decode(d.get("original_key_b64") or "").decode() == qid]) >= 2, timeout=60)
        # the router, too, hands a request only its tenant's messages
        produce(settings, settings.topics.answers, [(qid, {"kind": "final", "query_id": qid, "tenant": "globex",
                                                           "status": "error", "error": "forged"})])
        time.sleep(2)
    finally:
        router.stop()
    finals = [a for a in got if isinstance(a, dict) and a.get("kind") == "final"]
    assert len(finals) == 1 and finals[0]["tenant"] == "acme" and finals[0]["status"] == "ok", got
    answers = [a for a in read_topic(settings, settings.topics.answers, lambda m: False, timeout=3)
               if a and a.get("query_id") == qid and a.get("kind") == "final" and a.get("error") != "forged"]
    assert [a["tenant"] for a in answers] == ["acme"]  # the worker answered neither reuse
    letters = [d for d in read_topic(settings, settings.topics.dead_letters, lambda m: False, timeout=2)
               if d and base64.b64decode(d.get("original_key_b64") or "").decode() == qid]
    assert {d["error"] for d in letters} >= {ID_TAKEN}


def test_audit_hashes_are_keyed_and_labels_are_configured_ones(settings: Settings, worker: Any) -> None:
    text = "How many vacation days do employees get?"
    forged, real = query(text, auth_token=token(), variant="x1/y"), query(text, auth_token=token(), variant="gen/a")
    got = ask(settings, forged, real)
    assert got[forged[0]]["variant"] == "" and got[real[0]]["variant"] == "gen/a"
    ids = {forged[0], real[0]}
    audits = {a["query_id"]: a for a in read_topic(settings, settings.topics.audit,
                                                    lambda m: ids <= {a["query_id"] for a in m if a}) if a}
    assert audits[forged[0]]["variant"] == "" and audits[real[0]]["variant"] == "gen/a"
    digest = audits[real[0]]["query_sha256"]
    assert digest != hashlib.sha256(text.encode()).hexdigest()
    assert digest == hmac.new(AUDIT_KEY.encode(), text.encode(), hashlib.sha256).hexdigest()
