"""The query logic, independent of transport, as named steps that a thin coordinator (``QueryProcessor``) runs:

- gate (core/query/gate.py): bytes -> a query the worker will answer (identity, reply-to, expiry, options
  policy), or its dead letter and error answer;
- retrieve (core/query/retrieve.py, a batch at once): index version -> exact cache -> expand -> search ->
  semantic cache -> fuse -> rerank; each query becomes its answer already (a cache hit, an error, expired) or a
  ``Prepared`` one;
- generate (core/query/generate.py, one query, in a generation slot): the draft answer;
- compose (core/query/compose.py): the answer (timings, enriched citations, usage) and its cache entry.

``prepare`` is the retrieve step; ``finish``/``reply`` run generate and compose. ``answer_many`` runs them all,
one query after another (the CLI, the embedded path); the query flow runs ``reply`` concurrently
(core/query/concurrent.py, slots.py). Every query whose id can be read gets exactly one answer, an ``error``
one when it is invalid or its answering fails, so nobody waits forever; each answer's metrics are observed
here, once. What still raises (a bug outside the per-query ``try``) is caught by the query flow's step guard,
which answers that query with an error and dead-letters it.

``query_processor`` wires the steps (``flows.components.make_query_processor`` gives it the adapters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from streamrag.core.auth import TokenVerifier
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.drift import DriftMonitor
from streamrag.core.evidence import EvidenceStore
from streamrag.core.generation.backend import DeltaStream, Generator
from streamrag.core.generation.expansion import QueryExpander
from streamrag.core.index_versions import DEFAULT_INDEX, IndexView, ViewSource
from streamrag.core.ports import Embedder, IndexReader
from streamrag.core.query.compose import ComposeStep
from streamrag.core.query.deltas import answer_sources, ranked_sources
from streamrag.core.query.forward import Forwarded
from streamrag.core.query.gate import QueryGate
from streamrag.core.query.generate import GenerateStep
from streamrag.core.query.observe import observe_answer
from streamrag.core.query.parse import parse_query
from streamrag.core.query.replies import Output, Parsed, Reply, error_answer, expired
from streamrag.core.query.retrieve import IndexRetrievers, Prepared, Ready, RetrieveStep
from streamrag.core.records import RawRecord
from streamrag.core.rerank import Reranker
from streamrag.core.retrieval import Retriever
from streamrag.core.settings import Settings
from streamrag.schemas.models import Answer, AnswerSources, Query

__all__ = ["DeltaStreams", "OpenStream", "Output", "Parsed", "Prepared", "QueryProcessor", "Ready", "Reply",
           "error_answer", "expired", "query_processor"]

log = logging.getLogger(__name__)


class OpenStream(DeltaStream, Protocol):
    seq: int

    def sources(self, s: AnswerSources) -> None: ...

    def close(self) -> None: ...


# (query, topic) -> where that query's answer deltas go
DeltaStreams = Callable[[Query, str], OpenStream]


class QueryProcessor:
    """Runs the steps; its collaborators live on them, and replacing one here (``qp.cache = c``) reaches each
    step that uses it."""

    verifier = Forwarded[TokenVerifier | None]("gate.verifier")
    topic_exists = Forwarded[Callable[[str], bool] | None]("gate.topic_exists")
    cache = Forwarded[SemanticCache | None]("retrieval.cache", "composition.cache")
    expander = Forwarded[QueryExpander | None]("retrieval.expander")
    drift = Forwarded[DriftMonitor | None]("retrieval.drift")
    reranker_for = Forwarded[Callable[[str], Reranker]]("retrieval.reranker_for")
    views = Forwarded[ViewSource]("retrieval.indexes.views")
    retriever = Forwarded[Retriever]("retrieval.indexes.retriever")  # the default index's
    retriever_of = Forwarded[Callable[[IndexView], Retriever]]("retrieval.indexes.retriever_of")
    store = Forwarded[IndexReader]("retrieval.indexes.default.store")
    embedder = Forwarded[Embedder]("retrieval.indexes.default.embedder")
    generator = Forwarded[Generator]("generation.generator")
    # new cache entries leave on the Reply (the flow's sink publishes them) instead of the cache's producer
    entries_on_stream = Forwarded[bool]("composition.entries_on_stream")

    def __init__(self, settings: Settings, gate: QueryGate, retrieval: RetrieveStep, generation: GenerateStep,
                 composition: ComposeStep, deltas: DeltaStreams | None = None) -> None:
        self.s = settings
        self.gate = gate
        self.retrieval = retrieval
        self.generation = generation
        self.composition = composition
        self.deltas = deltas

    # -- transport-facing -------------------------------------------------------------------
    def parse(self, records: Sequence[RawRecord]) -> list[tuple[RawRecord, Parsed]]:
        """Each record -> its query (verified, within policy: core/query/gate.py), or its dead letter and error
        answer; expired queries answered."""
        now_ms = time.time() * 1000
        return [item for rec in records for item in self.gate.admit(rec, parse_query(rec, self.s.json_limits), now_ms)]

    def answer(self, items: Sequence[tuple[RawRecord, Parsed]]) -> list[tuple[RawRecord, Output]]:
        """Answer the queries among parsed items; other items pass through."""
        todo = [(rec, q) for rec, q in items if isinstance(q, Query)]
        out: list[tuple[RawRecord, Output]] = [(rec, o) for rec, o in items if not isinstance(o, Query)]
        answers = self.answer_many([q for _, q in todo])
        out.extend((rec, Reply(a, q.reply_to, q)) for (rec, q), a in zip(todo, answers, strict=True))
        return out

    def process_batch(self, records: Sequence[RawRecord]) -> list[tuple[RawRecord, Output]]:
        return self.answer(self.parse(records))

    # -- the steps --------------------------------------------------------------------------
    def answer_many(self, queries: Sequence[Query]) -> list[Answer]:
        """Each query's answer, in order; generation one query after another."""
        out = []
        for q, r in zip(queries, self.prepare(queries), strict=True):
            sources = self.sources(q, r)
            stream = self._open_stream(q) if isinstance(r, Prepared) or sources is not None else None
            if stream is not None and sources is not None:
                stream.sources(sources)  # before the model runs
            out.append(self.finish(r, stream) if isinstance(r, Prepared) else r)
            if stream is not None:
                stream.close()
        return out

    def sources(self, q: Query, r: Ready) -> AnswerSources | None:
        """What a streaming query (``options.stream``) is told first: the sources its answer is written from (none
        when nothing relevant was found), or a cached answer's citations; None when it does not stream, or for an
        error answer."""
        if not q.options.stream:
            return None
        if isinstance(r, Prepared):
            return ranked_sources(q, r.ranked if r.relevant else [], self.s.generation.injection_guard)
        return answer_sources(q, r) if r.cached else None

    def prepare(self, queries: Sequence[Query]) -> list[Ready]:
        """The retrieve step (core/query/retrieve.py): each query's answer already (cache hit, error, expired), or
        the query retrieved and ranked."""
        out = self.retrieval.prepare(queries)
        for r in out:
            if isinstance(r, Answer):
                observe_answer(r, self.cache)
        return out

    def finish(self, p: Prepared, stream: DeltaStream | None = None) -> Answer:
        """Generate, enrich, keep in the cache: the query's answer (an error one if that fails)."""
        return self.reply(p, stream).answer

    def reply(self, p: Prepared, stream: DeltaStream | None = None) -> Reply:
        """``finish``'s answer as a reply, with its new cache entry when ``entries_on_stream`` (for the flow's sink)."""
        entry = None
        try:
            ans, acl = self.composition.answer(p, self.generation.draft(p, stream), getattr(stream, "seq", 0))
            entry = self.composition.keep(p, ans, acl)
        except Exception as exc:  # one query's failure is its own error answer
            log.exception("answering %s failed", p.query.query_id)
            ans = error_answer(p.query, "generation_failed", f"{type(exc).__name__}: {exc}")
        observe_answer(ans, self.cache)
        return Reply(ans, p.query.reply_to, p.query, entry if self.entries_on_stream else None)

    def extractive(self, p: Prepared, reason: str) -> Answer:
        """The answer at once, without a model (no generation slot freed up before its deadline)."""
        ans, _ = self.composition.answer(p, self.generation.without_model(p, reason))
        observe_answer(ans, self.cache)
        return ans

    def _open_stream(self, q: Query) -> OpenStream | None:
        if self.deltas is not None and (self.s.generation.stream_deltas or q.options.stream):
            return self.deltas(q, q.reply_to or self.s.topics.answers)
        return None


