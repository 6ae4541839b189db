"""Request size limit (ASGI middleware): a body over the limit is refused with 413 before it is all read."""

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
