"""The gateway's HTTP behaviour over a fake backend (no Kafka): identity, limits, error statuses, the OpenAI
format (plain and streamed), server-sent events, documents, feedback, readiness."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.auth import sign_token
from streamrag.core.errors import ApplyTimeout
from streamrag.core.query.replies import error_answer
from streamrag.core.settings import Settings
from streamrag.gateway.app import create_app
from streamrag.gateway.backend import AnswerTimeout
from streamrag.gateway.openai_format import cited_text, final_chunks
from streamrag.schemas.models import Answer, AnswerDelta, Citation, DocumentChange, Feedback, Query
from streamrag.schemas.vocabulary import ErrorCode
from tests.conftest import query_processor
from tests.fakes import HashEmbedder

SECRET = "s" * 40
CITES = [Citation(doc_id="vacation", version=2, chunk_id="c1", title="Vacation policy", snippet="25 days")]


class FakeBackend:
    """Answers every query at once (with deltas when it streams); records what it was sent."""

    def __init__(self) -> None:
        self.queries: list[Query] = []
        self.changes: list[DocumentChange] = []
        self.publishers: list[str] = []
        self.feedback: list[Feedback] = []
        self.deltas = ["Employees get ", "25 days [1]."]
        self.answer_error: tuple[ErrorCode, str] | None = None  # the worker's error answer (error_answer's)
        self.worker: Callable[[Query], Answer] | None = None  # answers each query (a real query processor)
        self.time_out = False
        self.ready = {"kafka": "ok", "redis": "ok", "store": "ok", "query_worker": "ok"}

    @property
    def reply_topic(self) -> str:
        return "streamrag.replies.test"

    async def ask(self, q: Query, timeout_s: float) -> AsyncIterator[AnswerDelta | Answer]:
        self.queries.append(q)
        if self.time_out:
            raise AnswerTimeout(q.query_id)
        if q.options.stream:
            for i, d in enumerate(self.deltas):
                yield AnswerDelta(query_id=q.query_id, seq=i, delta=d, generator="local")
        if self.worker is not None:
            yield self.worker(q)
            return
        if self.answer_error:
            yield error_answer(q, *self.answer_error)
            return
        yield Answer(query_id=q.query_id, tenant=q.tenant, status="ok", answer="".join(self.deltas), citations=CITES,
                     model="m1", generator="local", deltas=len(self.deltas) if q.options.stream else 0)

    async def write_documents(self, changes: list[DocumentChange], wait_s: float, publisher: str = "") -> dict[str, str]:
        self.changes.extend(changes)
        self.publishers.append(publisher)
        if wait_s and changes[0].doc_id == "slow":
            raise ApplyTimeout(f"1 document(s) not applied within {wait_s:g} s")
        return {c.key: "indexed" for c in changes} if wait_s else {}

    async def send_feedback(self, fb: Feedback) -> None:
        self.feedback.append(fb)

    async def document(self, tenant: str, doc_id: str) -> dict[str, Any] | None:
        return {"tenant": tenant, "doc_id": doc_id, "version": 2} if doc_id == "vacation" else None

    async def readiness(self) -> dict[str, str]:
        return self.ready


def make(auth: bool = False, **settings: Any) -> tuple[TestClient, FakeBackend]:
    fields: dict[str, Any] = {"gateway_rate_limit": "1000/minute", "gateway_user_rate_limit": "1000/minute", **settings}
    if auth:
        fields.update(auth_required=True, auth_tenants={"acme": {"secret_env": "GW_TEST_SECRET"},
                                                        "globex": {"secret_env": "GW_TEST_SECRET_G"}})
    s = Settings(_env_file=None, **fields)  # type: ignore[call-arg]
    fake = FakeBackend()
    return TestClient(create_app(s, backend=fake)), fake


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TEST_SECRET", SECRET)
    monkeypatch.setenv("GW_TEST_SECRET_G", "g" * 40)


def bearer(tenant: str = "acme", roles: tuple[str, ...] = (), secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_token(secret, tenant, 'alice', roles)}"}


CHAT = {"model": "x", "messages": [{"role": "user", "content": "old question"}, {"role": "assistant", "content": "a"},
                                   {"role": "user", "content": "How many vacation days?"}]}


def test_chat_completion_asks_the_last_user_message_with_the_body_tenant_when_auth_is_off() -> None:
    c, fake = make()
    r = c.post("/v1/chat/completions", json={**CHAT, "tenant": "acme", "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"] == "Employees get 25 days [1]."
    assert body["citations"][0] == {**CITES[0].model_dump(mode="json"), "n": 1}
    q = fake.queries[0]
    assert (q.text, q.tenant, q.top_k, q.reply_to) == ("How many vacation days?", "acme", 3, "streamrag.replies.test")


def test_streamed_chat_completion_is_openai_chunks_then_done() -> None:
    c, _ = make()
    r = c.post("/v1/chat/completions", json={**CHAT, "tenant": "acme", "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    datas = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == "Employees get 25 days [1]."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["citations"][0]["doc_id"] == "vacation"


def test_final_chunks_send_only_what_was_not_streamed_and_a_rule_after_a_reset() -> None:
    a = Answer(query_id="q", tenant="t", status="ok", answer="Hello world [1].", citations=CITES)
    assert final_chunks(a, "Hello ", "m", 0)[0]["choices"][0]["delta"]["content"] == "world [1]."
    assert final_chunks(a, "Something else", "m", 0)[0]["choices"][0]["delta"]["content"] == "\n\n---\nHello world [1]."
    assert len(final_chunks(a, "Hello world [1].", "m", 0)) == 1  # nothing left: only the finishing chunk


def test_cited_text_names_the_sources_when_the_answer_has_no_markers() -> None:
    a = Answer(query_id="q", tenant="t", status="ok", answer="Twenty five days.", citations=CITES)
    assert cited_text(a) == "Twenty five days.\n\nSources: [1] Vacation policy"
    assert cited_text(a.model_copy(update={"answer": "25 [1]."})) == "25 [1]."


def test_query_json_and_server_sent_events() -> None:
    c, fake = make()
    r = c.post("/v1/query", json={"tenant": "acme", "text": "vacation?"})
    assert r.status_code == 200 and r.json()["citations"][0]["doc_id"] == "vacation"
    assert r.json()["query_id"] == fake.queries[0].query_id and len(fake.queries[0].query_id) == 32  # the gateway's
    r = c.post("/v1/query", json={"tenant": "acme", "text": "vacation?"}, headers={"Accept": "text/event-stream"})
    events = [line[7:] for line in r.text.splitlines() if line.startswith("event: ")]
    assert events == ["delta", "delta", "answer"]
    assert fake.queries[-1].options.stream is True and fake.queries[0].options.stream is False


def test_auth_on_refuses_a_missing_token_another_tenant_and_a_forged_signature() -> None:
    c, fake = make(auth=True)
    assert c.post("/v1/chat/completions", json=CHAT).status_code == 401
    r = c.post("/v1/chat/completions", json={**CHAT, "tenant": "acme"}, headers=bearer("globex", secret="g" * 40))
    assert r.status_code == 403 and r.json()["error"]["message"] == "forbidden: the token is for another tenant"
    r = c.post("/v1/query", json={"text": "q", "tenant": "globex"}, headers=bearer("acme"))
    assert r.status_code == 403
    r = c.post("/v1/query", json={"text": "q"}, headers=bearer("acme", secret="x" * 40))
    assert r.status_code == 401 and "signature" in r.json()["error"]["message"].lower()
    assert fake.queries == []
    r = c.post("/v1/query", json={"text": "q"}, headers=bearer("acme"))
    assert r.status_code == 200 and fake.queries[0].tenant == "acme" and fake.queries[0].auth_token


def test_without_auth_the_tenant_must_be_named_and_valid() -> None:
    c, _ = make()
    assert c.post("/v1/query", json={"text": "q"}).status_code == 400
    assert c.post("/v1/query", json={"text": "q", "tenant": "a b/c"}).status_code == 400


def test_rate_limit_answers_429_with_retry_after() -> None:
    c, _ = make(gateway_rate_limit="2/minute")
    ok = [c.post("/v1/query", json={"tenant": "acme", "text": "q"}).status_code for _ in range(2)]
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q"})
    assert ok == [200, 200] and r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert c.post("/v1/query", json={"tenant": "globex", "text": "q"}).status_code == 200  # per tenant


def test_large_bodies_are_refused_with_413() -> None:
    c, fake = make(gateway_max_body_bytes=2048)
    r = c.post("/v1/query", json={"tenant": "acme", "text": "x" * 3000})
    assert r.status_code == 413 and "STREAMRAG_GATEWAY_MAX_BODY_BYTES" in r.json()["error"]["message"]

    def chunks() -> Any:  # no content-length: counted as it is read
        yield b'{"tenant": "acme", "text": "' + b"x" * 3000 + b'"}'
    r = c.post("/v1/query", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and fake.queries == []


def test_bad_input_timeouts_and_error_answers_have_their_statuses() -> None:
    c, fake = make()
    assert c.post("/v1/query", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert c.post("/v1/query", json={"tenant": "acme", "text": ""}).status_code == 400
    assert c.post("/v1/chat/completions", json={"tenant": "acme", "messages": [{"role": "system", "content": "x"}]}
                  ).status_code == 400
    fake.answer_error = ("unauthenticated", "unauthenticated: the token has expired")
    assert c.post("/v1/query", json={"tenant": "acme", "text": "q"}).status_code == 401
    fake.answer_error = ("invalid_query", "invalid query: reply_to topic does not exist")
    assert c.post("/v1/chat/completions", json={**CHAT, "tenant": "acme"}).status_code == 400
    # the status is the code's: the same words under another code are not read
    fake.answer_error = ("generation_failed", "unauthenticated: words of a model's error")
    assert c.post("/v1/query", json={"tenant": "acme", "text": "q"}).status_code == 502
    for code, status in (("deadline_exceeded", 504), ("expired", 504), ("forbidden", 403), ("unavailable", 503)):
        fake.answer_error = (code, "whatever the words")
        r = c.post("/v1/chat/completions", json={**CHAT, "tenant": "acme"})
        assert r.status_code == status, code
    fake.answer_error = None
    fake.time_out = True
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q"})
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q", "stream": True})
    assert r.status_code == 200 and "event: error" in r.text and '"code":504' in r.text


def test_a_query_past_its_deadline_is_504_as_the_worker_answers_it(settings: Settings, store: LanceStore) -> None:
    """The query the gateway sent, answered by a real query processor after its deadline_ms passed: the worker's
    "deadline exceeded" answer is a timeout (504, like an expired query), not a failed upstream (502)."""
    c, fake = make()
    qp = query_processor(settings, store, HashEmbedder())

    def late_worker(q: Query) -> Answer:
        time.sleep(0.02)  # the worker reads it after its 5 ms
        (a,) = qp.answer_many([q])
        return a

    fake.worker = late_worker
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q", "deadline_ms": 5})
    assert r.status_code == 504, r.text
    assert r.json()["error"]["type"] == "timeout_error" and r.json()["answer"]["code"] == "deadline_exceeded"


def test_documents_are_written_for_the_callers_tenant_and_read_back() -> None:
    c, fake = make()
    change = {"op": "upsert", "tenant": "acme", "doc_id": "vacation", "version": 2, "text": "25 days"}
    r = c.post("/v1/documents", json=change)
    assert r.status_code == 202 and r.json() == {"accepted": 1, "keys": ["acme/vacation"]}
    assert fake.changes[0].key == "acme/vacation"
    r = c.post("/v1/documents?wait=5", json={"changes": [change]})
    assert r.status_code == 200 and r.json()["applied"] == {"acme/vacation": "indexed"}
    assert c.post("/v1/documents?wait=5", json={**change, "doc_id": "slow"}).status_code == 504
    assert c.post("/v1/documents", json=[change, {**change, "tenant": "globex"}]).status_code == 400
    assert c.post("/v1/documents", json={**change, "version": -1}).status_code == 400
    assert c.get("/v1/documents/vacation?tenant=acme").json()["version"] == 2
    assert c.get("/v1/documents/other?tenant=acme").status_code == 404


def test_with_auth_documents_need_a_document_role() -> None:
    c, fake = make(auth=True)
    change = {"op": "upsert", "doc_id": "vacation", "version": 2, "text": "25 days"}
    assert c.post("/v1/documents", json=change, headers=bearer()).status_code == 403
    r = c.post("/v1/documents", json=change, headers=bearer(roles=("writer",)))
    assert r.status_code == 202 and fake.changes[0].tenant == "acme"
    assert c.get("/v1/documents/vacation", headers=bearer()).status_code == 403
    assert c.get("/v1/documents/vacation", headers=bearer(roles=("admin",))).status_code == 200


def test_feedback_is_validated_sent_and_counted() -> None:
    c, fake = make()
    assert c.post("/v1/feedback", json={"tenant": "acme", "query_id": "q1", "rating": 1}).status_code == 202
    assert c.post("/v1/feedback", json={"tenant": "acme", "query_id": "q1", "rating": 5, "comment": "great"}
                  ).status_code == 202
    assert c.post("/v1/feedback", json={"tenant": "acme", "query_id": "q1", "rating": 7}).status_code == 400
    assert c.post("/v1/feedback", json={"tenant": "acme", "query_id": "q1", "rating": 0}).status_code == 400
    assert [(f.scale, f.rating) for f in fake.feedback] == [("thumbs", 1), ("stars", 5)]
    assert 'streamrag_feedback_total{rating="5",scale="stars",tenant="-",variant=""}' in c.get("/metrics").text


def test_readiness_is_503_with_the_reason_until_every_check_is_ok() -> None:
    c, fake = make()
    assert c.get("/healthz").json() == {"status": "ok"} and c.get("/readyz").status_code == 200
    fake.ready = {**fake.ready, "query_worker": "no query worker seen"}
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["error"]["message"] == "not ready: query_worker unavailable"
    assert r.json()["checks"]["query_worker"] == "unavailable"


def test_the_chat_page_is_served() -> None:
    c, _ = make()
    r = c.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and 'id="question"' in r.text


def test_unknown_routes_are_json_404() -> None:
    c, _ = make()
    r = c.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == 404


def test_readiness_waits_for_workers_to_learn_of_a_new_reply_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ``start`` (which creates the reply topic) and ``readiness`` (what /readyz serves)."""
    import asyncio

    from streamrag.gateway import backend as gb

    class Router:
        def __init__(self, *_a: Any, **_k: Any) -> None: ...
        def start(self) -> None: ...
        def stop(self) -> None: ...

    s = Settings(_env_file=None, gateway_ready_needs_worker=False)  # type: ignore[call-arg]
    kb = gb.KafkaBackend(s)
    monkeypatch.setattr(gb, "check_reachable", lambda *_a, **_k: None)
    monkeypatch.setattr(gb, "ensure_reply_topic", lambda *_a: True)  # the reply topic did not exist: created now
    monkeypatch.setattr(gb, "ReplyRouter", Router)
    monkeypatch.setattr(gb, "sweep_reply_topics", lambda *_a: [])
    monkeypatch.setattr(gb, "delete_topics", lambda *_a: [])
    monkeypatch.setattr(gb, "READY_CACHE_S", 0.0)
    monkeypatch.setattr(gb, "REPLY_TOPIC_SETTLE_S", 0.3)
    monkeypatch.setattr(kb.redis, "healthy", lambda: True)
    monkeypatch.setattr(kb.reader, "reachable", lambda: True)
    kb.start()
    try:
        assert asyncio.run(kb.readiness())["reply_topic"].startswith(kb.reply_topic + " created")
        time.sleep(0.35)
        assert asyncio.run(kb.readiness()) == {"kafka": "ok", "reply_topic": "ok", "redis": "ok", "store": "ok"}
    finally:
        kb.stop()


def test_a_query_id_already_waiting_is_refused() -> None:
    from streamrag.connectors.kafka_replies import ReplyRouter

    r = ReplyRouter(Settings(_env_file=None).kafka, ["t"])  # type: ignore[call-arg]
    assert r.register("q1", lambda _m: None) and not r.register("q1", lambda _m: None)
    r.unregister("q1")
    assert r.register("q1", lambda _m: None)


def test_a_duplicate_query_id_is_answered_409(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamrag.gateway.backend import DuplicateQuery

    c, fake = make()

    async def busy(q: Query, timeout_s: float) -> AsyncIterator[Answer]:
        raise DuplicateQuery(q.query_id)
        yield  # an async generator

    monkeypatch.setattr(fake, "ask", busy)
    r = c.post("/v1/query", json={"tenant": "acme", "text": "q", "query_id": "same"})
    assert r.status_code == 409 and "already being answered" in r.json()["error"]["message"]
