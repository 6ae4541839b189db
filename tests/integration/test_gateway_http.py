"""The HTTP gateway on real Kafka, with auth on: the official OpenAI client (plain and streamed chat
completions), /v1/query as JSON and as server-sent events, refusals (no token, another tenant's token, a spoofed
tenant field), two replicas side by side each getting exactly its own answers, documents written and read back,
feedback on its topic, readiness, and the chat page in headless Chromium."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from streamrag.core.auth import sign_token
from streamrag.core.settings import Settings
from tests.cdp import Browser, chromium_binary
from tests.integration.conftest import ROOT, produce, read_topic, wait_for
from tests.integration.conftest import chunk_rows as rows
from tests.net import free_port

pytestmark = pytest.mark.integration
SECRETS = {"acme": "a" * 40, "globex": "g" * 40}
AUTH = {
    "STREAMRAG_AUTH_REQUIRED": "true",
    "STREAMRAG_AUTH_TENANTS": json.dumps({t: {"secret_env": f"IT_SECRET_{t.upper()}"} for t in SECRETS}),
    **{f"IT_SECRET_{t.upper()}": s for t, s in SECRETS.items()},
}
QUESTION = "How many days of paid vacation do employees get?"


def token(tenant: str, user: str = "alice", roles: tuple[str, ...] = (), secret: str | None = None) -> str:
    return sign_token(secret or SECRETS[tenant], tenant, user, roles, ttl_s=3600)


class Gateway:
    def __init__(self, env: dict[str, str], log: Path, reply_topic: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.reply_topic = reply_topic
        full = {**os.environ, **env, "STREAMRAG_GATEWAY_REPLY_TOPIC": reply_topic, "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1", "STREAMRAG_GATEWAY_RATE_LIMIT": "1000/minute",
                "STREAMRAG_GATEWAY_USER_RATE_LIMIT": "1000/minute"}
        self.proc = subprocess.Popen([sys.executable, "-m", "streamrag.cli", "gateway", "--port", str(self.port)],
                                     env=full, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def ready(self) -> bool:
        try:
            return call(self.url + "/readyz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def call(url: str, body: Any = None, headers: dict[str, str] | None = None, method: str | None = None,
         timeout: float = 60) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded JSON or text, headers) of one request; error statuses are returned, not raised."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method or ("POST" if body is not None else "GET"),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status, hdrs = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, dict(e.headers)
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode(), hdrs


def sse_events(url: str, body: Any, headers: dict[str, str]) -> list[tuple[str, str]]:
    """(event, data) of every server-sent event of one streamed response."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    out: list[tuple[str, str]] = []
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        event, data = "message", ""
        for line in r:
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: "):
                data += text[6:]
            elif text == "" and data:
                out.append((event, data))
                event, data = "message", ""
    return out


@pytest.fixture(scope="module")
def gateways(settings: Settings, env: dict[str, str], start_worker: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Gateway]]:
    produce(settings, settings.topics.documents, [
        ("acme/vacation", {"op": "upsert", "tenant": "acme", "doc_id": "vacation", "version": 1,
                           "title": "Vacation policy", "text": "Employees get twenty five days of paid vacation per year."}),
        ("acme/travel", {"op": "upsert", "tenant": "acme", "doc_id": "travel", "version": 1, "title": "Travel policy",
                         "text": "A hotel night in Berlin is reimbursed up to 180 euros."}),
        ("globex/vacation", {"op": "upsert", "tenant": "globex", "doc_id": "vacation", "version": 1,
                             "title": "Globex leave", "text": "Globex employees get ten days of vacation per year."}),
    ])
    start_worker("ingest")
    wait_for(lambda: len(rows(settings)) >= 3, timeout=120)
    logs = tmp_path_factory.mktemp("gateway-logs")
    tag = settings.topics.queries.split(".")[0]
    env = {**env, **AUTH}
    # the gateways create their reply topics before the query worker starts (it lists topics when it first needs to)
    gws = (Gateway(env, logs / "a.log", f"streamrag.replies.{tag}-a"), Gateway(env, logs / "b.log", f"streamrag.replies.{tag}-b"))
    try:
        wait_for(lambda: all(_listening(g) for g in gws), timeout=60)
        start_worker("query", overrides=AUTH)
        wait_for(lambda: all(g.ready() for g in gws), timeout=120)
        yield gws
    finally:
        for g in gws:
            g.stop()


def _listening(g: Gateway) -> bool:
    try:
        urllib.request.urlopen(g.url + "/healthz", timeout=2).close()
        return True
    except OSError:
        return False


def client(g: Gateway, tenant: str = "acme") -> openai.OpenAI:
    return openai.OpenAI(base_url=g.url + "/v1", api_key=token(tenant), max_retries=0, timeout=60)


