"""The query logic, independent of transport, in two halves:

- ``prepare`` (a batch at once): validate -> exact cache -> embed -> semantic cache -> retrieve -> rerank;
  each query becomes its answer already (a cache hit, an error, expired) or a ``Prepared`` one;
- ``finish`` (one query, in a generation slot): generate -> enrich -> cache store.

``answer_many`` runs both, one query after another (the CLI, the embedded path); the query flow runs
``finish`` concurrently (core/query/slots.py). Every query whose id can be read gets exactly one answer,
an ``error`` one when it is invalid or its answering fails, so nobody waits forever. What still raises
(a bug outside the per-query ``try``) is caught by the query flow's step guard, which answers that
query with an error and dead-letters it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from streamrag.core import telemetry
from streamrag.core.answering import ExtractiveAnswerer, lexically_supported
from streamrag.core.auth import TokenVerifier
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.drift import DriftMonitor
from streamrag.core.generation.backend import DeltaStream, Draft, GenerationRequest, Generator
from streamrag.core.generation.expansion import QueryExpander
from streamrag.core.generation.usage import cost
from streamrag.core.index_versions import DEFAULT_INDEX, FixedView, IndexView, ViewSource
from streamrag.core.ports import Embedder, Hit, IndexReader
from streamrag.core.query.asks import follow_up, prompt_style
from streamrag.core.query.deltas import answer_sources, ranked_sources
from streamrag.core.query.enrich import enrich
from streamrag.core.query.gate import QueryGate
from streamrag.core.query.observe import observe_answer
from streamrag.core.query.parse import parse_query
from streamrag.core.query.replies import Output, Parsed, Reply, error_answer, expired, refused_code
from streamrag.core.records import RawRecord
from streamrag.core.rerank import Reranker
from streamrag.core.retrieval import Ranked, Retriever
from streamrag.core.settings import Settings
from streamrag.core.timing import StageTimer
from streamrag.schemas.models import Answer, AnswerSources, CacheEntry, Query, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A query retrieved and ranked: what generation needs, and what its answer is built from."""

    query: Query
    view: IndexView
    ranked: list[Ranked]
    relevant: bool  # something to answer from (else no_answer, and no model is called)
    confidence: float  # retrieval's best dense score
    degraded: list[str]  # retrievers that failed (answered without them)
    vec: Any  # the query's embedding (the cache keeps it with the answer)
    started: float  # time.time() before retrieval (index events after it may supersede what it read)
    timings_ms: dict[str, float]
    deadline: float  # time.monotonic() by which generation must end


Ready = Prepared | Answer


class OpenStream(DeltaStream, Protocol):
    seq: int

    def sources(self, s: AnswerSources) -> None: ...

    def close(self) -> None: ...


# (query, topic) -> where that query's answer deltas go
DeltaStreams = Callable[[Query, str], OpenStream]


