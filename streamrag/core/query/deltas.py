"""A query's answer deltas as values (the query flow sends them through its sink, before the final answer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from streamrag.schemas.models import AnswerDelta


@dataclass(frozen=True, slots=True)
class Delta:
    delta: AnswerDelta
    topic: str  # the query's reply_to, or the answers topic


class EmittedDeltas:
    """One query's deltas handed to ``emit`` in order (``seq`` counts them)."""

    def __init__(self, query_id: str, topic: str, emit: Callable[[Delta], None], tenant: str = "") -> None:
        self.query_id = query_id
        self.tenant = tenant
        self.topic = topic
        self.emit = emit
        self.seq = 0

    def _send(self, d: AnswerDelta) -> None:
        self.emit(Delta(d, self.topic))
        self.seq += 1

    def delta(self, text: str, generator: str) -> None:
        self._send(AnswerDelta(query_id=self.query_id, tenant=self.tenant, seq=self.seq, delta=text, generator=generator))

    def reset(self, generator: str) -> None:
        self._send(AnswerDelta(query_id=self.query_id, tenant=self.tenant, seq=self.seq, generator=generator, reset=True))

    def close(self) -> None:
        """Nothing to flush: the flow's sink delivers the deltas before the final answer."""
