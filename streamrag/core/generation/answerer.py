"""What shapes a written answer besides the question and its sources: the generator chain, its models, the
prompt and the generation limits. Cache entries are keyed by it, so that a model or prompt change never
serves answers another configuration wrote."""

from __future__ import annotations

import hashlib
import json

from streamrag.core.generation.prompt import SYSTEM, user_message
from streamrag.core.settings import Settings


def answerer_tag(s: Settings) -> str:
    """A short hash of everything in the configuration (and the prompt's wording) that changes answers."""
    g = s.generation
    fields = {
        "chain": list(g.generator),
        "tenant_chains": {t: list(c) for t, c in sorted(g.generator_tenants.items())},
        "routes": [r.model_dump(mode="json") for r in g.generator_routes],
        "local": s.local.model if "local" in _tiers(s) else "",
        "openai": [s.openai.base_url, s.openai.model] if "openai" in _tiers(s) else [],
        "limits": [g.answer_max_tokens, g.prompt_max_tokens, g.answer_sentences, g.temperature, g.prompt_packing],
        "ungrounded": g.ungrounded,
        "guard": g.injection_guard,
        "prompt": [SYSTEM, user_message("{question}", ["{sources}"], g.answer_sentences)],
        "prompts": {k: v.model_dump(mode="json") for k, v in sorted(g.prompts.items())},
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def _tiers(s: Settings) -> set[str]:
    g = s.generation
    return {*g.generator, *(t for c in g.generator_tenants.values() for t in c), *(t for r in g.generator_routes for t in r.chain)}
