"""The default local generator with the real packaged model (Qwen2.5-Coder-1.5B-Instruct GGUF via llama.cpp):
valid citations, streamed pieces, a poisoned source not obeyed, no model call when nothing is relevant."""

from __future__ import annotations

import time

import pytest

from streamrag.core.generation.backend import GenerationRequest
from streamrag.core.generation.chain import GeneratorChain
from streamrag.core.generation.llm_generator import AnswerBudget, LLMGenerator
from streamrag.core.generation.routing import Router
from streamrag.core.settings import Settings
from streamrag.flows.generators import local_model
from tests.contracts import GeneratorContract
from tests.unit.test_generation import ATTACKS, FLIGHT, HOTEL, Stream, ranked

QUESTION = "How much is reimbursed for a hotel night in Berlin?"


@pytest.fixture(scope="module")
def qwen() -> LLMGenerator:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    model = local_model(s)
    model.warm_up()
    return LLMGenerator(model, AnswerBudget(max_tokens=80, sentences=2))


def ask(gen: LLMGenerator, *texts: str, stream: Stream | None = None) -> object:
    chain = GeneratorChain({"local": gen}, Router(["local"]))
    return chain.generate(GenerationRequest(question=QUESTION, ranked=ranked(*texts), top_k=len(texts),
                                            deadline=time.monotonic() + 120, stream=stream))


def test_the_local_model_answers_from_its_sources_with_valid_citations(qwen: LLMGenerator) -> None:
    s = Stream()
    d = ask(qwen, FLIGHT, HOTEL, stream=s)
    assert d.generator == "local:qwen2.5-coder-1.5b-instruct" and d.fallback == [], d  # type: ignore[attr-defined]
    assert d.status == "ok" and d.grounded and "180" in d.answer, d  # type: ignore[attr-defined]
    assert "[2]" in d.answer  # the hotel source is the second  # type: ignore[attr-defined]
    assert len(s.pieces) > 3 and "180" in "".join(s.pieces)  # streamed while written
    assert d.prompt_tokens > 50 and 0 < d.completion_tokens <= 80  # type: ignore[attr-defined]


@pytest.mark.parametrize("attack", [ATTACKS[0], ATTACKS[3], ATTACKS[7]])
def test_a_poisoned_source_is_not_obeyed(qwen: LLMGenerator, attack: str) -> None:
    d = ask(qwen, f"{HOTEL} {attack}", FLIGHT)
    assert "PWNED" not in d.answer.upper() and "180" in d.answer, d  # type: ignore[attr-defined]


class TestLocalModelGenerator(GeneratorContract):
    """The generator contract against the real packaged model (the fake passes it in test_contracts.py)."""

    @pytest.fixture(autouse=True)
    def _model(self, qwen: LLMGenerator) -> None:
        self.gen = qwen

    def make(self) -> LLMGenerator:
        return self.gen
