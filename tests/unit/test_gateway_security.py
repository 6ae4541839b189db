"""Issue #34, the gateway's part: each attack replayed against the app over HTTP (Starlette's TestClient, or
httpx's ASGI transport where requests must overlap), on a fake backend or the real ``KafkaBackend`` with a
fake reply router. Every test is named for the attack it refuses."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx2 as httpx
import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from streamrag.cli.gateway import loopback, refusal
from streamrag.core.auth import sign_token
from streamrag.core.errors import ConfigError
from streamrag.core.settings import Settings
from streamrag.gateway.app import create_app
from streamrag.gateway.backend import KafkaBackend
from streamrag.gateway.http_server import server_options
from streamrag.gateway.identity import MAX_TOKEN_CHARS
from streamrag.schemas.models import Answer, AnswerDelta, Query
from tests.net import free_port
from tests.unit.test_gateway import CHAT, SECRET, FakeBackend, bearer, make

ROOT = Path(__file__).resolve().parents[2]
DELETE = {"op": "delete", "tenant": "globex", "doc_id": "contract", "version": 9}


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_SECRET", SECRET)
    monkeypatch.setenv("GW_TEST_SECRET_G", "g" * 40)


def settings(**fields: Any) -> Settings:
    return Settings(_env_file=None, **{"gateway_rate_limit": "1000/minute",  # type: ignore[call-arg]
                                       "gateway_user_rate_limit": "1000/minute", **fields})


# -- 1. open by default, CSRF-able -------------------------------------------------------------------------------
def test_cross_site_text_plain_delete_is_refused_415() -> None:
    c, fake = make()
    # what a page on another site can send without a preflight: text/plain, a form, or no type at all
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}, {}):
        r = c.post("/v1/documents", content=json.dumps(DELETE), headers=headers)
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["error"]["message"]
    r = c.post("/v1/query", content=json.dumps({"tenant": "acme", "text": "q"}), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = c.post("/v1/feedback", content=b'{"tenant": "acme", "query_id": "q", "rating": 1}',
               headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 415
    assert fake.changes == [] and fake.queries == [] and fake.feedback == []
    r = c.post("/v1/documents", json=DELETE)  # JSON, as the API's own clients send it
    assert r.status_code == 202
    r = c.post("/v1/documents", content=json.dumps(DELETE), headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status_code == 202


def test_cross_site_preflight_is_refused_unless_the_origin_is_allowed() -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    c, _ = make()
    r = c.options("/v1/documents", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in r.headers
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    c, _ = make(gateway_cors_origins=["https://chat.example"])
    r = c.options("/v1/query", headers={"Origin": "https://chat.example", **preflight})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://chat.example"
    r = c.options("/v1/query", headers={"Origin": "https://evil.example", **preflight})
    assert r.headers.get("access-control-allow-origin") != "https://evil.example"


def test_unauthenticated_gateway_refuses_to_listen_beyond_loopback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRAG_")}
    env.update({"STREAMRAG_PROFILE": "development", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
                "STREAMRAG_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    out = subprocess.run([sys.executable, "-m", "streamrag.cli", "gateway", "--host", "0.0.0.0", "--port", "1"],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "STREAMRAG_GATEWAY_ALLOW_UNAUTHENTICATED_PUBLIC" in lines[0], out.stderr
    dev = settings()
    assert all(loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"))
    assert not any(loopback(h) for h in ("0.0.0.0", "::", "", "10.0.0.5", "gateway.example"))
    assert refusal(dev, "127.0.0.1") is None and refusal(dev, "0.0.0.0") is not None
    assert refusal(settings(gateway_allow_unauthenticated_public=True), "0.0.0.0") is None
    assert refusal(settings(profile="production"), "0.0.0.0") is None  # auth on


def _env_settings(env: dict[str, Any]) -> Settings:
    # a map or list setting is JSON in the environment (STREAMRAG_AUTH_TENANTS): parsed as load_settings parses it
    flat = {k.removeprefix("STREAMRAG_").lower(): json.loads(str(v)) if str(v)[:1] in "{[" else str(v)
            for k, v in env.items() if k.startswith("STREAMRAG_")}
    known = Settings.flat_fields()
    return Settings(_env_file=None, **{k: v for k, v in flat.items() if k in known})  # type: ignore[call-arg]


def test_compose_and_every_k8s_build_state_their_profile_and_still_start() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
    env = compose["services"]["gateway"]["environment"]
    assert "STREAMRAG_PROFILE" in env
    s = _env_settings(env)
    assert refusal(s, s.gateway.host) is None
    from tests.unit.test_k8s import BUILDS, build

    for path in BUILDS:
        docs = build(path)
        cm = next(d["data"] for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("streamrag-env"))
        assert "STREAMRAG_PROFILE" in cm, path
        s = _env_settings(cm)
        assert refusal(s, s.gateway.host) is None, path
        assert s.auth_on == (path == "overlays/production"), path


# -- 3. waits that hold threads, streams without end ------------------------------------------------------------
class FakeRouter:
    """What KafkaBackend needs of its reply router: waiters by query_id; ``on_send`` answers a sent query."""

    def __init__(self, on_send: Callable[[Query, Callable[[dict[str, Any] | str], None]], None] | None = None) -> None:
        self.waiters: dict[str, Callable[[dict[str, Any] | str], None]] = {}
        self.on_send = on_send
        self.flushed: list[tuple[str, list[tuple[str, bytes]]]] = []

    def register(self, query_id: str, deliver: Callable[[dict[str, Any] | str], None],
                 tenant: str | None = None) -> bool:  # no tenant filter here: the backend's own check is tested
        if query_id in self.waiters:
            return False
        self.waiters[query_id] = deliver
        return True

    def unregister(self, query_id: str) -> None:
        self.waiters.pop(query_id, None)

    def send(self, topic: str, key: str, value: bytes, query_id: str | None = None) -> None:
        if self.on_send is not None:
            self.on_send(Query.model_validate_json(value), self.waiters[key])

    def send_and_flush(self, topic: str, items: list[tuple[str, bytes]],
                       headers: list[tuple[str, bytes]] | None = None) -> None:
        self.flushed.append((topic, items))


class NoIndexTopic:
    """The index-events reader of a test: nothing to connect; the test feeds events itself."""

    started = True

    def ensure_started(self) -> None:
        pass

    def stop(self) -> None:
        pass


def kafka_backend(s: Settings, router: FakeRouter) -> KafkaBackend:
    kb = KafkaBackend(s)
    kb.router = router  # type: ignore[assignment]
    kb.index_events = NoIndexTopic()  # type: ignore[assignment]
    return kb


async def overlapping(app: FastAPI, requests: list[tuple[str, str, dict[str, Any]]],
                      during: Callable[[], Any] | None = None, after_s: float = 0.5) -> tuple[list[httpx.Response], Any]:
    """Send the requests at once over the ASGI transport; ``during`` runs ``after_s`` in (while they wait)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=60) as c:
        tasks = [asyncio.create_task(c.request(m, u, json=b)) for m, u, b in requests]
        await asyncio.sleep(after_s)
        seen = await during() if during is not None else None
        return list(await asyncio.gather(*tasks)), seen


