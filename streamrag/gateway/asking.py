"""Asking: ``POST /v1/query`` (the project's Query; JSON or server-sent events) and ``POST /v1/chat/completions``
(OpenAI's chat API, plain or streamed). Both send one Query to the workers over Kafka and wait for its answer."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.background import BackgroundTask

from streamrag.core.experiments import Assignment, assign
from streamrag.core.json_limits import describe_validation
from streamrag.core.settings import Settings
from streamrag.gateway import metrics
from streamrag.gateway.backend import AnswerTimeout, Backend, DuplicateQuery
from streamrag.gateway.errors import ApiError, error_body, status_of
from streamrag.gateway.identity import Caller, Identity, Limits, Slot
from streamrag.gateway.openai_format import (
    ChatRequest,
    chunk,
    completion,
    context_of,
    final_chunks,
    question_of,
    sources_extra,
)
from streamrag.schemas.models import Answer, AnswerDelta, AnswerSources, Query, utcnow

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# fields of a Query the gateway sets itself (a body's are dropped); with auth on, naming these is refused
SERVER_FIELDS = frozenset({"query_id", "tenant", "principal", "reply_to", "sent_at", "variant", "auth_token"})
TOKEN_FIELDS = ("principal", "auth_token")
# the conversation a query may carry: its newest turns, and their characters in all
MAX_CONTEXT_TURNS = 10
MAX_CONTEXT_CHARS = 8_000


def sse(data: Any, event: str | None = None) -> str:
    body = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {body}\n\n"


def variant_header(variant: Assignment | None) -> dict[str, str]:
    return {"X-Streamrag-Variant": variant.label} if variant is not None else {}


def answer_status(a: Answer) -> int:
    """The HTTP status of a final answer: 200, or its error code's (gateway.errors.STATUS_OF)."""
    return 200 if a.status != "error" else status_of(a.code)


