"""Verified identity: with auth on, tenant, user and roles come only from a signed token's claims."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streamrag.connectors.auth_keys import load_verifier
from streamrag.core.auth import sign_token
from streamrag.core.config import TenantKeySettings
from streamrag.core.errors import ConfigError, Refusal
from streamrag.core.query.processor import Reply
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter, Query
from tests.conftest import Indexer, change, query_processor, rec
from tests.fakes import HashEmbedder

ACME = "acme-secret-" + "a" * 32
GLOBEX = "globex-secret-" + "g" * 32


@pytest.fixture
def secured(settings: Settings, store: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ACME_JWT", ACME)
    monkeypatch.setenv("GLOBEX_JWT", GLOBEX)
    # auth on outside the production profile (which also asks every key for issuer and audience: test_worker_policy)
    s = settings.model_copy(update={"auth_required": True, "answer_min_score": 0.05, "auth_tenants": {
        "acme": TenantKeySettings(secret_env="ACME_JWT"), "globex": TenantKeySettings(secret_env="GLOBEX_JWT")}})
    emb = HashEmbedder()
    Indexer(s, store, emb).process_batch([
        rec(change("pay", 1, "Salary bands for engineers are reviewed yearly.", acl={"users": [], "roles": ["hr"]})),
        rec(change("vac", 1, "Employees get twenty five days of paid vacation per year.")),
    ])
    return query_processor(s, store, emb, verifier=load_verifier(s.auth.tenants))


def ask(qp: Any, token: str | None, tenant: str = "acme", roles: list[str] | None = None,
        text: str = "salary bands for engineers reviewed") -> tuple[list[DeadLetter], list[Any]]:
    body = {"query_id": "q1", "tenant": tenant, "text": text, "principal": {"user": "mallory", "roles": roles or []}}
    if token is not None:
        body["auth_token"] = token
    out = qp.answer(qp.parse([rec(json.dumps(body).encode())]))
    return [o for _, o in out if isinstance(o, DeadLetter)], [o.answer for _, o in out if isinstance(o, Reply)]


def test_production_profile_turns_auth_on() -> None:
    assert Settings(_env_file=None, profile="production").auth_on  # type: ignore[call-arg]
    assert not Settings(_env_file=None).auth_on  # type: ignore[call-arg]
    assert not Settings(_env_file=None, profile="production", auth_required=False).auth_on  # type: ignore[call-arg]


def test_claimed_roles_without_a_token_are_refused(secured: Any) -> None:
    dead, answers = ask(secured, None, roles=["hr"])
    assert answers[0].status == "error" and "no auth_token" in (answers[0].error or "")
    assert dead[0].stage == "auth" and dead[0].code == answers[0].code == "unauthenticated"


def test_spoofed_roles_in_the_message_are_ignored(secured: Any) -> None:
    token = sign_token(ACME, "acme", "mallory", roles=[])  # a valid token without the hr role
    _, answers = ask(secured, token, roles=["hr"])  # ... and a message claiming hr
    assert answers[0].status in ("ok", "no_answer")
    assert all(c.doc_id != "pay" for c in answers[0].citations)
    _, hr = ask(secured, sign_token(ACME, "acme", "hana", roles=["hr"]))
    assert hr[0].citations and hr[0].citations[0].doc_id == "pay"


def test_another_tenants_key_and_tenant_are_refused(secured: Any) -> None:
    _, answers = ask(secured, sign_token(GLOBEX, "acme", "mallory", roles=["hr"]))  # globex's key, acme claimed
    assert answers[0].status == "error" and "Signature verification failed" in (answers[0].error or "")
    _, other = ask(secured, sign_token(ACME, "globex", "mallory"))  # acme's key, but a globex token
    assert other[0].status == "error" and "another tenant" in (other[0].error or "")
    assert (answers[0].code, other[0].code) == ("unauthenticated", "forbidden")  # what the gateway's status reads


def test_an_expired_token_is_refused(secured: Any) -> None:
    dead, answers = ask(secured, sign_token(ACME, "acme", "hana", roles=["hr"], ttl_s=-120))
    assert answers[0].status == "error" and "expired" in (answers[0].error or "") and dead[0].stage == "auth"


def test_rs256_with_a_jwks_file(tmp_path: Any) -> None:
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(priv.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1"}]}))
    v = load_verifier({"acme": TenantKeySettings(algorithm="RS256", jwks_file=str(tmp_path / "jwks.json"))})
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    token = jwt.encode({"sub": "u", "tenant": "acme", "roles": ["hr"], "exp": int(time.time()) + 60}, pem,
                       algorithm="RS256", headers={"kid": "k1"})
    q = v.verify(Query(query_id="q", tenant="acme", text="x", auth_token=token))
    assert isinstance(q, Query) and q.principal.roles == ["hr"] and q.auth_token is None
    assert "unknown key id" in str(v.verify(Query(query_id="q", tenant="acme", text="x", auth_token=jwt.encode(
        {"sub": "u", "tenant": "acme", "exp": int(time.time()) + 60}, pem, algorithm="RS256", headers={"kid": "k9"}))))


def test_a_short_secret_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEAK", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_verifier({"acme": TenantKeySettings(secret_env="WEAK")})


def test_a_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamrag.core.auth import TokenVerifier

    monkeypatch.setenv("ACME_JWT", ACME)
    v = load_verifier({"acme": TenantKeySettings(secret_env="ACME_JWT")})
    v = TokenVerifier(v.keys, leeway_s=0)
    token = sign_token(ACME, "acme", "hana", roles=["hr"], ttl_s=1)
    first = v.verify(Query(query_id="q", tenant="acme", text="x", auth_token=token))
    assert isinstance(first, Query) and first.principal.roles == ["hr"]
    again = v.verify(Query(query_id="q", tenant="acme", text="x", auth_token=token))
    assert isinstance(again, Query) and again.principal.user == "hana"  # served from the cache
    refused = v.verify(Query(query_id="q", tenant="globex", text="x", auth_token=token))
    assert isinstance(refused, Refusal) and refused.code == "unauthenticated"
    time.sleep(2.1)
    assert "expired" in str(v.verify(Query(query_id="q", tenant="acme", text="x", auth_token=token)))
