"""What a query asks of retrieval and generation besides its question: the conversation it follows, and the
named prompt it wants."""

from __future__ import annotations

from collections.abc import Mapping

from streamrag.core.config import PromptStyle
from streamrag.core.errors import ConfigError
from streamrag.schemas.models import Query


def follow_up(q: Query) -> list[str]:
    """A question asked in a conversation is searched with the previous question too ("and its price?")."""
    prev = next((t.content for t in reversed(q.context) if t.role == "user"), None)
    return [f"{prev} {q.text}"] if prev else []


def prompt_style(prompts: Mapping[str, PromptStyle], q: Query) -> PromptStyle:
    """The query's named prompt (``options.prompt``, one of STREAMRAG_PROMPTS), or the default one."""
    if not q.options.prompt:
        return PromptStyle()
    style = prompts.get(q.options.prompt)
    if style is None:
        raise ConfigError(f"no prompt named {q.options.prompt!r} (STREAMRAG_PROMPTS)")
    return style
