"""One answer's metrics: stages, status, cache result, tokens, cost, fallbacks."""

from __future__ import annotations

from streamrag.core import telemetry
from streamrag.core.cache.semantic_cache import SemanticCache
from streamrag.schemas.models import Answer, answer_latency_ms


def observe_answer(a: Answer, cache: SemanticCache | None = None) -> None:
    telemetry.observe_stages("query", a.timings_ms)
    telemetry.ANSWER_SECONDS.observe(answer_latency_ms(a.timings_ms) / 1000)
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
