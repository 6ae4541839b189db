"""The gateway's ASGI application: its routes, limits and error handling over one ``Backend``.

``create_app(settings)`` connects to Kafka when it starts (its own reply topic) and lets go when it stops;
tests hand it a fake backend instead."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamrag.connectors.auth_keys import load_verifier
from streamrag.core.settings import Settings
from streamrag.gateway import asking, errors, metrics, writing
from streamrag.gateway.backend import Backend, KafkaBackend
from streamrag.gateway.identity import Identity, TenantRateLimit
from streamrag.gateway.limits_mw import BodyLimit


def chat_page() -> str:
    return resources.files("streamrag.gateway").joinpath("static/index.html").read_text(encoding="utf-8")


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
    identity = Identity(s.auth_on, load_verifier(s.auth.tenants) if s.auth_on else None)
    asker = asking.Asker(s, used, identity, TenantRateLimit(s.gateway.rate_limit, s.gateway.rate_limit_storage))
    app.include_router(asking.router(asker))
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

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await used.readiness()
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": checks}
        if not ready:
            body.update(errors.error_body(503, "not ready: " + "; ".join(f"{k}: {v}" for k, v in checks.items()
                                                                          if v != "ok")))
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    page = chat_page()

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