class Asker:
    """Builds the Query of a request (its caller's tenant and token, this replica's reply topic) and waits.

    What identifies a query is the gateway's to set, never the body's: its id (a new uuid), tenant, principal
    (the token's; with auth off a named user, never roles), reply topic, send time and A/B variant."""

    def __init__(self, s: Settings, backend: Backend, identity: Identity, limits: Limits) -> None:
        self.s = s
        self.backend = backend
        self.identity = identity
        self.limits = limits

    def caller(self, request: Request, tenant: Any, user: Any = None) -> Caller:
        if tenant is not None and not isinstance(tenant, str):
            raise ApiError(400, "invalid request: tenant must be a string")
        address = request.client.host if request.client else "-"
        self.limits.before_auth(address)
        try:
            c = self.identity.caller(request.headers.get("authorization"), tenant,
                                     user if isinstance(user, str) else None)
        except ApiError as exc:
            if exc.status == 401:
                self.limits.auth_failed(address)
            raise
        try:
            self.limits.check(c)
        except ApiError:
            metrics.RATE_LIMITED.labels(self.tenant_label(c.tenant)).inc()
            raise
        return c

    def tenant_label(self, tenant: str) -> str:
        return metrics.tenant_label(tenant, self.s.gateway.metrics_tenant_labels)

    def variant(self, caller: Caller) -> Assignment | None:
        """The caller's A/B variant (sticky by tenant and user), or None."""
        return assign(self.s.gateway.experiments, caller.tenant, caller.user)

    def principal(self, caller: Caller) -> dict[str, Any]:
        if caller.token is not None:  # verified: the token's user and roles
            return {"user": caller.user, "roles": caller.roles}
        return {"user": caller.user} if caller.user else {}  # auth off: a user may be named, roles never

    def query(self, body: dict[str, Any], caller: Caller, stream: bool, variant: Assignment | None = None) -> Query:
        """The request's Query; a variant's fusion / alpha / rerank replace the request's own."""
        if self.identity.auth_on:
            for name in TOKEN_FIELDS:
                if name in body:
                    raise ApiError(400, f"invalid request: {name} is set from the token, not the body")
        data = {k: v for k, v in body.items() if k not in SERVER_FIELDS}
        data.update({"query_id": uuid.uuid4().hex, "tenant": caller.tenant, "principal": self.principal(caller),
                     "reply_to": self.backend.reply_topic, "sent_at": utcnow(),
                     "variant": variant.label if variant is not None else ""})
        options = {**(data.get("options") or {}), "stream": stream}
        if variant is not None:
            v = variant.variant
            options.update({k: x for k, x in (("fusion", v.fusion), ("alpha", v.alpha), ("rerank", v.rerank),
                                              ("generator", v.generator), ("prompt", v.prompt), ("index", v.index))
                            if x is not None})
            metrics.VARIANT_REQUESTS.labels(variant.experiment, v.name).inc()
        data["options"] = options
        if caller.token is not None:
            data["auth_token"] = caller.token
        try:
            q = Query.model_validate(data)
        except ValidationError as exc:
            raise ApiError(400, f"invalid query: {describe_validation(exc)}") from exc
        self.bounded(q)
        return q

    def bounded(self, q: Query) -> None:
        """400 when the query's deadline is past the gateway's timeout or its context over the gateway's caps."""
        most = int(self.s.gateway.request_timeout_s * 1000)
        if q.deadline_ms is not None and q.deadline_ms > most:
            raise ApiError(400, f"invalid query: deadline_ms is at most {most} (STREAMRAG_GATEWAY_REQUEST_TIMEOUT_S)")
        if len(q.context) > MAX_CONTEXT_TURNS or sum(len(t.content) for t in q.context) > MAX_CONTEXT_CHARS:
            raise ApiError(400, f"invalid query: context is at most {MAX_CONTEXT_TURNS} turns and "
                                f"{MAX_CONTEXT_CHARS} characters")

    def timeout(self, q: Query) -> float:
        t = self.s.gateway.request_timeout_s
        return min(t, q.deadline_ms / 1000) if q.deadline_ms else t

    async def answers(self, q: Query, route: str,
                      variant: Assignment | None = None) -> AsyncIterator[AnswerSources | AnswerDelta | Answer]:
        """The query's sources (when it streams), deltas and final answer; ApiError 409 (its id is in use here), 504
        (no answer in time)."""
        t0 = time.perf_counter()
        try:
            async for item in self.backend.ask(q, self.timeout(q)):
                if isinstance(item, Answer):
                    metrics.ROUND_TRIP.labels(route, variant.label if variant else "").observe(time.perf_counter() - t0)
                yield item
        except DuplicateQuery as exc:
            raise ApiError(409, f"query_id {q.query_id} is already being answered") from exc
        except AnswerTimeout as exc:
            metrics.TIMEOUTS.labels(route).inc()
            raise ApiError(504, f"no answer within {self.timeout(q):g} s (is a query worker running?)") from exc

    async def final(self, q: Query, route: str, variant: Assignment | None = None) -> Answer:
        async for item in self.answers(q, route, variant):
            if isinstance(item, Answer):
                return item
        raise ApiError(502, "the answer stream ended without a final answer")


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise ApiError(400, f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid request: the body must be a JSON object")
    return body


async def guarded(events: AsyncIterator[str], slot: Slot) -> AsyncIterator[str]:
    """An event stream whose failure after it started is one last ``error`` event (the status is sent already);
    the tenant's stream slot is given back when it ends."""
    try:
        async for e in events:
            yield e
    except ApiError as exc:
        yield sse(error_body(exc.status, exc.message), event="error")
    except Exception as exc:  # Kafka gone mid-answer: the client is told, the process goes on
        yield sse(error_body(503, f"{type(exc).__name__}: {exc}"), event="error")
    finally:
        slot.release()


def streamed(events: AsyncIterator[str], asker: Asker, caller: Caller, headers: dict[str, str]) -> StreamingResponse:
    """Server-sent events, one of the tenant's STREAMRAG_GATEWAY_MAX_STREAMS (429 when all are open)."""
    slot = asker.limits.streams.acquire(caller.tenant)
    return StreamingResponse(guarded(events, slot), media_type="text/event-stream", headers={**SSE_HEADERS, **headers},
                             background=BackgroundTask(slot.release))  # a stream never started is given back too


def router(asker: Asker) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/query")
    async def query(request: Request) -> Response:
        body = await json_body(request)
        stream = bool(body.pop("stream", False)) or "text/event-stream" in request.headers.get("accept", "")
        principal = body.get("principal")
        caller = asker.caller(request, body.get("tenant"), principal.get("user") if isinstance(principal, dict) else None)
        variant = asker.variant(caller)
        q = asker.query(body, caller, stream, variant)
        headers = variant_header(variant)
        if not stream:
            a = await asker.final(q, "query", variant)
            status = answer_status(a)
            content = a.model_dump(mode="json") if status == 200 else {
                **error_body(status, a.error or "error"), "answer": a.model_dump(mode="json")}
            return JSONResponse(content, status_code=status, headers=headers)

        async def events() -> AsyncIterator[str]:
            async for item in asker.answers(q, "query", variant):
                # sources (before the first token), delta, ..., answer
                yield sse(item.model_dump(mode="json"), event="answer" if isinstance(item, Answer) else item.kind)

        return streamed(events(), asker, caller, headers)

    @r.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await json_body(request)
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as exc:
            raise ApiError(400, f"invalid request: {describe_validation(exc)}") from exc
        question = question_of(req)
        if question is None:
            raise ApiError(400, "invalid request: no user message with text")
        caller = asker.caller(request, req.tenant, req.user)
        fields: dict[str, Any] = {"text": question,
                                  "context": context_of(req, MAX_CONTEXT_TURNS, MAX_CONTEXT_CHARS)}
        fields.update({k: v for k, v in (("top_k", req.top_k), ("filters", req.filters), ("options", req.options)) if v})
        variant = asker.variant(caller)
        q = asker.query(fields, caller, req.stream, variant)
        headers = variant_header(variant)
        created = int(time.time())
        if not req.stream:
            a = await asker.final(q, "chat", variant)
            status = answer_status(a)
            if status != 200:
                return JSONResponse(error_body(status, a.error or "error"), status_code=status, headers=headers)
            return JSONResponse(completion(a, req.model, created, question), headers=headers)

        async def events() -> AsyncIterator[str]:
            role = {"role": "assistant", "content": ""}
            first = True
            streamed = ""
            async for item in asker.answers(q, "chat", variant):
                if first:  # the first chunk: the assistant's role, and the sources when they lead (they do when known)
                    first = False
                    extra = sources_extra(item) if isinstance(item, AnswerSources) else None
                    yield sse(chunk(q.query_id, req.model, created, role, extra=extra))
                if isinstance(item, AnswerSources):
                    continue
                if isinstance(item, AnswerDelta):
                    if item.reset or not item.delta:
                        continue  # what was sent cannot be unsent: the final answer follows after a rule
                    streamed += item.delta
                    yield sse(chunk(q.query_id, req.model, created, {"content": item.delta}))
                else:
                    for c in final_chunks(item, streamed, req.model, created, question):
                        yield sse(c)
            yield sse("[DONE]")

        return streamed(events(), asker, caller, headers)

    return r
