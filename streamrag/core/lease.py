"""One holder at a time across processes (index maintenance): the port, a lease that is always held (one
process), and a context that keeps a lease renewed while a long task runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger(__name__)


class Lease(Protocol):
    """A named lease with a time to live: the holder renews it before it runs out, others skip the work."""

    ttl_s: float

    def acquire(self) -> bool:
        """Take the lease, or renew it when this holder has it; False while another holder has it (or the
        lease's store does not answer: nobody can tell who holds it, so nobody here acts)."""
        ...

    def release(self) -> None:
        """Give the lease up now (when this holder has it), so another can take it without waiting."""
        ...


class AlwaysHeld:
    """The lease of a single process: always this one's."""

    ttl_s = float("inf")

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


@contextmanager
def kept(lease: Lease, every_s: float | None = None) -> Iterator[threading.Event]:
    """Renew ``lease`` every ``every_s`` (a third of its time to live) while the block runs. The event it
    yields is set when a renewal failed (the lease may be another's by now: stop at the next safe point)."""
    lost = threading.Event()
    if lease.ttl_s == float("inf"):
        yield lost
        return
    stop = threading.Event()
    period = every_s if every_s is not None else lease.ttl_s / 3

    def renew() -> None:
        while not stop.wait(period):
            if not lease.acquire():
                log.warning("lease lost while its work ran: another holder may start the same work")
                lost.set()
                return

    t = threading.Thread(target=renew, name="lease-renewal", daemon=True)
    t.start()
    try:
        yield lost
    finally:
        stop.set()
        t.join(timeout=period + 5)