def change(i: int, tenant: str = "acme") -> dict[str, Any]:
    return {"op": "upsert", "tenant": tenant, "doc_id": f"d{i}", "version": 1, "text": "x"}


def test_sixty_waiting_uploads_hold_no_thread_and_readiness_still_answers() -> None:
    s = settings(gateway_max_waiting_uploads=100)
    kb = kafka_backend(s, FakeRouter())
    app = create_app(s, backend=kb)

    async def while_waiting() -> tuple[int, float]:  # well into the waits (each sent its documents by now)
        limiter = anyio.to_thread.current_default_thread_limiter()
        t0 = time.perf_counter()
        await anyio.to_thread.run_sync(lambda: None)  # what /readyz's probe needs: a worker thread
        return limiter.borrowed_tokens, time.perf_counter() - t0

    responses, (borrowed, took) = asyncio.run(overlapping(
        app, [("POST", "/v1/documents?wait=4", change(i, f"t{i}")) for i in range(60)], while_waiting, after_s=2))
    assert borrowed <= 2, f"{borrowed} worker threads held by waiting uploads"
    assert took < 1
    assert [r.status_code for r in responses] == [504] * 60  # nothing applied them: each told so in time
    assert "not applied within 4 s" in responses[0].json()["error"]["message"]


def test_a_waiting_upload_is_answered_once_its_documents_are_applied() -> None:
    s = settings()
    kb = kafka_backend(s, FakeRouter())
    app = create_app(s, backend=kb)

    async def apply() -> None:  # the index events the ingest worker would publish, from the reader's thread
        events = [{"tenant": "acme", "doc_id": "d1", "version": 0, "status": "indexed"},  # older: not it
                  {"tenant": "globex", "doc_id": "d1", "version": 1, "status": "indexed"},  # another tenant's
                  {"tenant": "acme", "doc_id": "d1", "version": 1, "status": "indexed"}]
        def feed() -> None:
            for e in events:
                kb.index_waits.feed(e)

        t = threading.Thread(target=feed)
        t.start()
        t.join()

    (r,), _ = asyncio.run(overlapping(app, [("POST", "/v1/documents?wait=10", change(1))], apply, after_s=0.3))
    assert r.status_code == 200 and r.json() == {"accepted": 1, "applied": {"acme/d1": "indexed"}}
    assert kb.index_waits.waiting == 0


