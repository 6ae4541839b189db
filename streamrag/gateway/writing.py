"""Documents and feedback: ``POST /v1/documents`` (upserts and deletes onto the documents topic; 202, or with
``?wait=S`` 200 once the ingest worker applied them: S at most STREAMRAG_GATEWAY_MAX_WAIT_S, and at most
STREAMRAG_GATEWAY_MAX_WAITING_UPLOADS of a tenant waiting at once, 429 past it), ``GET /v1/documents/{doc_id}`` (the active index's state of
one document) and ``POST /v1/feedback`` (a rating onto the feedback topic, counted in metrics)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from streamrag.core.errors import ApplyTimeout
from streamrag.core.json_limits import describe_validation
from streamrag.core.settings import Settings
from streamrag.gateway import metrics
from streamrag.gateway.asking import Asker, json_body
from streamrag.gateway.errors import ApiError, status_of
from streamrag.gateway.identity import Caller
from streamrag.schemas.models import DocumentChange, Feedback

MAX_CHANGES = 1_000


def may_manage_documents(s: Settings, caller: Caller) -> None:
    """With auth on, documents are written and read by the roles in STREAMRAG_GATEWAY_DOCUMENT_ROLES only."""
    roles = s.gateway.document_roles
    if caller.token is not None and roles and not set(roles) & set(caller.roles):
        raise ApiError(403, f"forbidden: documents need one of the roles {', '.join(roles)}")


def publisher_of(caller: Caller) -> str:
    """Who publishes, as the document history keeps it: the verified user (auth on), else unknown ("")."""
    return f"gateway:{caller.user or '?'}" if caller.token is not None else ""


def changes_of(body: Any) -> list[dict[str, Any]]:
    items = body.get("changes") if isinstance(body, dict) and "changes" in body else body
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ApiError(400, "invalid request: a document change, a list of them, or {\"changes\": [...]}")
    if len(items) > MAX_CHANGES:
        raise ApiError(400, f"invalid request: at most {MAX_CHANGES} changes per request")
    return items


def router(s: Settings, asker: Asker) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/documents")
    async def write(request: Request, wait: float = 0.0) -> JSONResponse:
        most = s.gateway.max_wait_s
        if not 0 <= wait <= most:
            raise ApiError(400, f"invalid request: wait is 0 to {most:g} seconds (STREAMRAG_GATEWAY_MAX_WAIT_S)")
        try:
            raw = json.loads(await request.body() or b"null")
        except ValueError as exc:
            raise ApiError(400, f"invalid JSON: {exc}") from exc
        items = changes_of(raw)
        tenants = {i.get("tenant") for i in items if i.get("tenant") is not None}
        if len(tenants) > 1:
            raise ApiError(400, "invalid request: the changes of one request are for one tenant")
        caller = asker.caller(request, next(iter(tenants), None))
        may_manage_documents(s, caller)
        try:
            changes = [DocumentChange.model_validate({**i, "tenant": caller.tenant}) for i in items]
        except ValidationError as exc:
            raise ApiError(400, f"invalid document change: {describe_validation(exc)}") from exc
        slot = asker.limits.uploads.acquire(caller.tenant) if wait else None
        try:
            applied = await asker.backend.write_documents(changes, wait, publisher=publisher_of(caller))
        except ApplyTimeout as exc:  # the documents were written, not applied in time
            raise ApiError(status_of("deadline_exceeded"), str(exc)) from exc
        finally:
            if slot is not None:
                slot.release()
        keys = [c.key for c in changes]
        if wait:
            return JSONResponse({"accepted": len(changes), "applied": applied}, status_code=200)
        return JSONResponse({"accepted": len(changes), "keys": keys}, status_code=202)

    @r.get("/v1/documents/{doc_id:path}")
    async def read(request: Request, doc_id: str, tenant: str | None = None) -> JSONResponse:
        caller = asker.caller(request, tenant)
        may_manage_documents(s, caller)
        doc = await asker.backend.document(caller.tenant, doc_id)
        if doc is None:
            raise ApiError(404, f"document {doc_id[:200]!r} of tenant {caller.tenant} is not in the index")
        return JSONResponse(doc)

    @r.post("/v1/feedback")
    async def feedback(request: Request) -> JSONResponse:
        body = await json_body(request)
        caller = asker.caller(request, body.pop("tenant", None), body.get("user"))
        rating = body.get("rating")
        if "scale" not in body and isinstance(rating, int) and 2 <= rating <= 5:
            body["scale"] = "stars"
        body.pop("user", None)
        variant = asker.variant(caller)
        try:
            fb = Feedback.model_validate({**body, "tenant": caller.tenant, "user": caller.user,
                                          "variant": variant.label if variant else ""})
        except ValidationError as exc:
            raise ApiError(400, f"invalid feedback: {describe_validation(exc)}") from exc
        await asker.backend.send_feedback(fb)
        metrics.FEEDBACK.labels(asker.tenant_label(fb.tenant), fb.scale, str(fb.rating), fb.variant).inc()
        return JSONResponse({"accepted": True, "query_id": fb.query_id}, status_code=202)

    return r
