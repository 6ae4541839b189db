"""Request checks as ASGI middleware: a body over the size limit is refused with 413 before it is all read, and
a request body that is not ``application/json`` with 415 (a cross-site form or ``text/plain`` post, which a
browser sends without asking first, never reaches a route)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamrag.gateway.errors import ApiError, error_response


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, self._why())(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, self._why())  # answered by the app's ApiError handler
            return msg

        await self.app(scope, limited, send)

    def _why(self) -> str:
        return f"request body over {self.max_bytes} bytes (STREAMRAG_GATEWAY_MAX_BODY_BYTES)"


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def media_type(scope: Scope) -> str:
    raw = dict(scope.get("headers") or []).get(b"content-type", b"")
    return raw.decode("latin-1").split(";", 1)[0].strip().lower()


class JsonOnly:
    """415 for a POST / PUT / PATCH whose Content-Type is not application/json."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("method") in BODY_METHODS and media_type(scope) != "application/json":
            got = media_type(scope) or "none"
            await error_response(415, f"request bodies are JSON: send Content-Type: application/json "
                                      f"(not {got[:80]})")(scope, receive, send)
            return
        await self.app(scope, receive, send)
