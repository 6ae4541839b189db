"""The gateway's ASGI application: its routes, limits and error handling over one ``Backend``.

``create_app(settings)`` connects to Kafka when it starts (its own reply topic) and lets go when it stops;
tests hand it a fake backend instead. Request bodies are JSON only (415 otherwise), cross-site calls are
allowed only from STREAMRAG_GATEWAY_CORS_ORIGINS, /readyz names its checks but never their addresses or errors
(those go to the log), and in the production profile /metrics is off this listener unless
STREAMRAG_GATEWAY_METRICS_PUBLIC says otherwise."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamrag.connectors.auth_keys import verifier_for
from streamrag.core.settings import Settings
from streamrag.gateway import asking, doc_history, errors, metrics, writing
from streamrag.gateway.backend import Backend, KafkaBackend
from streamrag.gateway.identity import Identity, Limits
from streamrag.gateway.limits_mw import BodyLimit, JsonOnly

log = logging.getLogger(__name__)


def chat_page() -> str:
    return resources.files("streamrag.gateway").joinpath("static/index.html").read_text(encoding="utf-8")


def metrics_public(s: Settings) -> bool:
    """/metrics on the API's own port: as configured, else everywhere but in the production profile."""
    g = s.gateway
    return g.metrics_public if g.metrics_public is not None else s.worker.profile != "production"


def create_app(s: Settings, backend: Backend | None = None) -> FastAPI:
    kafka = KafkaBackend(s) if backend is None else None
    used: Backend = backend if backend is not None else kafka  # type: ignore[assignment]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if kafka is not None:
            kafka.start()
        try:
            yield
        finally:
            if kafka is not None:
                kafka.stop()

    app = FastAPI(title="streamrag gateway", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=s.gateway.max_body_bytes)
    app.add_middleware(JsonOnly)
    if s.gateway.cors_origins:  # outermost: preflights answered, errors carry the headers too
        app.add_middleware(CORSMiddleware, allow_origins=s.gateway.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Accept"],
                           expose_headers=["X-Streamrag-Variant", "Retry-After"])
    identity = Identity(s.auth_on, verifier_for(s.auth, s.worker.profile == "production") if s.auth_on else None)
    asker = asking.Asker(s, used, identity, Limits(s.gateway))
    app.include_router(asking.router(asker))
    app.include_router(doc_history.router(s, asker))  # before writing's GET /v1/documents/{doc_id:path}
    app.include_router(writing.router(s, asker))

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        route = request.scope.get("route")
        metrics.REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    last_why = [""]

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await used.readiness()
        failed = {k: v for k, v in checks.items() if v != "ok"}
        why = "; ".join(f"{k}: {v}" for k, v in failed.items())
        if why != last_why[0]:  # the reasons name addresses and errors: the log has them (once per change),
            last_why[0] = why   # an unauthenticated probe does not
            if why:
                log.warning("not ready: %s", why)
        body: dict[str, object] = {"status": "not ready" if failed else "ready",
                                   "checks": {k: "unavailable" if k in failed else "ok" for k in checks}}
        if failed:
            body.update(errors.error_body(503, "not ready: " + ", ".join(failed) + " unavailable"))
        return JSONResponse(body, status_code=503 if failed else 200)

    if metrics_public(s):
        @app.get("/metrics")
        async def prometheus() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    page = chat_page()

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