def test_chat_completion_with_the_openai_client(gateways: tuple[Gateway, Gateway]) -> None:
    c = client(gateways[0]).chat.completions.create(
        model="streamrag", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}])
    text = c.choices[0].message.content or ""
    assert "twenty five days" in text and "[1]" in text, text
    cites = (c.model_extra or {})["citations"]
    assert cites[0]["n"] == 1 and cites[0]["doc_id"] == "vacation" and cites[0]["title"] == "Vacation policy"
    assert all(x["doc_id"] != "globex" for x in cites)  # the token's tenant only
    assert c.choices[0].finish_reason == "stop" and c.id.startswith("chatcmpl-")


def test_streamed_chat_completion_with_the_openai_client(gateways: tuple[Gateway, Gateway]) -> None:
    chunks = list(client(gateways[1]).chat.completions.create(
        model="streamrag", stream=True, messages=[{"role": "user", "content": QUESTION}]))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert "twenty five days" in text and "[1]" in text, text
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert (last.model_extra or {})["citations"][0]["doc_id"] == "vacation"
    # the first chunk carries the sources, found before the answer was written (the token's tenant's only)
    sources = (chunks[0].model_extra or {})["streamrag"]["sources"]
    assert chunks[0].choices[0].delta.role == "assistant" and sources[0]["doc_id"] == "vacation"
    assert all(x["title"] != "Globex leave" for x in sources)


def test_query_as_json_and_as_server_sent_events(gateways: tuple[Gateway, Gateway]) -> None:
    g = gateways[0]
    auth = {"Authorization": f"Bearer {token('acme')}"}
    status, a, _ = call(g.url + "/v1/query", {"text": QUESTION, "top_k": 3}, auth)
    assert status == 200 and a["status"] == "ok" and a["tenant"] == "acme", a
    assert a["citations"][0]["doc_id"] == "vacation" and "twenty five days" in a["answer"]
    events = sse_events(g.url + "/v1/query", {"text": QUESTION, "query_id": "sse-" + uuid.uuid4().hex},
                        {**auth, "Accept": "text/event-stream"})
    assert events and events[-1][0] == "answer", events
    final = json.loads(events[-1][1])  # the gateway chose the query's id, not the body
    assert not final["query_id"].startswith("sse-") and final["citations"][0]["doc_id"] == "vacation"
    assert events[0][0] == "sources" and json.loads(events[0][1])["sources"][0]["doc_id"] == "vacation"
    assert all(e == "delta" for e, _ in events[1:-1])  # extractive answers come whole: no deltas before


def test_refusals_with_auth_on(gateways: tuple[Gateway, Gateway]) -> None:
    g = gateways[0]
    url = g.url + "/v1/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": QUESTION}]}
    status, err, _ = call(url, body)
    assert status == 401 and "Bearer" in err["error"]["message"], err
    # a token for globex asking as acme (the tenant field spoofed)
    status, err, _ = call(url, {**body, "tenant": "acme"}, {"Authorization": f"Bearer {token('globex')}"})
    assert status == 403 and "another tenant" in err["error"]["message"], err
    # a token claiming acme but signed with globex's key
    forged = token("acme", secret=SECRETS["globex"])
    status, err, _ = call(url, body, {"Authorization": f"Bearer {forged}"})
    assert status == 401 and "signature" in err["error"]["message"].lower(), err
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=g.url + "/v1", api_key="not-a-jwt", max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": QUESTION}])
    # the globex token asks as globex: its own document only
    status, a, _ = call(g.url + "/v1/query", {"text": QUESTION}, {"Authorization": f"Bearer {token('globex')}"})
    assert status == 200 and {c["doc_id"] for c in a["citations"]} == {"vacation"} and "ten days" in a["answer"], a


def test_two_replicas_each_get_exactly_their_own_answers(settings: Settings, gateways: tuple[Gateway, Gateway]) -> None:
    auth = {"Authorization": f"Bearer {token('acme')}"}
    sent: dict[str, list[str]] = {"a": [], "b": []}

    def ask(which: str, i: int) -> tuple[str, int, Any]:
        g = gateways[0] if which == "a" else gateways[1]
        status, a, _ = call(g.url + "/v1/query", {"text": QUESTION}, auth)
        if status == 200:
            sent[which].append(a["query_id"])  # the gateway's id of the query
        return which, status, a

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda x: ask(*x), [(w, i) for i in range(12) for w in ("a", "b")]))
    for _which, status, a in results:
        assert status == 200 and a["status"] == "ok", a
    assert len(set(sent["a"]) | set(sent["b"])) == 24
    for which, other, g in (("a", "b", gateways[0]), ("b", "a", gateways[1])):
        msgs = read_topic(settings, g.reply_topic, lambda m, w=which: set(sent[w]) <= {x["query_id"] for x in m if x},
                          timeout=20)
        on_topic = {m["query_id"] for m in msgs if m and m.get("kind") == "final"}
        assert set(sent[which]) <= on_topic and not set(sent[other]) & on_topic  # its own, and none of the other's


