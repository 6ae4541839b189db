"""The port a language model plugs into (llama.cpp in-process, any OpenAI-compatible server), and
the request / draft types generators exchange with the query processor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from streamrag.core.retrieval import Ranked
from streamrag.schemas.models import Citation

OnDelta = Callable[[str], None]


class DeltaStream(Protocol):
    """Where the pieces of an answer go while it is written (the answers topic, a terminal)."""

    def delta(self, text: str, generator: str) -> None: ...

    def reset(self, generator: str) -> None:
        """The text streamed so far is void: its generator failed and another tier takes over."""
        ...


class GenerationError(Exception):
    """The model or its server failed (worth a retry, then the next tier)."""


class DeadlineExceeded(GenerationError):
    """No complete answer before the deadline."""


class ModelBusy(DeadlineExceeded):
    """The deadline passed while the model was busy with other questions, before this one began: the model did not
    fail (a circuit breaker does not count it)."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    first_token_s: float | None = None  # seconds from the call to the first piece
    total_s: float = 0.0


class ChatModel(Protocol):
    """A chat model: tokens counted with its own tokenizer, completions streamed until a deadline."""

    name: str  # e.g. "local:qwen2.5-coder-1.5b-instruct"
    model: str  # the key of the price table
    context_window: int

    def warm_up(self) -> None: ...

    def count_tokens(self, text: str) -> int: ...

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, deadline: float,
        on_delta: OnDelta | None = None,
    ) -> Completion:
        """Stream a completion; raise DeadlineExceeded past ``deadline`` (time.monotonic()), GenerationError
        when the model or server fails."""
        ...


@dataclass(frozen=True)
class GenerationRequest:
    question: str
    ranked: Sequence[Ranked]
    top_k: int
    tenant: str = ""
    deadline: float = float("inf")  # time.monotonic() by which the answer must be complete
    confidence: float = 1.0  # retrieval's best dense score (routing rules use it)
    stream: DeltaStream | None = None
    history: Sequence[tuple[str, str]] = ()  # the conversation's earlier turns (role, text), oldest first
    chain: Sequence[str] | None = None  # the query's own generator chain (an A/B variant), over the routing rules
    role: str | None = None  # a named prompt's system role (STREAMRAG_PROMPTS), else the default
    sentences: int | None = None  # a named prompt's answer length, else the configured one


@dataclass(frozen=True)
class Draft:
    status: str
    answer: str
    citations: list[Citation]
    generator: str = "extractive"
    model: str = ""
    fallback: list[str] = field(default_factory=list)
    grounded: bool = True
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_ms: float | None = None  # from the model call to its first piece (a model wrote it)


class Generator(Protocol):
    name: str

    def generate(self, req: GenerationRequest) -> Draft: ...
