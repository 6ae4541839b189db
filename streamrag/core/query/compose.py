"""The query path's compose step: a draft becomes the query's answer (its stages' timings, the cited documents'
titles and metadata, the model and its usage and cost, the retrievers it was answered without), and an answer
fit for later askers becomes a cache entry: stored (and published) by the cache, or handed back for the query
flow's sink to publish (``entries_on_stream``)."""

from __future__ import annotations

import time

from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.core.config import GenerationConfig
from streamrag.core.generation.usage import cost
from streamrag.core.query.enrich import enrich
from streamrag.core.query.generate import Generated
from streamrag.core.query.retrieve import Prepared
from streamrag.core.timing import StageTimer
from streamrag.schemas.models import Answer, CacheEntry, Usage


class ComposeStep:
    def __init__(self, config: GenerationConfig, cache: SemanticCache | None = None, *,
                 entries_on_stream: bool = False) -> None:
        self.config = config
        self.cache = cache
        # new cache entries leave on the Reply (the flow's sink publishes them) instead of the cache's producer
        self.entries_on_stream = entries_on_stream

    def answer(self, p: Prepared, generated: Generated, deltas: int = 0) -> tuple[Answer, list[list[str]]]:
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
                           cost=cost(self.config.llm_prices, draft.model, draft.prompt_tokens, draft.completion_tokens)),
            "deltas": deltas, "index": view.name, "variant": q.variant,
        })
        return answer, [acl_of.get(c.chunk_id, []) for c in cites]

    def keep(self, p: Prepared, ans: Answer, acl: list[list[str]]) -> CacheEntry | None:
        """The answer's cache entry. A degraded answer (a generator fell back, or cited nothing) is not kept for
        later askers; nor is one whose sources an index event after ``p.started`` superseded (the cache checks)."""
        if self.cache is not None and not ans.fallback and ans.grounded:
            return self.cache.store_answer(p.query, p.vec, ans, acl, p.started, p.view.cache_tag,
                                           publish=not self.entries_on_stream)
        return None
