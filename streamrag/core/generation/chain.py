"""The fallback chain: routed tiers, each behind a circuit breaker, one retry when time remains,
extractive last. The draft says which generator answered and why earlier ones did not.

A model's answer that cites no source (grounding found none that supports it) is, by STREAMRAG_UNGROUNDED:
``supported`` (the default) replaced by the extractive answer only where that answer holds most of the
question's terms, and otherwise a ``no_answer`` (a model that could not ground its answer is a sign that the
sources do not answer: quoting their nearest sentences would state something unasked); ``extractive`` always
replaced; ``flag`` kept with ``grounded: false``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Literal

import pybreaker
from tenacity import Retrying, retry_if_not_exception_type, wait_fixed

from streamrag.core.answering import ExtractiveAnswerer, answer_supported
from streamrag.core.generation.backend import (
    DeadlineExceeded,
    Draft,
    GenerationError,
    GenerationRequest,
    Generator,
    ModelBusy,
)
from streamrag.core.generation.routing import Router
from streamrag.core.generation.usage import TokenBudget

log = logging.getLogger(__name__)
Ungrounded = Literal["supported", "extractive", "flag"]
UNSUPPORTED = "extractive: the sources hold too few of the question's terms"
_UNGROUNDED = Draft("no_answer", "", [])  # _try's answer for "the tier wrote an answer that cites no source"


class _Counting:
    """Passes deltas on and remembers whether any went out (to void them if the tier fails)."""

    def __init__(self, req: GenerationRequest) -> None:
        self.inner = req.stream
        self.sent = 0

    def delta(self, text: str, generator: str) -> None:
        if self.inner is not None:
            self.sent += 1
            self.inner.delta(text, generator)

    def reset(self, generator: str) -> None:
        if self.inner is not None and self.sent:
            self.inner.reset(generator)
            self.sent = 0


class ConcurrentBreaker(pybreaker.CircuitBreaker):
    """pybreaker's breaker holds its lock for the whole call, so every generation through one tier ran one
    at a time, however many slots the worker had. Here only the state changes take the lock (a half-open
    breaker may let a few concurrent trial calls through instead of one)."""

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.state.call(func, *args, **kwargs)


class GeneratorChain:
    name = "chain"

    def __init__(
        self,
        tiers: Mapping[str, Generator],
        router: Router,
        *,
        ungrounded: Ungrounded = "supported",
        budget: TokenBudget | None = None,
        breaker_fail_max: int = 3,
        breaker_reset_s: float = 30.0,
        retry_backoff_s: float = 0.2,
        extractive: ExtractiveAnswerer | None = None,
    ) -> None:
        self.tiers = dict(tiers)
        self.router = router
        self.ungrounded = ungrounded
        self.budget = budget
        self.retry_backoff_s = retry_backoff_s
        self.extractive = extractive or ExtractiveAnswerer()
        self.breakers = {  # a question that waited out its deadline behind others is not a failure of the model
            n: ConcurrentBreaker(fail_max=breaker_fail_max, reset_timeout=breaker_reset_s, name=n, exclude=[ModelBusy])
            for n in self.tiers
        }

    def breaker_state(self, tier: str) -> str:
        return str(self.breakers[tier].current_state)

    def generate(self, req: GenerationRequest) -> Draft:
        reasons: list[str] = []
        ungrounded = False  # a tier answered without a source that supports its answer
        chain = list(req.chain) if req.chain else self.router.route(req)
        if self.budget is not None and self.budget.exhausted(req.tenant) and any(t != "extractive" for t in chain):
            reasons.append("over the tenant's daily token budget")
            chain = ["extractive"]
        for tier in chain:
            if tier == "extractive" or tier not in self.tiers:
                if tier not in ("extractive", *self.tiers):
                    reasons.append(f"{tier}: not configured")
                if tier == "extractive":
                    break
                continue
            draft = self._try(tier, req, reasons)
            if draft is _UNGROUNDED:
                ungrounded = True
            elif draft is not None:
                if self.budget is not None:
                    self.budget.spend(req.tenant, draft.prompt_tokens + draft.completion_tokens)
                return replace(draft, fallback=[*reasons, *draft.fallback])
        last = self.extractive.generate(req)
        if ungrounded and self.ungrounded == "supported" and last.status == "ok" \
                and not answer_supported(req.question, last.answer):
            return replace(last, status="no_answer", answer="", generator="extractive",
                           fallback=[*reasons, UNSUPPORTED, *last.fallback])
        return replace(last, generator="extractive", fallback=[*reasons, *last.fallback])

    def _try(self, tier: str, req: GenerationRequest, reasons: list[str]) -> Draft | None:
        """One tier: retried once (tenacity) after a failure when time remains before the deadline; an open
        circuit, a passed deadline or an ungrounded answer (``_UNGROUNDED``) ends it at once. Each failure is
        one reason."""
        gen = self.tiers[tier]
        breaker = self.breakers[tier]
        stream = _Counting(req)
        sub = replace(req, stream=stream if req.stream is not None else None)

        def attempt() -> Draft:
            if breaker.current_state == pybreaker.STATE_OPEN:
                raise _TierDone(f"{tier}: circuit open after repeated failures")
            if time.monotonic() >= req.deadline:
                raise _TierDone(f"{tier}: no time left before the deadline")
            try:
                return breaker.call(gen.generate, sub)
            except pybreaker.CircuitBreakerError as exc:
                stream.reset(tier)
                raise _TierDone(f"{tier}: circuit opened ({exc.__cause__ or exc})") from exc
            except DeadlineExceeded as exc:
                stream.reset(tier)
                raise _TierDone(f"{tier}: deadline exceeded ({exc})") from exc
            except GenerationError as exc:
                stream.reset(tier)
                reasons.append(f"{tier}: {exc}")
                raise
            except Exception as exc:  # a bug or an unexpected client error: logged, counted, next tier
                log.exception("generator %s failed", tier)
                stream.reset(tier)
                reasons.append(f"{tier}: {type(exc).__name__}: {exc}")
                raise

        retrying = Retrying(
            retry=retry_if_not_exception_type(_TierDone),
            stop=lambda rs: rs.attempt_number >= 2 or time.monotonic() + self.retry_backoff_s >= req.deadline,
            wait=wait_fixed(self.retry_backoff_s), reraise=True,
        )
        try:
            draft = retrying(attempt)
        except _TierDone as done:
            reasons.append(str(done))
            return None
        except Exception:  # already a reason: the next tier answers
            return None
        if draft.grounded or self.ungrounded == "flag":
            return draft
        stream.reset(tier)
        reasons.append(f"{tier}: the answer cited no source")
        return _UNGROUNDED


class _TierDone(Exception):
    """This tier cannot answer this request (open circuit, deadline): no retry."""

