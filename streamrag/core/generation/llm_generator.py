"""A generator over any ChatModel: packed prompt -> streamed completion -> grounded answer."""

from __future__ import annotations

from dataclasses import dataclass

from streamrag.core import telemetry
from streamrag.core.answering import citation
from streamrag.core.generation.backend import ChatModel, Draft, GenerationError, GenerationRequest
from streamrag.core.generation.grounding import ground
from streamrag.core.generation.injection import guard_note
from streamrag.core.generation.prompt import build_prompt
from streamrag.schemas.vocabulary import PromptPacking


@dataclass(frozen=True)
class AnswerBudget:
    max_tokens: int = 200  # answer tokens
    prompt_tokens: int = 400  # context budget (never more than the model's window minus the answer)
    temperature: float = 0.1
    sentences: int = 4
    injection_guard: bool = True
    packing: PromptPacking = "focused"


class LLMGenerator:
    def __init__(self, model: ChatModel, budget: AnswerBudget) -> None:
        self.model = model
        self.budget = budget
        self.name = model.name

    def warm_up(self) -> None:
        self.model.warm_up()

    def generate(self, req: GenerationRequest) -> Draft:
        b = self.budget
        window = min(b.prompt_tokens, self.model.context_window - b.max_tokens - 8)
        prompt = build_prompt(req.question, req.ranked[: req.top_k], self.model.count_tokens, window,
                              sentences=req.sentences or b.sentences, guard=b.injection_guard,
                              history=req.history, packing=b.packing, role=req.role)
        if not prompt.sources:
            raise GenerationError(f"no source fits the prompt budget of {window} tokens")
        stream = req.stream
        on_delta = None if stream is None else (lambda t: stream.delta(t, self.name))
        comp = self.model.complete(prompt.messages, max_tokens=b.max_tokens, temperature=b.temperature,
                                   deadline=req.deadline, on_delta=on_delta)
        g = ground(comp.text, len(prompt.sources), [s.text for s in prompt.sources])
        outcome = "refusal" if g.refusal else "grounded" if g.grounded else "ungrounded"
        telemetry.LLM_ANSWERS.labels(self.name, outcome).inc()
        telemetry.LLM_CITATION_MARKERS.labels(self.name, "valid").inc(len(g.cited))
        telemetry.LLM_CITATION_MARKERS.labels(self.name, "fixed").inc(g.invalid)
        telemetry.LLM_INJECTIONS_REMOVED.labels(self.name).inc(prompt.removed_injections)
        return Draft(
            status="no_answer" if g.refusal else "ok",
            answer=g.text,
            citations=[citation(req.ranked[s.rank]) for s in prompt.sources],
            generator=self.name,
            model=self.model.model,
            grounded=g.grounded or g.refusal,
            prompt_tokens=comp.prompt_tokens,
            completion_tokens=comp.completion_tokens,
            first_token_ms=None if comp.first_token_s is None else round(comp.first_token_s * 1000, 3),
            # the guard removed something: a note (the answer is not kept in the shared semantic cache)
            fallback=[guard_note(prompt.removed_injections)] if prompt.flagged else [],
        )
