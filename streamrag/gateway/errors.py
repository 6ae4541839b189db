"""Errors as JSON with one clear message and the right status, in OpenAI's error shape (SDKs read it)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from streamrag.core.errors import ServiceUnavailable, StreamragError
from streamrag.schemas.vocabulary import ErrorCode

log = logging.getLogger(__name__)

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
         405: "invalid_request_error", 409: "conflict_error", 413: "request_too_large", 415: "invalid_request_error", 429: "rate_limit_error",
         502: "upstream_error", 503: "unavailable_error", 504: "timeout_error"}

# the HTTP status of each error code (an error answer's, a refusal's): the one place a code becomes a status;
# a code not here (a failure of the workers' own) is 502
STATUS_OF: dict[ErrorCode, int] = {
    "unauthenticated": 401, "forbidden": 403, "invalid_query": 400, "rate_limited": 429, "unavailable": 503,
    "expired": 504, "deadline_exceeded": 504,
}


def status_of(code: ErrorCode | None) -> int:
    """The HTTP status of an error with this code (None: an answer from before codes, 502)."""
    return STATUS_OF.get(code, 502) if code is not None else 502


class ApiError(Exception):
    """An answer to the client that is not a success: its status and one line saying why."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


def error_body(status: int, message: str) -> dict[str, object]:
    return {"error": {"message": message, "type": TYPES.get(status, "error"), "code": status}}


def error_response(status: int, message: str, retry_after_s: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def first_validation_error(exc: RequestValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "invalid request"
    e = errs[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
    return f"invalid request: {where + ': ' if where else ''}{e.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    """Every failure becomes a JSON error; an unexpected one is logged and answered 500, never a crash."""

    @app.exception_handler(ApiError)
    async def _api(_r: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, first_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_r: Request, exc: ServiceUnavailable) -> JSONResponse:
        return error_response(503, str(exc))

    @app.exception_handler(StreamragError)
    async def _streamrag(_r: Request, exc: StreamragError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in the gateway")
        return error_response(500, f"internal error: {type(exc).__name__}")
