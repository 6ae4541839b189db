"""The query path's generate step: a retrieved query's draft answer, written by the configured generator (or the
extractive one, without a model) from its ranked sources in the query's named prompt style; no generator is
called when nothing relevant was found (``no_answer``). The draft leaves with the time its writing began, for
the answer's ``generate`` stage."""

from __future__ import annotations

import time
from dataclasses import replace

from streamrag.core.answering import ExtractiveAnswerer
from streamrag.core.config import GenerationConfig
from streamrag.core.generation.backend import DeltaStream, Draft, GenerationRequest, Generator
from streamrag.core.query.asks import prompt_style
from streamrag.core.query.retrieve import Prepared

Generated = tuple[Draft, float]  # the draft, and time.perf_counter() when its writing began


class GenerateStep:
    def __init__(self, config: GenerationConfig, generator: Generator | None = None) -> None:
        self.config = config
        self.generator: Generator = generator or ExtractiveAnswerer()

    def draft(self, p: Prepared, stream: DeltaStream | None = None, generator: Generator | None = None) -> Generated:
        """``generator`` (default: the configured one) writes the query's answer; its deltas go to ``stream``."""
        t0 = time.perf_counter()
        if not p.relevant:
            return Draft("no_answer", "", [], generator=""), t0
        q = p.query
        style = prompt_style(self.config.prompts, q)
        return (generator or self.generator).generate(GenerationRequest(
            question=q.text, ranked=p.ranked, top_k=q.top_k, tenant=q.tenant, deadline=p.deadline,
            confidence=p.confidence, stream=stream, history=[(t.role, t.content) for t in q.context],
            chain=q.options.generator, role=style.system, sentences=style.sentences,
        )), t0

    def without_model(self, p: Prepared, reason: str) -> Generated:
        """The extractive draft at once, ``reason`` noted in its fallback (no model could be had in time)."""
        draft, t0 = self.draft(p, None, ExtractiveAnswerer())
        return replace(draft, fallback=[*draft.fallback, reason]), t0
