"""How uvicorn serves the gateway: bounded connections, request heads, idle keep-alives, and a deadline for a
request head to arrive.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but waits for ever for the head of a
request that trickles in a byte at a time (a new connection, or the next request on a kept one): a few hundred
such clients hold every connection ``limit_concurrency`` allows. ``HeadDeadlineH11`` closes a connection whose
request head is not complete ``header_timeout_s`` after it began, and answers 431 to a head over
``max_header_bytes`` (h11's ``max_incomplete_event_size`` lets a larger one through when it arrives whole)."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from streamrag.core.config import GatewayConfig

_TOO_LARGE = b'{"error": {"message": "request head over STREAMRAG_GATEWAY_MAX_HEADER_BYTES", "code": 431}}'
HEAD_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                  b"connection: close\r\ncontent-length: " + str(len(_TOO_LARGE)).encode() + b"\r\n\r\n" + _TOO_LARGE)


class HeadDeadlineH11(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request head (from the connection or its first byte)
    and a size limit that holds however the head arrives (h11's own counts only a head still incomplete)."""

    def __init__(self, *args: Any, header_timeout_s: float = 10.0, max_head_bytes: int = 16_384, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.max_head_bytes = max_head_bytes
        self.head_deadline: asyncio.TimerHandle | None = None
        self.head_bytes = 0  # of the head being received
        self.head_tail = b""  # its last 3 bytes: the blank line that ends it may span two reads

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        if before is None or before.response_complete:  # between requests: a head is coming
            self.arm_head_deadline()
            if not self.head_fits(data):
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)
        if self.cycle is not before and self.head_deadline is not None:  # its head is complete
            self.head_deadline.cancel()
            self.head_deadline = None

    def head_fits(self, data: bytes) -> bool:
        """Count the head's bytes in ``data`` (up to the blank line that ends it); False when over the limit."""
        seen = self.head_tail + data
        end = seen.find(b"\r\n\r\n")
        self.head_bytes += (end + 4 - len(self.head_tail)) if end >= 0 else len(data)
        if self.head_bytes > self.max_head_bytes:
            return False
        if end >= 0:
            self.head_bytes, self.head_tail = 0, b""
        else:
            self.head_tail = seen[-3:]
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.head_deadline is not None:
            self.head_deadline.cancel()
        super().connection_lost(exc)

    def arm_head_deadline(self) -> None:
        if self.head_deadline is None:
            self.head_deadline = self.loop.call_later(self.header_timeout_s, self.head_overdue, self.cycle)

    def head_overdue(self, cycle_then: object) -> None:
        """The deadline passed: close the connection when no new request head came since it was set."""
        self.head_deadline = None
        if self.cycle is cycle_then and not self.transport.is_closing():
            self.transport.close()


def server_options(g: GatewayConfig) -> dict[str, Any]:
    """uvicorn.run / uvicorn.Config keyword arguments from the gateway's settings."""
    return {
        "http": functools.partial(HeadDeadlineH11, header_timeout_s=g.header_timeout_s,
                                  max_head_bytes=g.max_header_bytes),
        "timeout_keep_alive": max(int(g.keep_alive_s), 1),
        "h11_max_incomplete_event_size": g.max_header_bytes,
        "limit_concurrency": g.max_connections,
    }
