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


def test_generation_slots_share_one_in_process_model_safely() -> None:
    """Several slots at once through one loaded model: each waits its turn for the model, counting tokens
    never touches the model being decoded, and every one answers (no error, no fallback)."""
    import threading

    from streamrag.connectors.llama_cpp_chat import LlamaCppChat
    from streamrag.connectors.model_assets import resolve_model

    model = LlamaCppChat(resolve_model("smollm2-135m-instruct", ".local/models"), label="smollm2", context_window=1024)
    gen = LLMGenerator(model, AnswerBudget(max_tokens=24, sentences=1))
    chain = GeneratorChain({"local": gen}, Router(["local"]))
    drafts: list[object] = []

    def one() -> None:
        drafts.append(chain.generate(GenerationRequest(question=QUESTION, ranked=ranked(HOTEL, FLIGHT), top_k=2,
                                                       deadline=time.monotonic() + 120)))

    ts = [threading.Thread(target=one) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(180)
    assert len(drafts) == 3
    assert all(d.generator == "local:smollm2" and not d.fallback for d in drafts), drafts  # type: ignore[attr-defined]
