"""A GGUF chat model run in-process by llama.cpp (llama-cpp-python, the ``local-llm`` extra)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamrag.core.errors import ConfigError
from streamrag.core.generation.backend import (
    Completion,
    DeadlineExceeded,
    GenerationError,
    ModelBusy,
    OnDelta,
)

try:  # optional: workers that never generate locally do not need the native build
    import llama_cpp
except ImportError:  # pragma: no cover - depends on the installation
    llama_cpp = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
_PER_MESSAGE = 6  # chat-template tokens around each message


class LlamaCppChat:
    def __init__(self, path: Path | Callable[[], Path], *, label: str, context_window: int = 4096, threads: int = 0,
                 gpu_layers: int = -1) -> None:
        self._path = path
        self.name = f"local:{label}"
        self.model = label
        self.context_window = context_window
        self.threads = threads
        self.gpu_layers = gpu_layers
        self._llm: Any = None
        self._vocab: Any = None  # the same model's vocabulary alone: counting tokens never waits for a generation
        self._lock = threading.Lock()  # one generation at a time per loaded model (llama.cpp is not thread-safe)
        self._tok_lock = threading.Lock()

    def warm_up(self) -> None:
        with self._tok_lock:  # several generation slots may ask at once: the model loads once
            self._load()

    def _load(self) -> None:
        if self._llm is not None:
            return
        if llama_cpp is None:
            raise ConfigError("the local generator needs llama-cpp-python: run scripts/setup (extra local-llm)")
        t0 = time.perf_counter()
        path = self.path
        try:
            # all the cores but one, left to the worker's own threads (Kafka, embedding, the flow): llama.cpp's
            # threads wait for each other spinning, and one more busy thread on a full machine stalls them all
            # (measured: 0 tokens in 30 s with 2 threads on 2 cores beside a worker); llama-cpp-python's own
            # default is half the cores
            cores = self.threads or max(1, len(os.sched_getaffinity(0)) - 1)
            self._llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=self.context_window, n_threads=cores, n_threads_batch=cores,
                n_gpu_layers=self.gpu_layers, verbose=False,
            )
            self._vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"cannot load {path}: {exc}") from exc
        log.info("loaded %s in %.1f s", path.name, time.perf_counter() - t0)

    @property
    def path(self) -> Path:
        """The model file (a packaged model is assembled on first use)."""
        if callable(self._path):
            self._path = self._path()
        return self._path

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        with self._tok_lock:
            return len(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, deadline: float,
                 on_delta: OnDelta | None = None) -> Completion:
        self.warm_up()
        prompt_tokens = sum(self.count_tokens(m["content"]) + _PER_MESSAGE for m in messages)
        parts: list[str] = []
        t0 = time.monotonic()
        first: float | None = None
        finish = "stop"
        with self._lock:
            if time.monotonic() >= deadline:
                raise ModelBusy("no time left when the model became free")
            try:
                stream = self._llm.create_chat_completion(
                    messages=messages, max_tokens=max_tokens, temperature=temperature, stream=True,
                )
                for chunk in stream:
                    choice = chunk["choices"][0]
                    piece = choice.get("delta", {}).get("content") or ""
                    if piece:
                        parts.append(piece)
                        first = first if first is not None else time.monotonic() - t0
                        if on_delta is not None:
                            on_delta(piece)
                    finish = choice.get("finish_reason") or finish
                    if time.monotonic() > deadline:
                        stream.close()
                        raise DeadlineExceeded(f"{len(parts)} tokens written when the deadline passed")
            except (ValueError, RuntimeError) as exc:  # llama.cpp reports decode / context errors so
                raise GenerationError(f"llama.cpp: {exc}") from exc
        text = "".join(parts)
        return Completion(text, prompt_tokens, self.count_tokens(text), finish, first, time.monotonic() - t0)


def gguf_token_counter(path: Path) -> Callable[[str], int]:
    """A token counter from a GGUF file's vocabulary alone (for servers serving that model)."""
    if llama_cpp is None:
        raise ConfigError("counting tokens with a GGUF tokenizer needs llama-cpp-python (extra local-llm)")
    vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return lambda text: len(vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False))
