"""Any OpenAI-compatible chat server (vLLM, llama.cpp server, Ollama, OpenAI) through the official client."""

from __future__ import annotations

import time
from collections.abc import Callable

import openai

from streamrag.core.generation.backend import Completion, DeadlineExceeded, GenerationError, OnDelta
from streamrag.core.generation.prompt import approx_tokens

_PER_MESSAGE = 6


class OpenAIChat:
    def __init__(self, *, base_url: str, model: str, api_key: str, context_window: int = 8192,
                 count: Callable[[str], int] | None = None, connect_timeout_s: float = 3.0) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.context_window = context_window
        self._count = count or approx_tokens
        self.client = openai.OpenAI(
            base_url=base_url or None, api_key=api_key or "not-needed", max_retries=0,  # the chain retries
            timeout=openai.Timeout(30.0, connect=connect_timeout_s),
        )

    def warm_up(self) -> None:
        """Nothing to load: the server holds the model (a dead server opens the breaker on first calls)."""

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, deadline: float,
                 on_delta: OnDelta | None = None) -> Completion:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("no time left before the call")
        parts: list[str] = []
        t0 = time.monotonic()
        first: float | None = None
        usage = None
        finish = "stop"
        try:
            stream = self.client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model, messages=messages, max_tokens=max_tokens,
                temperature=temperature, stream=True, stream_options={"include_usage": True},
                timeout=openai.Timeout(left, connect=min(left, 3.0)),
            )
            with stream:
                for chunk in stream:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    for choice in chunk.choices:
                        piece = choice.delta.content or ""
                        if piece:
                            parts.append(piece)
                            first = first if first is not None else time.monotonic() - t0
                            if on_delta is not None:
                                on_delta(piece)
                        finish = choice.finish_reason or finish
                    if time.monotonic() > deadline:
                        raise DeadlineExceeded(f"{len(parts)} pieces written when the deadline passed")
        except openai.APITimeoutError as exc:
            raise DeadlineExceeded(f"server did not answer in time: {exc}") from exc
        except openai.APIError as exc:  # connection refused, 5xx, 4xx: the chain decides what comes next
            raise GenerationError(f"{type(exc).__name__}: {exc}") from exc
        text = "".join(parts)
        if usage is not None:
            return Completion(text, usage.prompt_tokens, usage.completion_tokens, finish, first,
                              time.monotonic() - t0)
        prompt = sum(self._count(m["content"]) + _PER_MESSAGE for m in messages)
        return Completion(text, prompt, self._count(text), finish, first, time.monotonic() - t0)