def query_processor(
    settings: Settings,
    store: IndexReader,
    embedder: Embedder,
    reranker_for: Callable[[str], Reranker],
    generator: Generator | None = None,
    cache: SemanticCache | None = None,
    *,
    expander: QueryExpander | None = None,
    deltas: DeltaStreams | None = None,
    topic_exists: Callable[[str], bool] | None = None,
    verifier: TokenVerifier | None = None,
    drift: DriftMonitor | None = None,
    views: ViewSource | None = None,
    evidence: EvidenceStore | None = None,
    measure_evidence: bool = True,
) -> QueryProcessor:
    """The steps wired into a processor. ``views``: the index versions to answer on (the active one read per
    batch); without it, the configured index in ``store``, fixed. ``evidence``: where fusion evidence is shared;
    ``measure_evidence``: False for a one-off process (it reads the evidence and never measures it)."""
    indexes = IndexRetrievers(IndexView(DEFAULT_INDEX, settings, store, embedder), views, evidence, measure_evidence)
    g = settings.generation
    return QueryProcessor(
        settings,
        QueryGate(settings, verifier, topic_exists),
        RetrieveStep(g, indexes, reranker_for, cache, expander=expander, drift=drift),
        GenerateStep(g, generator),
        ComposeStep(g, cache),
        deltas,
    )
