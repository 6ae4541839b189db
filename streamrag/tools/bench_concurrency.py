"""``streamrag bench load --concurrency 1,4,8``: answers/s through one query worker over answers/s of a direct
client sending the same prompts to the same OpenAI-compatible server, at each concurrency, in the same run.

The prompts are the worker's own: the tool builds them in-process with the same retrieval and prompt code (the
chat model swapped for a recorder that keeps each call's messages and answers nothing). The direct client then
sends those messages from C threads with the same answer limits and streaming, and the worker gets the same
questions through Kafka with C always in flight (closed loop: each final answer lets the next question go), in
alternating blocks, after one pass of every prompt (so the server's prompt cache favours neither side). The ratio
is the worker's cost on top of the server: Kafka, retrieval, slots, grounding and delivery.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Producer

from streamrag.connectors.openai_chat import OpenAIChat
from streamrag.core.errors import StreamragError
from streamrag.core.generation.backend import ChatModel, Completion, GenerationError, OnDelta
from streamrag.core.generation.llm_generator import LLMGenerator
from streamrag.core.settings import Settings
from streamrag.flows.components import make_query_processor
from streamrag.flows.generators import make_generator
from streamrag.schemas.models import Query
from streamrag.tools.bench_load import QUESTIONS, Answers, Sent

Message = dict[str, str]


class PromptRecorder:
    """A chat model that keeps the messages of each call and answers "I don't know." at once."""

    def __init__(self, model: ChatModel) -> None:
        self.inner = model
        self.name, self.model, self.context_window = model.name, model.model, model.context_window
        self.calls: list[list[Message]] = []

    def warm_up(self) -> None:
        """Nothing to load."""

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def complete(self, messages: list[Message], *, max_tokens: int, temperature: float, deadline: float,
                 on_delta: OnDelta | None = None) -> Completion:
        self.calls.append(messages)
        return Completion("I don't know.", 0, 0)


def worker_prompts(s: Settings, tenant: str, questions: list[str]) -> tuple[list[list[Message]], OpenAIChat]:
    """The messages the query worker sends the server for each question (same retrieval, same packing), and
    the server's client as the worker configures it."""
    chain = make_generator(s.model_copy(update={"generator": ["openai"]}))
    gen = chain.tiers["openai"]
    if not isinstance(gen, LLMGenerator):
        raise StreamragError("the openai tier is not a model generator")
    if not isinstance(gen.model, OpenAIChat):
        raise StreamragError("the openai tier is not an OpenAI-compatible client")
    server = gen.model
    recorder = PromptRecorder(server)
    gen.model = recorder
    qp = make_query_processor(s, generator=chain)
    for text in questions:
        before = len(recorder.calls)
        a = qp.answer_many([Query(query_id=f"rec-{uuid.uuid4().hex[:8]}", tenant=tenant, text=text, top_k=3)])[0]
        if len(recorder.calls) == before:
            raise StreamragError(f"no prompt was built for {text!r} ({a.status}: {a.error or 'no sources'})")
    return recorder.calls, server


def direct_rate(s: Settings, server: OpenAIChat, prompts: list[list[Message]], concurrency: int,
                n: int) -> dict[str, Any]:
    """``n`` completions of ``prompts`` (in turn) from ``concurrency`` threads straight to the server."""
    g = s.generation

    def one(i: int) -> tuple[float, int, int] | None:
        t0 = time.monotonic()
        try:
            c = server.complete(prompts[i % len(prompts)], max_tokens=g.answer_max_tokens, temperature=g.temperature,
                                deadline=t0 + g.generation_timeout_ms / 1000)
        except GenerationError:  # a deadline or a server error: not an answer (the worker would fall back)
            return None
        return time.monotonic() - t0, c.prompt_tokens, c.completion_tokens

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        done = [t for t in pool.map(one, range(n)) if t is not None]
    span = time.monotonic() - t0
    return {"answers": len(done), "failed": n - len(done), "seconds": round(span, 2),
            "answers_per_s": round(len(done) / span, 4), "prompt_tokens": sum(p for _, p, _ in done),
            "completion_tokens": sum(k for _, _, k in done),
            "mean_answer_s": round(sum(t for t, _, _ in done) / max(len(done), 1), 2)}


