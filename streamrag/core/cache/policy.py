"""Cache keys and policy (pure): normalisation, ACL scope, options hash, per-tenant thresholds and TTLs."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from streamrag.core.config import CacheTenantSettings
from streamrag.core.scope import Scope
from streamrag.schemas.models import Query

_WS = re.compile(r"\s+")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE.sub("", _WS.sub(" ", t)).strip()


def _h(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def scope_of(scope: Scope) -> str:
    """The asker's ACL scope in a cache key: a hash of the scope's ACL tokens (the principal's user and roles; the
    tenant and the filters are keyed apart: ``exact_key``, ``options_hash``)."""
    return _h(sorted(scope.tokens))


def options_hash(
    q: Query, default_fusion: str, default_alpha: float, default_rerank: str, index: str = "", answerer: str = ""
) -> str:
    """Entries are shared only between queries answered the same way: the same options, index version,
    answerer (generator chain, models, prompt: ``answerer_tag``), A/B variant and conversation context."""
    o = q.options
    fields: dict[str, object] = {
        "k": q.top_k, "f": q.filters.model_dump(mode="json"), "fusion": o.fusion or default_fusion,
        "alpha": default_alpha if o.alpha is None else o.alpha, "rerank": o.rerank or default_rerank,
        "variants": list(o.variants),
    }
    if o.generator:
        fields["generator"] = list(o.generator)
    if o.index:
        fields["index_option"] = o.index
    if o.prompt:
        fields["prompt"] = o.prompt
    for name, value in (("index", index), ("answerer", answerer), ("variant", q.variant)):
        if value:  # (absent when empty: keys of queries without them stay as they were)
            fields[name] = value
    if q.context:
        fields["context"] = [[t.role, normalize(t.content)] for t in q.context]
    return _h(fields)


def exact_key(tenant: str, normalized: str, scope: str, opts: str) -> str:
    return _h([tenant, normalized, scope, opts])


@dataclass(frozen=True)
class TenantPolicy:
    threshold: float = 0.92
    ttl_s: float = 3600.0
    enabled: bool = True
    # refuse semantic hits between questions that differ in a negation, comparison or number
    guard: bool = True
    # document metadata "type" -> TTL; an entry lives as long as the shortest TTL of what it cites
    ttl_by_type: tuple[tuple[str, float], ...] = ()

    def ttl_for(self, doc_types: list[str]) -> float:
        by_type = dict(self.ttl_by_type)
        return min([self.ttl_s, *(by_type[t] for t in doc_types if t in by_type)])


def tenant_policy(tenant: str, default: TenantPolicy, overrides: Mapping[str, CacheTenantSettings]) -> TenantPolicy:
    """The default policy with a tenant's overrides (STREAMRAG_CACHE_TENANTS) applied."""
    o = overrides.get(tenant)
    if o is None:
        return default
    return TenantPolicy(
        threshold=default.threshold if o.threshold is None else o.threshold,
        ttl_s=default.ttl_s if o.ttl_s is None else o.ttl_s,
        enabled=default.enabled if o.enabled is None else o.enabled,
        guard=default.guard if o.guard is None else o.guard,
        ttl_by_type=tuple(sorted(o.ttl_by_type.items())) or default.ttl_by_type,
    )


# -- the polarity guard on semantic hits ---------------------------------------------------------
# Embeddings put a claim and its opposite close together ("ALDH1 ... better outcomes" vs "... poorer
# prognosis": cosine 0.97 with all-MiniLM-L6-v2). A semantic hit is refused when the two questions
# differ in a word that flips or scales the meaning (negation, comparison, direction, effect) or in
# a number. Words are compared after light stemming, so "causes" / "caused" / "cause" agree.
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
_POLARITY_TEXT = """not no never none nor neither without cannot lack absent fail
    less fewer more most least higher high lower low better best worse worst poorer poor greater great
    smaller small larger large bigger big shorter longer faster slower earlier later
    increase decrease reduce raise improve worsen cause delay prevent inhibit promote block induce enhance
    suppress accelerate impair protect harm benefit activate deactivate upregulate downregulate
    before after above below under down positive negative always rarely"""
POLARITY_WORDS = frozenset(_POLARITY_TEXT.split())


def _stem(word: str) -> str:
    w = word.removesuffix("'s")
    if w.endswith("n't"):
        return "not"
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    return w.removesuffix("e") if len(w) > 3 else w


POLARITY_STEMS = frozenset(_stem(w) for w in POLARITY_WORDS)


def stems(text: str) -> set[str]:
    return {_stem(t) for t in _TOKEN.findall(normalize(text))}


# Japanese writes negation, comparison and direction inside words (開きますか / 開きませんか): markers are
# found as substrings, and two questions differing in one are refused (a refusal costs a cache miss only).
_JA_POLARITY = re.compile(
    r"ない|なかっ|ません|ず|ぬ|不|非|無|未|否|以外|除|多|少|高|低|大|小|長|短|早|速|遅|以上|以下|超|最|より"
    r"|増|減|上が|下が|改善|悪化|防|促進|抑制|良|悪|前|後|常に|まれ"
)


def polarity_conflict(asked: str, cached: str) -> bool:
    """True when the questions differ in a polarity word or a number (see POLARITY_STEMS), or in a Japanese
    polarity marker (_JA_POLARITY)."""
    diff = stems(asked) ^ stems(cached)
    if any(t in POLARITY_STEMS or any(ch.isdigit() for ch in t) for t in diff):
        return True
    return set(_JA_POLARITY.findall(normalize(asked))) != set(_JA_POLARITY.findall(normalize(cached)))
