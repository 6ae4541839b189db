"""One answer's metrics: stages, time to first token, retrieval time, status, cache result, tokens, cost,
fallbacks."""

from __future__ import annotations

from streamrag.core import telemetry
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.schemas.models import Answer, answer_latency_ms

# the stages from a query's arrival to its ranked context (a cache hit has no "search": not a retrieval)
RETRIEVAL_STAGES = frozenset({"expand", "embed", "search", "fuse", "rerank"})
# the stages after a model's first piece has been written
AFTER_FIRST_TOKEN = ("generate", "enrich")


def time_to_first_token_ms(timings_ms: dict[str, float]) -> float:
    """Until the answer's first piece could leave the worker: the stages before generation plus the model's first
    token; an answer without one (cached, extractive, no_answer, error) leaves whole, at its full latency."""
    total = answer_latency_ms(timings_ms)
    if "first_token" not in timings_ms:
        return total
    return total - sum(timings_ms.get(k, 0.0) for k in AFTER_FIRST_TOKEN) + timings_ms["first_token"]


def retrieval_ms(timings_ms: dict[str, float]) -> float | None:
    """A searched query's time to ranked context; None when nothing was searched (a cache hit, an early error)."""
    if "search" not in timings_ms:
        return None
    return sum(v for k, v in timings_ms.items() if k in RETRIEVAL_STAGES)


def observe_answer(a: Answer, cache: SemanticCache | None = None) -> None:
    telemetry.observe_stages("query", a.timings_ms)
    telemetry.ANSWER_SECONDS.observe(answer_latency_ms(a.timings_ms) / 1000)
    telemetry.TTFT_SECONDS.observe(time_to_first_token_ms(a.timings_ms) / 1000)
    if (retrieval := retrieval_ms(a.timings_ms)) is not None:
        telemetry.RETRIEVAL_SECONDS.observe(retrieval / 1000)
    by = "cache" if a.cached else (a.generator or "none")
    telemetry.ANSWERS.labels(a.tenant, a.status, by).inc()
    if a.variant:
        telemetry.VARIANT_ANSWERS.labels(a.variant, a.status, by).inc()
        telemetry.VARIANT_ANSWER_SECONDS.labels(a.variant).observe(answer_latency_ms(a.timings_ms) / 1000)
    if cache is not None and a.status != "error":
        telemetry.CACHE_LOOKUPS.labels(a.cache_lookup if a.cached else "miss").inc()
        st = cache.stats
        telemetry.CACHE_ERRORS.set(st.errors)
        for reason, n in (("guard", st.guarded), ("unsafe", st.unsafe_skips), ("bypassed", st.bypassed)):
            telemetry.CACHE_REFUSALS.labels(reason).set(n)
    if a.usage.prompt_tokens or a.usage.completion_tokens:
        model = a.model.split("+", 1)[-1]
        telemetry.LLM_TOKENS.labels(a.tenant, model, "prompt").inc(a.usage.prompt_tokens)
        telemetry.LLM_TOKENS.labels(a.tenant, model, "completion").inc(a.usage.completion_tokens)
        if a.usage.cost:
            telemetry.LLM_COST.labels(a.tenant, model).inc(a.usage.cost)
    for reason in a.fallback:
        telemetry.FALLBACKS.labels(reason.split(":", 1)[0][:40]).inc()
