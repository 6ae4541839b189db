"""The worker's gate, before retrieval: what a query's message may decide, checked against operator policy.

Whatever the gateway did, a worker trusts a message only as far as this:

- ``principal``: with auth on it is replaced by the token's claims (core/auth.py); with auth off a message's
  principal counts only in the development profile (elsewhere the query asks as nobody: public documents);
- ``variant`` (an A/B metrics label): only ``experiment/variant`` of a configured experiment that applies to
  the tenant (STREAMRAG_GATEWAY_EXPERIMENTS); anything else becomes no label;
- ``options.index``: only for a verified admin role (STREAMRAG_POLICY_ADMIN_ROLES), or the index version of
  the query's A/B variant; the refusal never says which versions exist;
- ``options.generator``: only tiers of the tenant's own chains (its chain, routes that apply to it) or of the
  query's A/B variant;
- bounds (STREAMRAG_POLICY_*): expand, top_k, variants and their length refused above them; the conversation
  (``context``) cut to its latest turns within them;
- ``query_id``: an id already taken by another tenant's query in the last minutes is refused with a dead letter
  alone (as is an unverified query under a taken id), so no answer under that id can reach the other request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from cachetools import TTLCache

from streamrag.core import telemetry
from streamrag.core.auth import TokenVerifier
from streamrag.core.config import Experiment, ExperimentVariant
from streamrag.core.errors import Refusal
from streamrag.core.query.parse import reply_topic_error
from streamrag.core.query.replies import Parsed, Reply, error_answer
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.schemas.models import Answer, DeadLetter, Principal, Query, Turn
from streamrag.schemas.vocabulary import DeadLetterStage

# the same text whether the version exists or not (a refusal must not tell which names are registered)
INDEX_FORBIDDEN = "forbidden: options.index (another index version) is for administrators"
ID_TAKEN = "forbidden: query_id is taken by another tenant's query"
NO_KEYS = Refusal("unauthenticated", "unauthenticated: no keys")


def invalid(why: str) -> Refusal:
    """A query outside policy bounds: ``invalid query: why``."""
    return Refusal("invalid_query", f"invalid query: {why}")


def variant_labels(experiments: Sequence[Experiment]) -> dict[str, tuple[Experiment, ExperimentVariant]]:
    """Every configured ``experiment/variant`` label and what it stands for."""
    return {f"{e.name}/{v.name}": (e, v) for e in experiments for v in e.variants}


class QueryGate:
    """One per query processor; ``claim`` remembers recent query ids (bounded, thread-safe)."""

    def __init__(self, s: Settings, verifier: TokenVerifier | None = None,
                 topic_exists: Callable[[str], bool] | None = None, id_memory: int = 100_000) -> None:
        self.s = s
        self.verifier = verifier
        self.topic_exists = topic_exists
        self.project_topics = set(s.project_topics.values())
        self.policy = s.policy
        self.generation = s.generation
        self.auth_on = s.auth_on
        self.development = s.worker.profile == "development"
        self.labels = variant_labels(s.gateway.experiments)
        ttl = max(s.retrieval.query_max_age_s, s.gateway.request_timeout_s, 600.0)
        self._owners: TTLCache[str, str] = TTLCache(maxsize=max(id_memory, 1), ttl=ttl)
        self._lock = threading.Lock()

    def admit(self, rec: RawRecord, parsed: Query | tuple[DeadLetter, Answer | None],
              now_ms: float) -> list[tuple[RawRecord, Parsed]]:
        """The record's query as the worker will answer it, or its dead letter and (where it may be heard)
        its error answer."""
        if not isinstance(parsed, Query):
            dead, ans = parsed
            return [(rec, dead)] + ([(rec, Reply(ans))] if ans is not None else [])
        q = self.label(parsed)  # first: no forged label reaches an answer, the audit or metrics
        if self.auth_on:
            verified = self.verifier.verify(q) if self.verifier is not None else NO_KEYS
            if isinstance(verified, Refusal):
                telemetry.AUTH_REJECTED.labels(verified.code).inc()
                # an id an accepted query holds: whoever waits on it must not hear this refusal
                return self._refused(rec, q, "auth", verified, answer=not self.taken(q), audited=False)
            q = verified
        else:
            q = self.unverified(q)
        if not self.claim(q):
            return self._refused(rec, q, "auth", Refusal("forbidden", ID_TAKEN), answer=False)
        if q.reply_to is not None and (why := reply_topic_error(
            q.reply_to, self.s.worker.reply_topic_prefixes, self.project_topics, self.topic_exists,
        )):
            # answered (with the error) on the answers topic, never on the topic the query named
            return self._refused(rec, q, "validate", invalid(why), audited=False)
        if (refused := self.refusal(q)) is not None:
            return self._refused(rec, q, "validate", refused, reply_to=q.reply_to)
        if rec.timestamp_ms is not None and now_ms - rec.timestamp_ms > self.s.retrieval.query_max_age_s * 1000:
            return [(rec, Reply(error_answer(q, "expired", "expired: older than STREAMRAG_QUERY_MAX_AGE_S when read")))]
        return [(rec, self.bounded(q))]

    @staticmethod
    def _refused(rec: RawRecord, q: Query, stage: DeadLetterStage, why: Refusal, *, answer: bool = True,
                 audited: bool = True, reply_to: str | None = None) -> list[tuple[RawRecord, Parsed]]:
        """A dead letter and an error answer; ``audited``: the answer's audit names the (verified) asker."""
        out: list[tuple[RawRecord, Parsed]] = [(rec, rec.dead(stage, why.code, why.message))]
        if answer:
            out.append((rec, Reply(error_answer(q, why.code, why.message), reply_to, q if audited else None)))
        return out

    # -- what the message may not decide ----------------------------------------------------------
    def label(self, q: Query) -> Query:
        """The query with its variant label kept only when it names a configured variant for its tenant."""
        if not q.variant:
            return q
        known = self.labels.get(q.variant)
        if known is not None and (not known[0].tenants or q.tenant in known[0].tenants):
            return q
        return q.model_copy(update={"variant": ""})

    def unverified(self, q: Query) -> Query:
        """Auth off: the message's principal counts only in the development profile."""
        if self.development or q.principal == Principal():
            return q
        return q.model_copy(update={"principal": Principal()})

    def claim(self, q: Query) -> bool:
        """Take the query's id for its tenant; False when another tenant's query holds it."""
        with self._lock:
            held = self._owners.get(q.query_id)
            if held is not None and held != q.tenant:
                return False
            self._owners[q.query_id] = q.tenant
            return True

    def taken(self, q: Query) -> bool:
        """The id is held by an earlier accepted query (an unverified one must not be answered under it)."""
        with self._lock:
            return q.query_id in self._owners

    # -- options against policy ---------------------------------------------------------------------
    def refusal(self, q: Query) -> Refusal | None:
        """Why the query's options are refused (forbidden or invalid_query), or None."""
        o, p = q.options, self.policy
        variant = self.labels.get(q.variant, (None, None))[1] if q.variant else None
        if o.index and not self._admin(q) and not (variant is not None and variant.index == o.index):
            return Refusal("forbidden", INDEX_FORBIDDEN)
        if o.generator:
            allowed = self._tiers(q)
            bad = [t for t in o.generator if t != "extractive" and t not in allowed]
            if bad:
                return Refusal("forbidden", f"forbidden: options.generator {', '.join(bad)} is not among this "
                                            "tenant's generators")
        if o.expand > p.max_expand:
            return invalid(f"options.expand is at most {p.max_expand} (STREAMRAG_POLICY_MAX_EXPAND)")
        if q.top_k > p.max_top_k:
            return invalid(f"top_k is at most {p.max_top_k} (STREAMRAG_POLICY_MAX_TOP_K)")
        if len(o.variants) > p.max_variants:
            return invalid(f"at most {p.max_variants} options.variants (STREAMRAG_POLICY_MAX_VARIANTS)")
        if any(len(v) > p.max_variant_chars for v in o.variants):
            return invalid(f"options.variants are at most {p.max_variant_chars} characters each "
                           "(STREAMRAG_POLICY_MAX_VARIANT_CHARS)")
        return None

    def bounded(self, q: Query) -> Query:
        """The query with its conversation cut to the latest turns within the policy's bounds."""
        p = self.policy
        kept: list[Turn] = []
        chars = 0
        for t in reversed(q.context[-p.max_context_turns:] if p.max_context_turns else []):
            if chars + len(t.content) > p.max_context_chars:
                break
            kept.append(t)
            chars += len(t.content)
        if len(kept) == len(q.context):
            return q
        return q.model_copy(update={"context": kept[::-1]})

    def _admin(self, q: Query) -> bool:
        return bool(set(q.principal.roles) & set(self.policy.admin_roles))

    def _tiers(self, q: Query) -> set[str]:
        """The tiers of every chain that may answer this query: its tenant's chain, routes open to the tenant,
        the chain of its own (configured) A/B variant."""
        g = self.generation
        chains = [g.generator_tenants.get(q.tenant, g.generator)]
        chains += [r.chain for r in g.generator_routes if not r.tenants or q.tenant in r.tenants]
        variant = self.labels.get(q.variant, (None, None))[1] if q.variant else None
        if variant is not None and variant.generator:
            chains.append(variant.generator)
        return {t for c in chains for t in c}