class QueryProcessor:
    def __init__(
        self,
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
    ) -> None:
        self.s = settings
        self.store = store
        self.embedder = embedder
        self.retriever = Retriever.for_config(store, settings.retrieval, embedder)
        fixed = IndexView(DEFAULT_INDEX, settings, store, embedder)
        # the index version to answer on, read once per batch: a query finishes on the version it started on
        self.views: ViewSource = views or FixedView(fixed)
        self._retrievers: dict[str, Retriever] = {} if views else {fixed.name: self.retriever}
        self.generator: Generator = generator or ExtractiveAnswerer()
        self.reranker_for = reranker_for
        self.cache = cache
        self.expander = expander
        self.deltas = deltas
        self.gate = QueryGate(settings, verifier, topic_exists)
        self.drift = drift
        # new cache entries leave on the Reply (the flow's sink publishes them) instead of the cache's producer
        self.entries_on_stream = False

    # the gate's collaborators, settable here as before it existed
    @property
    def verifier(self) -> TokenVerifier | None:
        return self.gate.verifier

    @verifier.setter
    def verifier(self, v: TokenVerifier | None) -> None:
        self.gate.verifier = v

    @property
    def topic_exists(self) -> Callable[[str], bool] | None:
        return self.gate.topic_exists

    @topic_exists.setter
    def topic_exists(self, f: Callable[[str], bool] | None) -> None:
        self.gate.topic_exists = f

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

    # -- the work ---------------------------------------------------------------------------
    def retriever_of(self, view: IndexView) -> Retriever:
        r = self._retrievers.get(view.name)
        if r is None:
            r = Retriever.for_config(view.store, view.settings.retrieval, view.embedder)
            self._retrievers[view.name] = r
        return r

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
        """Each query's answer already (cache hit, error, expired), or the query retrieved and ranked.
        The active index version is read once per batch (a query finishes on it); a query naming an index
        version (``options.index``: an A/B variant, a comparison) is answered on that one. One embedding
        call per version in the batch."""
        active = self.views.current()
        ready: list[Ready | None] = [None] * len(queries)
        groups: dict[str, tuple[IndexView, list[int]]] = {}
        for i, q in enumerate(queries):
            try:
                view = self.views.view(q.options.index) if q.options.index else active
                prompt_style(self.s.generation.prompts, q)  # a prompt name that does not exist: refused here
            except Exception as exc:  # an unknown or unreadable version, an unknown prompt: its error answer
                ready[i] = error_answer(q, refused_code(exc), str(exc))
                continue
            groups.setdefault(view.name, (view, []))[1].append(i)
        for view, idx in groups.values():
            for i, r in zip(idx, self._prepare_on(view, [queries[i] for i in idx]), strict=True):
                ready[i] = r
        out = [r for r in ready if r is not None]
        for r in out:
            if isinstance(r, Answer):
                observe_answer(r, self.cache)
        return out

    def _prepare_on(self, view: IndexView, queries: Sequence[Query]) -> list[Ready]:
        ready: list[Ready | None] = [None] * len(queries)
        todo: list[int] = []
        for i, q in enumerate(queries):
            if expired(q):
                ready[i] = error_answer(q, "deadline_exceeded", "deadline exceeded")
            elif (hit := self._cache_exact(q, view)) is not None:
                ready[i] = hit
            else:
                todo.append(i)
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        expand_ms: dict[int, float] = {}
        # the batch's expansions share one budget: a batch of many tenants' queries waits at most that long for them
        expand_by = time.monotonic() + self.s.generation.expand_budget_ms / 1000
        for i in todo:
            start = len(texts)
            texts.append(queries[i].text)
            texts.extend(queries[i].options.variants)
            texts.extend(follow_up(queries[i]))
            if queries[i].options.expand and self.expander is not None:
                t0 = time.perf_counter()
                try:
                    texts.extend(self.expander.expand(queries[i].text, queries[i].options.expand,
                                                      queries[i].tenant, expand_by))
                except Exception:  # expansion is an extra: the query goes on without it
                    log.exception("query expansion failed")
                expand_ms[i] = round((time.perf_counter() - t0) * 1000, 3)
            spans.append((start, len(texts)))
        started = time.time()  # before retrieval: index events after this may supersede what it reads
        # BM25 needs no embedding: each query's text searches start now and run while the questions are encoded
        early = {i: self.retriever_of(view).text_searches(
            queries[i], texts[a:b], queries[i].options.fusion or view.settings.retrieval.fusion)
            for i, (a, b) in zip(todo, spans, strict=True)}
        t0 = time.perf_counter()
        try:
            vecs = view.embedder.embed_queries(texts) if texts else None
        except Exception as exc:  # the model failed: every waiting query gets an error answer
            log.exception("query embedding failed")
            vecs = None
            for i in todo:
                ready[i] = error_answer(queries[i], "embedding_failed", f"embedding failed: {exc}")
            todo = []
        embed_ms = (time.perf_counter() - t0) * 1000 / max(len(todo), 1)
        for i, (a, b) in zip(todo, spans, strict=True):
            q = queries[i]
            try:
                assert vecs is not None
                if self.drift is not None:
                    self.drift.observe("query", q.tenant, vecs[a], index=view.name)
                hit = self._cache_semantic(q, vecs[a], embed_ms, view)
                _ = hit is not None and [job.cancel() for job in early[i]]  # a cached answer: its searches not begun are dropped
                ready[i] = hit if hit is not None else self._retrieve(
                    q, view, vecs[a:b], texts[a:b], embed_ms, expand_ms.get(i), started, early[i])
            except Exception as exc:  # one query's failure is its own error answer
                log.exception("retrieval for %s failed", q.query_id)
                ready[i] = error_answer(q, "retrieval_failed", f"{type(exc).__name__}: {exc}")
        return [r if r is not None else error_answer(q, "internal", "not answered") for r, q in zip(ready, queries, strict=True)]

    def _retrieve(self, q: Query, view: IndexView, vecs: Any, texts: Sequence[str], embed_ms: float,
                  expand_ms: float | None, started: float, text_jobs: list[Future[list[Hit]]]) -> Prepared:
        timer = StageTimer(embed=embed_ms)
        if expand_ms is not None:
            timer.ms["expand"] = expand_ms
        vs = view.settings
        fusion = q.options.fusion or vs.retrieval.fusion
        alpha = vs.retrieval.alpha if q.options.alpha is None else q.options.alpha
        res = self.retriever_of(view).retrieve(q, [list(v) for v in vecs], list(texts), fusion, alpha,
                                               text_jobs=text_jobs)
        if not res.ranked:
            telemetry.EMPTY_RESULTS.labels(q.tenant).inc()
        timer.ms.update({k: round(v, 3) for k, v in res.timings_ms.items()})
        with timer.stage("rerank"):
            ranked = self.reranker_for(q.options.rerank or vs.retrieval.rerank).rerank(q.text, res.ranked, q.top_k)
        relevant = bool(ranked) and (fusion == "bm25" or res.best_dense >= vs.retrieval.answer_min_score
                                     or lexically_supported(q.text, ranked))
        return Prepared(q, view, list(ranked), relevant, res.best_dense, list(res.degraded), vecs[0], started,
                        timer.ms, self._deadline(q))

    def finish(self, p: Prepared, stream: DeltaStream | None = None) -> Answer:
        """Generate, enrich, keep in the cache: the query's answer (an error one if that fails)."""
        return self.reply(p, stream).answer

    def reply(self, p: Prepared, stream: DeltaStream | None = None) -> Reply:
        """``finish``'s answer as a reply, with its new cache entry when ``entries_on_stream`` (for the flow's sink)."""
        entry = None
        try:
            ans, acl = self._compose(p, self._generate(p, self.generator, stream), getattr(stream, "seq", 0))
            entry = self._cache_put(p.query, p.vec, ans, acl, p.started, p.view)
        except Exception as exc:  # one query's failure is its own error answer
            log.exception("answering %s failed", p.query.query_id)
            ans = error_answer(p.query, "generation_failed", f"{type(exc).__name__}: {exc}")
        observe_answer(ans, self.cache)
        return Reply(ans, p.query.reply_to, p.query, entry if self.entries_on_stream else None)

    def extractive(self, p: Prepared, reason: str) -> Answer:
        """The answer at once, without a model (no generation slot freed up before its deadline)."""
        draft, t0 = self._generate(p, ExtractiveAnswerer(), None)
        ans, _ = self._compose(p, (replace(draft, fallback=[*draft.fallback, reason]), t0))
        observe_answer(ans, self.cache)
        return ans

    def _open_stream(self, q: Query) -> OpenStream | None:
        if self.deltas is not None and (self.s.generation.stream_deltas or q.options.stream):
            return self.deltas(q, q.reply_to or self.s.topics.answers)
        return None

    def _generate(self, p: Prepared, generator: Generator, stream: DeltaStream | None) -> tuple[Draft, float]:
        t0 = time.perf_counter()
        if not p.relevant:
            return Draft("no_answer", "", [], generator=""), t0
        q = p.query
        style = prompt_style(self.s.generation.prompts, q)
        return generator.generate(GenerationRequest(
            question=q.text, ranked=p.ranked, top_k=q.top_k, tenant=q.tenant, deadline=p.deadline,
            confidence=p.confidence, stream=stream, history=[(t.role, t.content) for t in q.context],
            chain=q.options.generator, role=style.system, sentences=style.sentences,
        )), t0

    def _compose(self, p: Prepared, generated: tuple[Draft, float], deltas: int = 0) -> tuple[Answer, list[list[str]]]:
        """The answer and, per citation, the ACL tokens of the cited chunk (for cache safety)."""
        draft, t0 = generated
        q, view = p.query, p.view
        timer = StageTimer()
        timer.ms.update(p.timings_ms)
        timer.ms["generate"] = round((time.perf_counter() - t0) * 1000, 3)
        if draft.first_token_ms is not None:
            timer.ms["first_token"] = draft.first_token_ms  # within "generate": time to the model's first piece
        cites = draft.citations
        if cites:
            with timer.stage("enrich"):
                cites = enrich(view.store, q.tenant, cites)
        acl_of = {r.hit.id: list(r.hit.acl) for r in p.ranked}
        model = draft.model or draft.generator
        answer = Answer.model_validate({
            "query_id": q.query_id, "tenant": q.tenant, "status": draft.status, "answer": draft.answer,
            "citations": cites, "timings_ms": timer.ms, "model": f"{view.embedder.name}+{model}" if model else view.embedder.name,
            "generator": draft.generator, "fallback": [*p.degraded, *draft.fallback], "grounded": draft.grounded,
            "usage": Usage(prompt_tokens=draft.prompt_tokens, completion_tokens=draft.completion_tokens,
                           cost=cost(self.s.generation.llm_prices, draft.model, draft.prompt_tokens, draft.completion_tokens)),
            "deltas": deltas, "index": view.name, "variant": q.variant,
        })
        return answer, [acl_of.get(c.chunk_id, []) for c in cites]

    # -- cache hooks (the cache never fails a query: see SemanticCache) -------------------------
    def _cache_exact(self, q: Query, view: IndexView) -> Answer | None:
        if self.cache is None:
            return None
        timer = StageTimer()
        with timer.stage("cache"):
            hit = self.cache.lookup_exact(q, view.cache_tag)
        return None if hit is None else hit.model_copy(update={"timings_ms": timer.ms})

    def _cache_semantic(self, q: Query, vec: Any, embed_ms: float, view: IndexView) -> Answer | None:
        if self.cache is None:
            return None
        timer = StageTimer(embed=embed_ms)
        with timer.stage("cache"):
            hit = self.cache.lookup_semantic(q, vec, view.cache_tag)
        return None if hit is None else hit.model_copy(update={"timings_ms": timer.ms})

    def _cache_put(self, q: Query, vec: Any, ans: Answer, acl: list[list[str]], started: float,
                   view: IndexView) -> CacheEntry | None:
        """A degraded answer (a generator fell back, or cited nothing) is not kept for later askers."""
        if self.cache is not None and not ans.fallback and ans.grounded:
            return self.cache.store_answer(q, vec, ans, acl, started, view.cache_tag, publish=not self.entries_on_stream)
        return None

    def _deadline(self, q: Query) -> float:
        """time.monotonic() by which generation must end: the default budget, or less of the query's own."""
        budget_s = self.s.generation.generation_timeout_ms / 1000
        if q.deadline_ms is not None:
            sent = q.sent_at or datetime.now(UTC)
            left = q.deadline_ms / 1000 - (datetime.now(UTC) - sent).total_seconds()
            budget_s = min(budget_s, max(left, 0.0))
        return time.monotonic() + budget_s

