"""The query path's retrieve step, a batch at once: each query's index version (the active one, read once per
batch, or the one it names) -> expired? -> exact cache -> expand -> text searches (started first) -> embed ->
semantic cache -> dense search and fusion -> rerank. Each query comes out answered already (a cache hit, an
error, expired) or ``Prepared``: what generation needs, and what its answer is built from.

Its inputs are narrow: the generation settings it reads (the expansion budget, the generation deadline, the
named prompts), the index versions with a retriever each (``IndexRetrievers``), the rerankers, and the optional
cache, expander and drift monitor."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamrag.core import telemetry
from streamrag.core.answering import lexically_supported
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.config import GenerationConfig
from streamrag.core.drift import DriftMonitor
from streamrag.core.evidence import EvidenceSharing, EvidenceStore
from streamrag.core.generation.expansion import QueryExpander
from streamrag.core.index_versions import FixedView, IndexView, ViewSource
from streamrag.core.ports import Hit
from streamrag.core.query.asks import follow_up, prompt_style
from streamrag.core.query.replies import error_answer, expired, refused_code
from streamrag.core.rerank import Reranker
from streamrag.core.retrieval import Ranked, Retriever
from streamrag.core.timing import StageTimer
from streamrag.schemas.models import Answer, Query

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


class IndexRetrievers:
    """The index versions a query may be answered on, and one retriever per version (built the first time it is
    asked for). Without ``views``, every query is answered on ``default`` (the configured index, fixed)."""

    def __init__(self, default: IndexView, views: ViewSource | None = None, evidence: EvidenceStore | None = None,
                 measure_evidence: bool = True) -> None:
        """``evidence``: where each version's fusion evidence is shared; ``measure_evidence``: False for a one-off
        process that only reads it."""
        self.default = default
        self.evidence = evidence
        self.measure_evidence = measure_evidence
        self.retriever = Retriever.for_config(default.store, default.settings.retrieval, default.embedder,
                                              self._sharing(default.name))
        # the index version to answer on, read once per batch: a query finishes on the version it started on
        self.views: ViewSource = views or FixedView(default)
        self._by_name: dict[str, Retriever] = {} if views else {default.name: self.retriever}

    def retriever_of(self, view: IndexView) -> Retriever:
        r = self._by_name.get(view.name)
        if r is None:
            r = Retriever.for_config(view.store, view.settings.retrieval, view.embedder, self._sharing(view.name))
            self._by_name[view.name] = r
        return r

    def _sharing(self, index: str) -> EvidenceSharing:
        return EvidenceSharing(self.evidence, index, self.measure_evidence)


class RetrieveStep:
    def __init__(self, config: GenerationConfig, indexes: IndexRetrievers, reranker_for: Callable[[str], Reranker],
                 cache: SemanticCache | None = None, *, expander: QueryExpander | None = None,
                 drift: DriftMonitor | None = None) -> None:
        self.config = config
        self.indexes = indexes
        self.reranker_for = reranker_for
        self.cache = cache
        self.expander = expander
        self.drift = drift

    def prepare(self, queries: Sequence[Query]) -> list[Ready]:
        """Each query's answer already (cache hit, error, expired), or the query retrieved and ranked.
        The active index version is read once per batch (a query finishes on it); a query naming an index
        version (``options.index``: an A/B variant, a comparison) is answered on that one. One embedding
        call per version in the batch."""
        active = self.indexes.views.current()
        ready: list[Ready | None] = [None] * len(queries)
        groups: dict[str, tuple[IndexView, list[int]]] = {}
        for i, q in enumerate(queries):
            try:
                view = self.indexes.views.view(q.options.index) if q.options.index else active
                prompt_style(self.config.prompts, q)  # a prompt name that does not exist: refused here
            except Exception as exc:  # an unknown or unreadable version, an unknown prompt: its error answer
                ready[i] = error_answer(q, refused_code(exc), str(exc))
                continue
            groups.setdefault(view.name, (view, []))[1].append(i)
        for view, idx in groups.values():
            for i, r in zip(idx, self._prepare_on(view, [queries[i] for i in idx]), strict=True):
                ready[i] = r
        return [r for r in ready if r is not None]

    def _prepare_on(self, view: IndexView, queries: Sequence[Query]) -> list[Ready]:
        ready: list[Ready | None] = [self._answered(q, view) for q in queries]
        todo = [i for i, r in enumerate(ready) if r is None]
        texts, spans, expand_ms = self._texts(queries, todo)
        started = time.time()  # before retrieval: index events after this may supersede what it reads
        # BM25 needs no embedding: each query's text searches start now and run while the questions are encoded
        early = {i: self.indexes.retriever_of(view).text_searches(
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

    def _answered(self, q: Query, view: IndexView) -> Answer | None:
        """The query's answer before any search: expired, or the exact cache's."""
        if expired(q):
            return error_answer(q, "deadline_exceeded", "deadline exceeded")
        return self._cache_exact(q, view)

    def _texts(self, queries: Sequence[Query], todo: list[int]) -> tuple[list[str], list[tuple[int, int]], dict[int, float]]:
        """What each query in ``todo`` searches with (its text, variants, follow-up, expansions: ``texts[a:b]``
        for its span), and how long each expansion took (ms)."""
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        expand_ms: dict[int, float] = {}
        # the batch's expansions share one budget: a batch of many tenants' queries waits at most that long for them
        expand_by = time.monotonic() + self.config.expand_budget_ms / 1000
        for i in todo:
            q = queries[i]
            start = len(texts)
            texts.append(q.text)
            texts.extend(q.options.variants)
            texts.extend(follow_up(q))
            if q.options.expand and self.expander is not None:
                t0 = time.perf_counter()
                try:
                    texts.extend(self.expander.expand(q.text, q.options.expand, q.tenant, expand_by))
                except Exception:  # expansion is an extra: the query goes on without it
                    log.exception("query expansion failed")
                expand_ms[i] = round((time.perf_counter() - t0) * 1000, 3)
            spans.append((start, len(texts)))
        return texts, spans, expand_ms

    def _retrieve(self, q: Query, view: IndexView, vecs: Any, texts: Sequence[str], embed_ms: float,
                  expand_ms: float | None, started: float, text_jobs: list[Future[list[Hit]]]) -> Prepared:
        timer = StageTimer(embed=embed_ms)
        if expand_ms is not None:
            timer.ms["expand"] = expand_ms
        vs = view.settings
        fusion = q.options.fusion or vs.retrieval.fusion
        alpha = vs.retrieval.alpha if q.options.alpha is None else q.options.alpha
        res = self.indexes.retriever_of(view).retrieve(q, [list(v) for v in vecs], list(texts), fusion, alpha,
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

    # -- cache lookups (the cache never fails a query: see SemanticCache) ---------------------------
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

    def _deadline(self, q: Query) -> float:
        """time.monotonic() by which generation must end: the default budget, or less of the query's own."""
        budget_s = self.config.generation_timeout_ms / 1000
        if q.deadline_ms is not None:
            sent = q.sent_at or datetime.now(UTC)
            left = q.deadline_ms / 1000 - (datetime.now(UTC) - sent).total_seconds()
            budget_s = min(budget_s, max(left, 0.0))
        return time.monotonic() + budget_s
