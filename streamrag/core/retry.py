"""The failure policy: temporary errors are retried with backoff for a bounded time; a batch that
fails for good is split until the records that fail are alone, so only they are dead-lettered.

A temporary error that outlasts its retry budget is raised as ``TemporaryFailure``: the worker
stops with that line and its offsets stay where they are, so a restart applies the records again
(nothing is dead-lettered for an outage).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from streamrag.core.errors import ServiceUnavailable, TemporaryFailure, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

def is_transient(exc: BaseException) -> bool:
    """True for errors that may pass on its own. Adapters say so by raising ``TransientError`` (they alone
    read their libraries' exceptions); ``OSError`` (ConnectionError, TimeoutError) and ``ServiceUnavailable``
    are transient wherever they come from. Nothing is classified by its message here."""
    return isinstance(exc, TransientError | ServiceUnavailable | OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter (tenacity) on transient errors, for at most ``max_s``."""

    max_s: float = 60.0
    initial_s: float = 0.1
    max_wait_s: float = 5.0

    def call(self, what: str, fn: Callable[[], R]) -> R:
        """fn() with transient errors retried; the last error is re-raised as it was."""

        def note(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s failed (attempt %d, retrying): %s", what, state.attempt_number, exc)

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_delay(self.max_s),
            # jitter in proportion to the first wait (tenacity's default adds up to a whole second each time,
            # which alone could use up a short max_s before the third attempt)
            wait=wait_exponential_jitter(initial=self.initial_s, max=self.max_wait_s, jitter=self.initial_s),
            before_sleep=note,
            reraise=True,
        )
        return retrying(fn)


def run_isolating(
    what: str, items: Sequence[T], fn: Callable[[list[T]], R], policy: RetryPolicy
) -> list[tuple[list[T], R | None, BaseException | None]]:
    """Apply ``fn`` to the whole batch; on a permanent error split it in halves, recursively, so
    every item that can succeed does, and each failing item is reported alone with its error.

    Transient errors are retried by ``policy``; one that outlasts it raises ``TemporaryFailure``.
    """
    batch = list(items)
    if not batch:
        return []
    try:
        return [(batch, policy.call(what, lambda: fn(batch)), None)]
    except Exception as exc:
        if is_transient(exc):
            raise TemporaryFailure(f"{what} kept failing for {policy.max_s:g} s: {exc}") from exc
        if len(batch) == 1:
            log.warning("%s failed for good for one record: %s", what, exc)
            return [(batch, None, exc)]
        log.info("%s failed for a batch of %d (%s); splitting it", what, len(batch), exc)
    mid = len(batch) // 2
    return run_isolating(what, batch[:mid], fn, policy) + run_isolating(what, batch[mid:], fn, policy)
