"""LanceDB's exceptions mapped to the project's: the one place that reads them.

Lance raises ``OSError`` for object-store and file I/O and ``RuntimeError``/``ValueError`` with a message for
everything else, a commit conflict between writers included; only this adapter knows those messages. A
failure that may pass on its own becomes ``TransientError`` (retried by core.retry); anything else is
raised as it was (a property of the batch: isolated and dead-lettered).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from streamrag.core.errors import StreamragError, TransientError

# what Lance and its object stores say when a retry can succeed
# ("error sending request": the object store's HTTP client reached no server, e.g. while it restarts)
_LANCE_TRANSIENT = ("commit conflict", "retryable", "timed out", "timeout", "temporarily", "connection reset",
                    "connection refused", "error sending request", "too many requests", "slow down", "throttl",
                    "unavailable")


def is_lance_transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or any(w in str(exc).lower() for w in _LANCE_TRANSIENT)


@contextmanager
def lance_errors(what: str) -> Iterator[None]:
    """Run a LanceDB call; a failure that may pass is re-raised as ``TransientError``."""
    try:
        yield
    except StreamragError:
        raise
    except Exception as exc:
        if is_lance_transient(exc):
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc
        raise
