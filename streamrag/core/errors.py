"""Errors that the CLI turns into one clear line and a non-zero exit, and refusals returned as values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: `streamrag --help` imports this module, and not the schemas
    from streamrag.schemas.vocabulary import ErrorCode


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why something is refused, returned as a value: a code (what callers branch on, the gateway's HTTP status,
    metrics) and the message a person reads."""

    code: ErrorCode
    message: str

    def __str__(self) -> str:
        return self.message


class StreamragError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(StreamragError):
    """A setting is missing or invalid."""


class ServiceUnavailable(StreamragError):
    """Kafka, Redis or the store did not answer in time."""


class ModelLoadError(StreamragError):
    """The embedding or rerank model could not be loaded."""


class TransientError(StreamragError):
    """A failure that may pass on its own (I/O, network, a commit conflict, device memory), as an adapter
    classified its library's exception: retried with backoff (core.retry)."""


class TemporaryFailure(StreamragError):
    """A temporary failure outlasted its retry budget: the worker stops without moving its offsets."""


class IndexRefused(StreamragError):
    """An index operation that was refused (unknown name, dropping the active index, promoting a lagging one)."""


class SearchFailed(StreamragError):
    """A retriever's search failed: the query is answered from the other retriever, marked degraded."""


class ApplyTimeout(ServiceUnavailable):
    """Written documents were not applied by an ingest worker within the wait asked for."""
