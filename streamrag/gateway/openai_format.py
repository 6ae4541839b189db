"""OpenAI's chat API in and out: a chat request -> the question to ask; an answer -> a chat completion, or its
streamed chunks. Citations are [n] markers in the text and a structured ``citations`` field (an extension: SDKs
keep unknown fields, e.g. ``completion.model_extra["citations"]`` in the Python SDK). A streamed answer's first
chunk (the one with the assistant role) carries its sources as ``streamrag.sources`` (``chunk.model_extra``), sent
as soon as retrieval found them, before the model's first token.

A ``Query`` carries one question: the last user message is asked, earlier turns are not sent to the worker."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streamrag.core.language import no_answer_text
from streamrag.schemas.models import Answer, AnswerSources, Citation

_MARKER = re.compile(r"\[\d{1,3}\]")
FINISH = "stop"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """OpenAI's request body; fields this service does not use (temperature, max_tokens, ...) are ignored.
    Extensions: ``tenant`` and ``user`` (auth off only), ``top_k``, ``filters``, ``options`` (as in a Query)."""

    model_config = ConfigDict(extra="ignore")
    model: str = ""
    messages: list[ChatMessage] = Field(min_length=1, max_length=1_000)
    stream: bool = False
    tenant: str | None = None
    user: str | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    filters: dict[str, Any] | None = None
    options: dict[str, Any] | None = None


def message_text(m: ChatMessage) -> str:
    if isinstance(m.content, str):
        return m.content
    return "\n".join(str(p.get("text", "")) for p in m.content or [] if p.get("type") == "text")


def question_of(req: ChatRequest) -> str | None:
    """The last user message's text (None when there is no user message with text)."""
    for m in reversed(req.messages):
        if m.role == "user":
            text = message_text(m).strip()
            return text or None
    return None


def context_of(req: ChatRequest, turns: int = 10, chars: int = 8_000) -> list[dict[str, str]]:
    """The conversation before the last user message: its user and assistant turns with text (the newest
    ``turns`` of them, within ``chars`` characters in all), as ``Query.context``; system messages are the
    client's and are not passed on."""
    last = max(i for i, m in enumerate(req.messages) if m.role == "user")
    out = [{"role": m.role, "content": text[:4_000]} for m in req.messages[:last]
           if m.role in ("user", "assistant") and (text := message_text(m).strip())]
    kept: list[dict[str, str]] = []
    left = chars
    for turn in reversed(out[-turns:] if turns > 0 else []):
        if len(turn["content"]) > left:
            break
        left -= len(turn["content"])
        kept.append(turn)
    return kept[::-1]


def citation_json(n: int, c: Citation) -> dict[str, Any]:
    return {"n": n, **c.model_dump(mode="json")}


def cited_text(a: Answer, question: str = "") -> str:
    """The answer's text; when it carries no [n] marker but has citations, a 'Sources' line names them. A
    ``no_answer`` without text of its own says so in the question's language."""
    if a.status == "error":
        return a.error or "the answer failed"
    text = a.answer or (no_answer_text(question) if a.status == "no_answer" else "")
    if a.citations and not _MARKER.search(text):
        text += "\n\nSources: " + "; ".join(f"[{i}] {c.title or c.doc_id}" for i, c in enumerate(a.citations, 1))
    return text


def sources_extra(s: AnswerSources) -> dict[str, Any]:
    """The ``streamrag`` field of a stream's first chunk: the sources the answer is written from, numbered as its
    [n] markers and shaped as the final chunk's ``citations``."""
    return {"streamrag": {"query_id": s.query_id, "cached": s.cached,
                          "sources": [citation_json(i, c) for i, c in enumerate(s.sources, 1)]}}


def answer_extras(a: Answer) -> dict[str, Any]:
    return {
        "citations": [citation_json(i, c) for i, c in enumerate(a.citations, 1)],
        "streamrag": {"query_id": a.query_id, "status": a.status, "generator": a.generator, "cached": a.cached,
                      "grounded": a.grounded, "index": a.index, "fallback": a.fallback, "error": a.error},
    }


def usage_json(a: Answer) -> dict[str, int]:
    u = a.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def completion(a: Answer, model: str, created: int, question: str = "") -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{a.query_id}", "object": "chat.completion", "created": created,
        "model": a.model or model or "streamrag",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": cited_text(a, question)}, "finish_reason": FINISH}],
        "usage": usage_json(a), **answer_extras(a),
    }


def chunk(query_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": f"chatcmpl-{query_id}", "object": "chat.completion.chunk", "created": created,
            "model": model or "streamrag", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **(extra or {})}


def final_chunks(a: Answer, streamed: str, model: str, created: int, question: str = "") -> list[dict[str, Any]]:
    """What follows the streamed text once the final answer is in: the text not yet sent, then the last chunk
    (finish_reason, usage, citations). When the final text does not continue what was streamed (a generator
    failed mid-answer and another tier wrote it), the final text follows after a rule."""
    text = cited_text(a, question)
    rest = text[len(streamed):] if text.startswith(streamed) else f"\n\n---\n{text}"
    out = [chunk(a.query_id, model, created, {"content": rest})] if rest else []
    out.append(chunk(a.query_id, a.model or model, created, {}, FINISH, {"usage": usage_json(a), **answer_extras(a)}))
    return out