def test_documents_written_waited_for_and_read_back(gateways: tuple[Gateway, Gateway]) -> None:
    g = gateways[1]
    writer = {"Authorization": f"Bearer {token('acme', 'editor', ('writer',))}"}
    change = {"op": "upsert", "doc_id": "parking", "version": 3, "title": "Parking",
              "text": "Visitors park in the north garage. Employees park in the south garage."}
    status, body, _ = call(g.url + "/v1/documents?wait=90", change, writer, timeout=120)
    assert status == 200 and body["applied"] == {"acme/parking": "indexed"}, body
    status, doc, _ = call(g.url + "/v1/documents/parking", headers=writer)
    assert status == 200 and doc["version"] == 3 and doc["state"] == "indexed" and doc["chunk_count"] >= 1, doc
    assert "north garage" in doc["chunks"][0]["snippet"] and doc["title"] == "Parking"
    status, _, _ = call(g.url + "/v1/documents/nope", headers=writer)
    assert status == 404
    reader = {"Authorization": f"Bearer {token('acme')}"}  # no writer role
    assert call(g.url + "/v1/documents/parking", headers=reader)[0] == 403
    status, body, _ = call(g.url + "/v1/documents", {**change, "version": 4}, writer)
    assert status == 202 and body == {"accepted": 1, "keys": ["acme/parking"]}


def test_feedback_onto_its_topic_and_counted(settings: Settings, gateways: tuple[Gateway, Gateway]) -> None:
    g = gateways[0]
    auth = {"Authorization": f"Bearer {token('acme', 'bob')}"}
    qid = "fb-" + uuid.uuid4().hex
    assert call(g.url + "/v1/feedback", {"query_id": qid, "rating": -1, "comment": "wrong policy"}, auth)[0] == 202
    assert call(g.url + "/v1/feedback", {"query_id": qid, "rating": 4}, auth)[0] == 202
    assert call(g.url + "/v1/feedback", {"query_id": qid, "rating": 0}, auth)[0] == 400
    msgs = read_topic(settings, settings.topics.feedback, lambda m: sum(1 for x in m if x and x["query_id"] == qid) >= 2)
    mine = [m for m in msgs if m and m["query_id"] == qid]
    assert [(m["scale"], m["rating"], m["user"], m["tenant"]) for m in mine] == [
        ("thumbs", -1, "bob", "acme"), ("stars", 4, "bob", "acme")]
    metrics = call(g.url + "/metrics")[1]
    assert 'streamrag_feedback_total{rating="-1",scale="thumbs",tenant="-",variant=""}' in metrics
    assert 'tenant="acme"' not in metrics  # tenant names are not label values unless allowed


def test_health_and_readiness(gateways: tuple[Gateway, Gateway]) -> None:
    status, body, _ = call(gateways[0].url + "/readyz")
    assert status == 200 and body["checks"] == {"kafka": "ok", "reply_topic": "ok", "redis": "ok", "store": "ok",
                                               "query_worker": "ok"}
    assert call(gateways[0].url + "/healthz")[:2] == (200, {"status": "ok"})


def test_chat_page_in_headless_chromium(gateways: tuple[Gateway, Gateway], tmp_path: Path) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary (scripts/setup installs Debian's chromium when it can)")
    b = Browser(binary)
    try:
        b.goto(gateways[0].url + "/")
        b.js(f"document.getElementById('token').value = {json.dumps(token('acme'))}")
        b.js(f"document.getElementById('question').value = {json.dumps(QUESTION)}")
        b.js("document.getElementById('send').click()")
        b.wait_for("document.querySelector('.turn[data-status]') !== null", timeout=60)
        answer = b.js("document.querySelector('.turn .a').textContent")
        titles = b.js("[...document.querySelectorAll('.citations .title')].map(e => e.textContent)")
        snippets = b.js("[...document.querySelectorAll('.citations .snippet')].map(e => e.textContent)")
        assert "twenty five days" in answer and "[1]" in answer, answer
        assert titles and titles[0].startswith("Vacation policy"), titles
        assert "paid vacation" in snippets[0]
        b.js("document.querySelector('button.rate').click()")
        b.wait_for("document.querySelector('button.rate.chosen') !== null", timeout=20)
        shot = b.screenshot(tmp_path / "chat-page.png")
        assert shot.stat().st_size > 5_000
    finally:
        b.close()
