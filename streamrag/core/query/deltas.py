"""A query's streamed messages as values (the query flow sends them through its sink, before the final answer):
its sources (``AnswerSources``, once, ahead of everything else) and its answer deltas."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streamrag.core.answering import citation, snippet
from streamrag.core.generation.injection import neutralise
from streamrag.core.retrieval import Ranked
from streamrag.schemas.models import Answer, AnswerDelta, AnswerSources, Citation, Query


@dataclass(frozen=True, slots=True)
class Delta:
    delta: AnswerDelta | AnswerSources
    topic: str  # the query's reply_to, or the answers topic


def source(r: Ranked, guard: bool = True) -> Citation:
    """One retrieved chunk as a source: its citation, the snippet without instruction-like text when ``guard``."""
    c = citation(r)
    return c.model_copy(update={"snippet": snippet(neutralise(r.hit.text)[0])}) if guard else c


def ranked_sources(q: Query, ranked: Sequence[Ranked], guard: bool = True) -> AnswerSources:
    """The sources an answer is about to be written from: retrieval's chunks for the query's principal, in rank
    order (source n is the answer's [n]); none when nothing relevant was found (pass ``ranked`` empty)."""
    return AnswerSources(query_id=q.query_id, tenant=q.tenant, sources=[source(r, guard) for r in ranked[: q.top_k]])


def answer_sources(q: Query, a: Answer) -> AnswerSources:
    """A cached answer's sources: its citations (given to this principal by the cache's ACL check)."""
    return AnswerSources(query_id=q.query_id, tenant=q.tenant, sources=list(a.citations), cached=True)


class EmittedDeltas:
    """One query's deltas handed to ``emit`` in order (``seq`` counts them; its sources are not counted)."""

    def __init__(self, query_id: str, topic: str, emit: Callable[[Delta], None], tenant: str = "") -> None:
        self.query_id = query_id
        self.tenant = tenant
        self.topic = topic
        self.emit = emit
        self.seq = 0

    def _send(self, d: AnswerDelta) -> None:
        self.emit(Delta(d, self.topic))
        self.seq += 1

    def sources(self, s: AnswerSources) -> None:
        self.emit(Delta(s, self.topic))

    def delta(self, text: str, generator: str) -> None:
        self._send(AnswerDelta(query_id=self.query_id, tenant=self.tenant, seq=self.seq, delta=text, generator=generator))

    def reset(self, generator: str) -> None:
        self._send(AnswerDelta(query_id=self.query_id, tenant=self.tenant, seq=self.seq, generator=generator, reset=True))

    def close(self) -> None:
        """Nothing to flush: the flow's sink delivers the deltas before the final answer."""