def test_waits_over_the_cap_and_past_the_tenants_waiting_uploads_are_refused() -> None:
    s = settings(gateway_max_waiting_uploads=2)
    app = create_app(s, backend=kafka_backend(s, FakeRouter()))
    c = TestClient(app)
    r = c.post("/v1/documents?wait=600", json=change(1))
    assert r.status_code == 400 and "STREAMRAG_GATEWAY_MAX_WAIT_S" in r.json()["error"]["message"]
    reqs = [("POST", "/v1/documents?wait=1", change(i)) for i in range(3)] + [
        ("POST", "/v1/documents?wait=1", change(9, "globex"))]
    responses, _ = asyncio.run(overlapping(app, reqs))
    codes = [r.status_code for r in responses]
    assert sorted(codes[:3]) == [429, 504, 504] and codes[3] == 504, codes  # the cap is per tenant
    assert c.post("/v1/documents?wait=0.2", json=change(1)).status_code == 504  # slots given back


class HeldBackend(FakeBackend):
    """Streams that stay open until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def ask(self, q: Query, timeout_s: float) -> AsyncIterator[AnswerDelta | Answer]:
        yield AnswerDelta(query_id=q.query_id, seq=0, delta="...")
        await self.release.wait()
        yield Answer(query_id=q.query_id, tenant=q.tenant, status="ok", answer="done")


def test_open_streams_past_the_tenant_cap_are_429() -> None:
    held = HeldBackend()
    app = create_app(settings(gateway_max_streams=2), backend=held)
    body = {"tenant": "acme", "text": "q", "stream": True}
    chat = {**CHAT, "tenant": "acme", "stream": True}

    async def run() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", timeout=30) as c:
            held.release = asyncio.Event()
            opened = [asyncio.create_task(c.post("/v1/query", json=body)),
                      asyncio.create_task(c.post("/v1/chat/completions", json=chat))]
            await asyncio.sleep(0.3)
            third = await c.post("/v1/query", json=body)
            other = asyncio.create_task(c.post("/v1/query", json={**body, "tenant": "globex"}))
            await asyncio.sleep(0.3)
            held.release.set()
            done = await asyncio.gather(*opened, other)
            again = await c.post("/v1/query", json=body)  # the slots were given back
            return [third.status_code, *(r.status_code for r in done), again.status_code]

    assert asyncio.run(run()) == [429, 200, 200, 200, 200]


class Served:
    """The app on a real socket (127.0.0.1), served as ``streamrag gateway`` serves it; stopped on exit."""

    def __init__(self, app: FastAPI, s: Settings) -> None:
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off", **server_options(s.gateway)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.settimeout(5)
        return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """The server closed the connection (what it sent before is read and dropped) within ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if sock.recv(65_536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_slow_header_clients_are_cut_off() -> None:
    s = settings(gateway_header_timeout_s=1, gateway_keep_alive_s=1, gateway_max_header_bytes=4_096)
    with Served(create_app(s, backend=FakeBackend()), s) as srv:
        silent = srv.connect()  # connects and sends nothing
        trickle = srv.connect()  # a request head a byte at a time, never finished
        trickle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        for b in b"X-Slow: 1234":
            trickle.sendall(bytes([b]))
            time.sleep(0.05)
        assert closed_within(trickle, 3) and closed_within(silent, 1)
        assert time.monotonic() - t0 < 4
        kept = srv.connect()  # a kept-alive connection: its next head has the same deadline from its first byte
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(65_536).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert closed_within(kept, 3)
        big = srv.connect()  # a head over STREAMRAG_GATEWAY_MAX_HEADER_BYTES
        big.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8_000 + b"\r\n\r\n")
        assert big.recv(65_536).startswith(b"HTTP/1.1 431") and closed_within(big, 2)
        post = srv.connect()  # a body in the same read as its head is not counted as head
        body = json.dumps({**change(1), "text": "y" * 10_000}).encode()
        post.sendall(b"POST /v1/documents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert post.recv(65_536).startswith(b"HTTP/1.1 202")
        ok = srv.connect()  # and an ordinary request is served
        ok.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.recv(65_536).startswith(b"HTTP/1.1 200")
        for sock in (silent, trickle, kept, big, post, ok):
            sock.close()


# -- 4. a body's principal --------------------------------------------------------------------------------------
def test_body_principal_with_roles_is_not_forwarded() -> None:
    c, fake = make(auth=True)
    ceo = {"text": "salaries?", "principal": {"user": "ceo", "roles": ["hr", "admin"]}}
    r = c.post("/v1/query", json=ceo, headers=bearer())
    assert r.status_code == 400 and "set from the token" in r.json()["error"]["message"]
    r = c.post("/v1/query", json={"text": "q", "auth_token": "x"}, headers=bearer())
    assert r.status_code == 400 and fake.queries == []
    r = c.post("/v1/query", json={"text": "salaries?"}, headers=bearer(roles=("staff",)))
    assert r.status_code == 200 and fake.queries[0].principal.model_dump() == {"user": "alice", "roles": ["staff"]}
    r = c.post("/v1/chat/completions", json={**CHAT, "principal": ceo["principal"], "user": "ceo"}, headers=bearer())
    assert r.status_code == 200 and fake.queries[1].principal.model_dump() == {"user": "alice", "roles": []}
    # auth off: the body may name its user, never its roles
    c, fake = make()
    r = c.post("/v1/query", json={**ceo, "tenant": "acme"})
    assert r.status_code == 200 and fake.queries[0].principal.model_dump() == {"user": "ceo", "roles": []}


# -- 6. a client-chosen A/B variant -----------------------------------------------------------------------------
def test_client_chosen_variant_is_discarded_and_never_a_metric_label() -> None:
    c, fake = make()
    for i in range(50):
        assert c.post("/v1/query", json={"tenant": "acme", "text": "q", "variant": f"forged{i}/x"}).status_code == 200
    assert {q.variant for q in fake.queries} == {""}
    assert c.post("/v1/feedback", json={"tenant": "acme", "query_id": "q", "rating": 1, "variant": "forged/y"}
                  ).status_code == 202
    assert fake.feedback[0].variant == "" and "forged" not in c.get("/metrics").text
    exp = {"name": "e1", "variants": [{"name": "a", "share": 1}, {"name": "b", "share": 1e-9}]}
    c, fake = make(gateway_experiments=[exp])
    c.post("/v1/query", json={"tenant": "acme", "text": "q", "variant": "e1/b"})
    assert fake.queries[0].variant == "e1/a"  # the gateway's assignment


# -- 10. tokens, deadlines, query ids, replies ------------------------------------------------------------------
def test_oversized_token_is_401_not_500() -> None:
    c, fake = make(auth=True)
    big = sign_token(SECRET, "acme", "alice", roles=[f"role{i:04d}" for i in range(900)])
    assert len(big) > MAX_TOKEN_CHARS
    r = c.post("/v1/query", json={"text": "q"}, headers={"Authorization": f"Bearer {big}"})
    assert r.status_code == 401 and f"over {MAX_TOKEN_CHARS}" in r.json()["error"]["message"]
    assert fake.queries == []


def test_huge_deadline_is_400() -> None:
    c, fake = make(gateway_request_timeout_s=30)
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q", "deadline_ms": 2**63})
    assert r.status_code == 400 and "deadline_ms" in r.json()["error"]["message"]
    assert c.post("/v1/query", json={"tenant": "acme", "text": "q", "deadline_ms": 30_001}).status_code == 400
    assert c.post("/v1/query", json={"tenant": "acme", "text": "q", "deadline_ms": 5_000}).status_code == 200
    assert len(fake.queries) == 1 and fake.queries[0].deadline_ms == 5_000


def test_client_chosen_query_id_cannot_collide_with_another_tenants() -> None:
    c, fake = make()
    for tenant in ("acme", "globex"):
        r = c.post("/v1/query", json={"tenant": tenant, "text": "q", "query_id": "shared"})
        assert r.status_code == 200
    ids = [q.query_id for q in fake.queries]
    assert "shared" not in ids and len(set(ids)) == 2 and all(len(i) == 32 for i in ids)


def test_an_answer_for_another_tenant_or_request_is_never_delivered() -> None:
    def answer_wrongly_first(q: Query, deliver: Callable[[dict[str, Any] | str], None]) -> None:
        deliver(Answer(query_id=q.query_id, tenant="globex", status="ok", answer="globex's secret").model_dump(mode="json"))
        deliver(Answer(query_id="another", tenant=q.tenant, status="ok", answer="someone else's").model_dump(mode="json"))
        deliver(Answer(query_id=q.query_id, tenant=q.tenant, status="ok", answer="acme's answer").model_dump(mode="json"))

    s = settings()
    c = TestClient(create_app(s, backend=kafka_backend(s, FakeRouter(answer_wrongly_first))))
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q"})
    assert r.status_code == 200 and r.json()["answer"] == "acme's answer" and r.json()["tenant"] == "acme"


# -- 11. rate limits by user and failed logins; chat context --------------------------------------------------
def test_one_user_cannot_spend_the_whole_tenants_rate() -> None:
    c, _ = make(auth=True, gateway_user_rate_limit="2/minute")
    alice = bearer()
    assert [c.post("/v1/query", json={"text": "q"}, headers=alice).status_code for _ in range(3)] == [200, 200, 429]
    bob = {"Authorization": f"Bearer {sign_token(SECRET, 'acme', 'bob')}"}
    assert c.post("/v1/query", json={"text": "q"}, headers=bob).status_code == 200
    r = c.post("/v1/query", json={"text": "q"}, headers=alice)
    assert r.status_code == 429 and "user alice" in r.json()["error"]["message"] and int(r.headers["Retry-After"]) >= 1


def test_repeated_failed_authentications_from_one_address_are_429() -> None:
    c, fake = make(auth=True, gateway_auth_failure_limit="3/minute")
    wrong = bearer(secret="x" * 40)
    assert [c.post("/v1/query", json={"text": "q"}, headers=wrong).status_code for _ in range(3)] == [401] * 3
    r = c.post("/v1/query", json={"text": "q"}, headers=bearer())  # even a good token, from that address, now
    assert r.status_code == 429 and "failed authentications" in r.json()["error"]["message"]
    assert fake.queries == []


def test_long_chat_context_is_capped() -> None:
    c, fake = make()
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * 1_500} for i in range(30)]
    r = c.post("/v1/chat/completions", json={"tenant": "acme", "messages": [*turns, {"role": "user", "content": "q?"}]})
    assert r.status_code == 200
    ctx = fake.queries[0].context
    assert 0 < len(ctx) <= 10 and sum(len(t.content) for t in ctx) <= 8_000 and ctx[-1].content.startswith("turn 29")
    ctx11 = [{"role": "user", "content": "x"}] * 11
    assert c.post("/v1/query", json={"tenant": "acme", "text": "q", "context": ctx11}).status_code == 400
    assert c.post("/v1/query", json={"tenant": "acme", "text": "q",
                                     "context": [{"role": "user", "content": "y" * 4_000}] * 3}).status_code == 400