def worker_rate(s: Settings, p: Producer, answers: Answers, tenant: str, questions: list[str], concurrency: int,
                n: int, wait_s: float) -> dict[str, Any]:
    """``n`` questions through the worker, ``concurrency`` always in flight."""
    sent: dict[str, Sent] = {}
    lock = threading.Lock()

    def send(i: int) -> None:
        qid = f"conc-{concurrency}-{i}-{uuid.uuid4().hex[:6]}"
        body = {"query_id": qid, "tenant": tenant, "text": questions[i % len(questions)], "top_k": 3}
        p.produce(s.topics.queries, key=qid.encode(), value=json.dumps(body).encode())
        p.flush(10)
        with lock:
            sent[qid] = Sent(time.monotonic())

    t0 = time.monotonic()
    for i in range(min(concurrency, n)):
        send(i)
    nxt, end = min(concurrency, n), t0 + wait_s
    while time.monotonic() < end:
        answers.poll(0.2, sent)
        done = sum(1 for q in sent.values() if q.final is not None)
        while nxt < n and nxt - done < concurrency:
            send(nxt)
            nxt += 1
        if done >= n:
            break
    finals = [q for q in sent.values() if q.final is not None]
    if len(finals) < n:
        raise StreamragError(f"the worker answered {len(finals)} of {n} within {wait_s:.0f} s")
    span = max(q.final for q in finals if q.final is not None) - t0
    fallbacks = sum(1 for q in finals if q.answer.get("fallback"))  # delivered, but not the model's answer

    def used(key: str) -> int:
        return sum(int((q.answer.get("usage") or {}).get(key) or 0) for q in finals)

    return {"answers": n, "prompt_tokens": used("prompt_tokens"),
            "completion_tokens": used("completion_tokens"), "seconds": round(span, 2), "answers_per_s": round(n / span, 4),
            "mean_answer_s": round(sum((q.final or 0) - q.at for q in finals) / n, 2), "fallbacks": fallbacks}


def run_concurrency(s: Settings, p: Producer, answers: Answers, levels: list[int], rounds: int,
                    tenant: str, wait_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Per level C, ``rounds`` times in turn: C answers from the direct client, then C through the worker (running,
    warm), over the same prompts; alternating blocks so that other load on the machine falls on both sides."""
    questions = QUESTIONS[: max(levels)] if max(levels) <= len(QUESTIONS) else QUESTIONS
    prompts, server = worker_prompts(s, tenant, questions)
    log(f"recorded {len(prompts)} worker prompts")
    # one pass of every prompt first: the server's prompt cache then holds each one for both sides alike
    # (whichever side went second would otherwise find the other's prompts evaluated)
    direct_rate(s, server, prompts, 1, len(prompts))
    out = []
    for c in levels:
        blocks = [(direct_rate(s, server, prompts, c, c), worker_rate(s, p, answers, tenant, questions, c, c, wait_s))
                  for _ in range(rounds)]
        d, w = (_total([b[i] for b in blocks]) for i in (0, 1))
        ratio = round(w["answers_per_s"] / d["answers_per_s"], 3) if d["answers_per_s"] else None
        log(f"C={c}: direct {d['answers_per_s']}/s, worker {w['answers_per_s']}/s, ratio {ratio}")
        out.append({"concurrency": c, "direct": d, "worker": w, "worker_over_direct": ratio})
    return {"server": s.openai.base_url, "model": s.openai.model, "rounds": rounds, "levels": out}


def _total(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and seconds summed over blocks; answers/s over the summed time."""
    keys = ("answers", "seconds", "prompt_tokens", "completion_tokens", "fallbacks", "failed")
    tot = {k: round(sum(b.get(k, 0) for b in blocks), 2) for k in keys}
    tot["answers_per_s"] = round(tot["answers"] / tot["seconds"], 4) if tot["seconds"] else 0.0
    tot["blocks_s"] = [b["seconds"] for b in blocks]
    return tot
