"""Generator wiring: chat models from settings, the routed fallback chain, expansion, answer deltas."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from streamrag.connectors.kafka_delta_stream import KafkaDeltaStream
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.model_assets import PACKAGED, resolve_model
from streamrag.connectors.redis_cache import redis_for
from streamrag.connectors.redis_usage_ledger import RedisUsageLedger
from streamrag.core.errors import ConfigError
from streamrag.core.generation.backend import ChatModel, Generator
from streamrag.core.generation.chain import GeneratorChain
from streamrag.core.generation.expansion import QueryExpander
from streamrag.core.generation.llm_generator import AnswerBudget, LLMGenerator
from streamrag.core.generation.routing import Router
from streamrag.core.generation.usage import MemoryLedger, TokenBudget, UsageLedger
from streamrag.core.query.processor import DeltaStreams
from streamrag.core.settings import Settings
from streamrag.flows.adapters import adapter


@lru_cache(maxsize=4)
def local_chat(model: str, model_dir: str, context: int, threads: int, gpu_layers: int) -> ChatModel:
    """One loaded model per (model, window) per process; resolved (and assembled) on first use."""

    def path() -> Path:
        p = resolve_model(model, model_dir)
        if p.is_dir():
            raise ConfigError(f"{p} is a folder: the local generator loads GGUF files (convert it, or serve it "
                              "with an OpenAI-compatible server and use STREAMRAG_GENERATOR=openai)")
        return p

    label = model if model in PACKAGED else Path(model).stem
    return adapter("chat.local")(path, label=label, context_window=context, threads=threads,  # type: ignore[no-any-return]
                                 gpu_layers=gpu_layers)


def local_model(s: Settings) -> ChatModel:
    return local_chat(s.local.model, s.generation.model_dir, s.local.context, s.local.threads, s.local.gpu_layers)


def openai_model(s: Settings) -> ChatModel:
    key = os.environ.get(s.openai.api_key_env, "")
    if not s.openai.model:
        raise ConfigError("the openai generator needs STREAMRAG_OPENAI_MODEL (the model name the server serves)")
    if not s.openai.base_url and not key:
        raise ConfigError(f"the openai generator needs STREAMRAG_OPENAI_BASE_URL or ${s.openai.api_key_env}")
    count = (adapter("chat.local-token-counter")(resolve_model(s.openai.tokenizer, s.generation.model_dir))
             if s.openai.tokenizer else None)
    return adapter("chat.openai")(base_url=s.openai.base_url, model=s.openai.model,  # type: ignore[no-any-return]
                                  api_key=key, context_window=s.openai.context, count=count)


def tiers_in_use(s: Settings) -> list[str]:
    chains = [s.generation.generator, *s.generation.generator_tenants.values(), *(r.chain for r in s.generation.generator_routes)]
    return list(dict.fromkeys(t for c in chains for t in c))


def chat_model(s: Settings, tier: str) -> ChatModel:
    return local_model(s) if tier == "local" else openai_model(s)


def make_generator(s: Settings, ledger: UsageLedger | None = None) -> GeneratorChain:
    budget = AnswerBudget(max_tokens=s.generation.answer_max_tokens, prompt_tokens=s.generation.prompt_max_tokens,
                          temperature=s.generation.temperature, sentences=s.generation.answer_sentences, injection_guard=s.generation.injection_guard,
                          packing=s.generation.prompt_packing)
    tiers: dict[str, Generator] = {
        t: LLMGenerator(chat_model(s, t), budget) for t in tiers_in_use(s) if t != "extractive"
    }
    router = Router(s.generation.generator, s.generation.generator_tenants,
                    s.generation.generator_routes)
    tokens = TokenBudget(ledger or MemoryLedger(), s.generation.tenant_daily_tokens, s.generation.tenant_daily_tokens_by_tenant)
    return GeneratorChain(tiers, router, ungrounded=s.generation.ungrounded, budget=tokens,
                          breaker_fail_max=s.generation.breaker_fail_max, breaker_reset_s=s.generation.breaker_reset_s)


def redis_ledger(s: Settings) -> RedisUsageLedger:
    return RedisUsageLedger(redis_for(s.redis, s.cache.redis_prefix))


def warm_up(chain: GeneratorChain) -> None:
    """Load local models before the first query arrives."""
    for gen in chain.tiers.values():
        if isinstance(gen, LLMGenerator):
            gen.warm_up()


def make_expander(s: Settings, tokens: TokenBudget | None = None) -> QueryExpander | None:
    """Expansion uses the first model tier of the default chain (none: expansion is skipped); its tokens count
    against the tenant's daily budget (``tokens``, the generator chain's)."""
    first = next((t for t in s.generation.generator if t != "extractive"), None)
    return None if first is None else QueryExpander(chat_model(s, first), budget_ms=s.generation.expand_budget_ms,
                                                    tokens=tokens)


def kafka_deltas(s: Settings) -> DeltaStreams:
    producer = JsonProducer(s.kafka, s.worker)
    return lambda q, topic: KafkaDeltaStream(producer, topic, q.query_id, tenant=q.tenant)