# -- 12. what /readyz and /metrics tell anyone ------------------------------------------------------------------
def test_readyz_names_no_addresses_or_errors() -> None:
    c, fake = make()
    fake.ready = {"kafka": "ok", "redis": "redis at redis://:hunter2@10.0.0.5:6379/0 does not answer",
                  "store": "LanceDB at s3://acme-prod/index unreadable: AccessDenied for key AKIA...", "query_worker": "ok"}
    r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"kafka": "ok", "redis": "unavailable", "store": "unavailable", "query_worker": "ok"}
    assert not any(s in r.text for s in ("redis://", "s3://", "10.0.0.5", "hunter2", "AccessDenied"))


def test_metrics_carry_no_tenant_names_unless_allowed() -> None:
    c, _ = make()
    c.post("/v1/feedback", json={"tenant": "initech-secret", "query_id": "q", "rating": 1})
    assert "initech-secret" not in c.get("/metrics").text
    c, _ = make(gateway_metrics_tenant_labels=True)
    c.post("/v1/feedback", json={"tenant": "initrode-known", "query_id": "q", "rating": 1})
    assert 'tenant="initrode-known"' in c.get("/metrics").text


PRODUCTION_KEYS = {"acme": {"secret_env": "GW_TEST_SECRET", "issuer": "https://idp.test", "audience": "streamrag"}}


def test_production_gateway_refuses_keys_without_issuer_and_audience() -> None:
    with pytest.raises(ConfigError, match="issuer and audience"):
        make(auth=True, profile="production")


def test_production_profile_serves_no_public_metrics() -> None:
    c, _ = make(profile="production", auth_required=True, auth_tenants=PRODUCTION_KEYS)
    r = c.get("/metrics")
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    c, _ = make(profile="production", auth_required=True, auth_tenants=PRODUCTION_KEYS, gateway_metrics_public=True)
    assert c.get("/metrics").status_code == 200
    c, _ = make()  # development: served
    assert c.get("/metrics").status_code == 200
