"""A document's history and its rollback over HTTP, for the caller's tenant (with auth on: the roles in
STREAMRAG_GATEWAY_DOCUMENT_ROLES only):

``GET /v1/documents/{doc_id}/history``: the kept versions, newest first (core.ingest.history);
``POST /v1/documents/{doc_id}/rollback`` ``{"to": N}``: version N's content published again as a new, higher
version onto the documents topic like any write (202; with ``?wait=S``, 200 once the ingest worker applied it).
These routes are matched before ``GET /v1/documents/{doc_id}``: a document id ending in ``/history`` is read
with ``?tenant=`` there no more (use its history)."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from streamrag.connectors.lancedb_history import LanceHistory
from streamrag.core.errors import ApplyTimeout
from streamrag.core.ingest.history import RollbackRefused, public, restored_change
from streamrag.core.settings import Settings
from streamrag.gateway.asking import Asker, json_body
from streamrag.gateway.errors import ApiError, status_of
from streamrag.gateway.writing import may_manage_documents, publisher_of


def router(s: Settings, asker: Asker) -> APIRouter:
    r = APIRouter()
    history = LanceHistory(s.lancedb_path(), s.index.history_retention_days)

    def kept() -> LanceHistory:
        if not history.enabled:
            raise ApiError(404, "no document history is kept (STREAMRAG_HISTORY_RETENTION_DAYS=0)")
        return history

    async def versions(tenant: str, doc_id: str) -> list[dict[str, Any]]:
        h = kept()
        return await to_thread.run_sync(lambda: h.versions(tenant, doc_id))

    @r.get("/v1/documents/{doc_id:path}/history")
    async def list_history(request: Request, doc_id: str, tenant: str | None = None) -> JSONResponse:
        caller = asker.caller(request, tenant)
        may_manage_documents(s, caller)
        rows = await versions(caller.tenant, doc_id)
        if not rows:
            raise ApiError(404, f"document {doc_id[:200]!r} of tenant {caller.tenant} has no kept versions")
        return JSONResponse({"tenant": caller.tenant, "doc_id": doc_id, "versions": [public(x) for x in rows]})

    @r.post("/v1/documents/{doc_id:path}/rollback")
    async def roll_back(request: Request, doc_id: str, wait: float = 0.0) -> JSONResponse:
        body = await json_body(request)
        to = body.get("to")
        if not isinstance(to, int) or isinstance(to, bool) or to < 0:
            raise ApiError(400, 'invalid request: {"to": VERSION} names a kept version (an integer >= 0)')
        if set(body) - {"to", "tenant"}:
            raise ApiError(400, "invalid request: only to (and tenant, with auth off) are accepted")
        most = s.gateway.max_wait_s
        if not 0 <= wait <= most:
            raise ApiError(400, f"invalid request: wait is 0 to {most:g} seconds (STREAMRAG_GATEWAY_MAX_WAIT_S)")
        caller = asker.caller(request, body.get("tenant"))
        may_manage_documents(s, caller)
        rows = await versions(caller.tenant, doc_id)
        current = await asker.backend.document(caller.tenant, doc_id)
        try:
            change = restored_change(rows, to, int(current["version"]) if current else 0)
        except RollbackRefused as exc:
            raise ApiError(404 if exc.missing else 409, f"cannot roll {doc_id[:200]!r} back: {exc}") from exc
        try:
            applied = await asker.backend.write_documents([change], wait, publisher=publisher_of(caller))
        except ApplyTimeout as exc:  # published, not applied in time
            raise ApiError(status_of("deadline_exceeded"), str(exc)) from exc
        out = {"doc_id": doc_id, "restored": to, "version": change.version}
        if wait:
            return JSONResponse({**out, "status": applied.get(change.key, "")}, status_code=200)
        return JSONResponse({**out, "status": "published"}, status_code=202)

    return r
