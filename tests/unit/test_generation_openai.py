"""The ``openai`` generator against a real OpenAI-compatible server (llama-cpp-python's, serving the
packaged SmolLM2 model inside the test): streaming, a deadline that falls back, a stopped server that
opens the breaker while answers keep coming (extractive)."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from streamrag.connectors.model_assets import resolve_model
from streamrag.connectors.openai_chat import OpenAIChat
from streamrag.core.generation.backend import GenerationRequest
from streamrag.core.generation.chain import GeneratorChain
from streamrag.core.generation.llm_generator import AnswerBudget, LLMGenerator
from streamrag.core.generation.routing import Router
from tests.net import free_port
from tests.unit.test_generation import FLIGHT, HOTEL, Stream, ranked


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    model = resolve_model("smollm2-135m-instruct", ".local/models")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "llama.cpp server did not start"
            time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(10)


def chat(url: str) -> OpenAIChat:
    return OpenAIChat(base_url=url, model="smollm2", api_key="", context_window=2048)


def chain(url: str, **kw: object) -> GeneratorChain:
    # SmolLM2 is fast but weak: keep its answers even without citations; grounding is tested elsewhere
    gen = LLMGenerator(chat(url), AnswerBudget(max_tokens=48))
    return GeneratorChain({"openai": gen}, Router(["openai"]), ungrounded="flag", retry_backoff_s=0.05, **kw)  # type: ignore[arg-type]


def req(deadline_s: float, stream: Stream | None = None) -> GenerationRequest:
    return GenerationRequest(question="How much is a hotel night in Berlin?", ranked=ranked(HOTEL, FLIGHT), top_k=2,
                             deadline=time.monotonic() + deadline_s, stream=stream)


def test_answers_stream_from_the_server(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    s = Stream()
    d = chain(server[0]).generate(req(60, s))
    assert d.generator == "openai:smollm2" and d.fallback == [] and d.answer
    assert len(s.pieces) > 3 and d.completion_tokens > 0 and d.prompt_tokens > 0


def test_a_deadline_falls_back_to_extractive(server: tuple[str, subprocess.Popen[bytes]]) -> None:
    s = Stream()
    t0 = time.monotonic()
    d = chain(server[0]).generate(req(0.05, s))
    assert d.generator == "extractive" and "180 euros" in d.answer
    assert any("deadline" in r or "no time left" in r for r in d.fallback), d.fallback
    assert time.monotonic() - t0 < 5 and s.pieces == []


def test_a_stopped_server_opens_the_breaker_and_answers_keep_coming(
    server: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = server
    c = chain(url, breaker_fail_max=2, breaker_reset_s=60)
    assert c.generate(req(60)).generator == "openai:smollm2"
    proc.terminate()
    proc.wait(10)
    first = c.generate(req(10))  # a failure, its retry: the breaker opens
    assert first.generator == "extractive" and "180 euros" in first.answer
    assert any("Connection" in r for r in first.fallback), first.fallback
    assert c.breaker_state("openai") == "open"
    t0 = time.monotonic()
    later = c.generate(req(10))
    assert later.generator == "extractive" and later.fallback == ["openai: circuit open after repeated failures"]
    assert time.monotonic() - t0 < 0.5  # the dead server is not called
