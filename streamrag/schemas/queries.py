"""The contracts of the read side: a query (queries topic) and what answers it on the answers topic: its sources,
answer deltas, then the final answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from streamrag.schemas.common import Name, Scalar, Tenant, UtcDateTime, VariantLabel, _Model
from streamrag.schemas.vocabulary import ErrorCode, Fusion, GeneratorTier, Rerank, TurnRole

# a point inside a stage of ``Answer.timings_ms`` (not a stage of its own: not added to the latency)
NESTED_TIMINGS = frozenset({"first_token"})


def answer_latency_ms(timings_ms: dict[str, float]) -> float:
    """An answer's time in the worker: its stages added up."""
    return sum(v for k, v in timings_ms.items() if k not in NESTED_TIMINGS)


class Principal(_Model):
    user: Name | None = None
    roles: list[Name] = Field(default_factory=list, max_length=1_000)


class QueryFilters(_Model):
    """Validated filters; never passed through as raw filter strings.

    ``metadata``: key -> value (equality) or key -> [values] (in).
    ``updated_from`` / ``updated_to``: inclusive range on the document's ``updated_at``.
    """

    metadata: dict[Name, Scalar | list[Scalar]] = Field(default_factory=dict)
    updated_from: UtcDateTime | None = None
    updated_to: UtcDateTime | None = None


class QueryOptions(_Model):
    alpha: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    fusion: Fusion | None = None
    rerank: Rerank | None = None
    variants: list[Annotated[str, StringConstraints(min_length=1, max_length=4_000)]] = Field(
        default_factory=list, max_length=8
    )
    use_cache: bool = True
    # up to this many generated rephrasings of the question are searched too (on their own time budget)
    expand: Annotated[int, Field(ge=0, le=5)] = 0
    # answer deltas are published while the answer is written (final answer always follows)
    stream: bool = False
    # answer with this generator chain (tier names in order), not the configured one (an A/B variant)
    generator: list[GeneratorTier] | None = Field(None, min_length=1, max_length=3)
    # answer with this named prompt (STREAMRAG_PROMPTS), not the default one
    prompt: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")] | None = None
    # answer on this index version (see `streamrag index list`), not the active one
    index: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")] | None = None


class Turn(_Model):
    """An earlier turn of the conversation a question belongs to (oldest first in ``Query.context``)."""

    role: TurnRole
    content: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]


class Query(_Model):
    schema_version: Literal[1] = 1
    query_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    tenant: Tenant
    principal: Principal = Field(default_factory=Principal)
    text: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]
    top_k: Annotated[int, Field(ge=1, le=100)] = 5
    filters: QueryFilters = Field(default_factory=QueryFilters)
    options: QueryOptions = Field(default_factory=QueryOptions)
    reply_to: str | None = None
    # a signed JWT; with auth on, tenant, user and roles come only from its verified claims (one over
    # STREAMRAG_AUTH_MAX_TOKEN_BYTES is refused as unauthenticated)
    auth_token: Annotated[str, StringConstraints(max_length=16_384)] | None = None
    # at most ten minutes
    deadline_ms: Annotated[int, Field(ge=1, le=600_000)] | None = None
    sent_at: UtcDateTime | None = None
    # the conversation so far (a chat's earlier turns, oldest first): the model reads it, retrieval uses the
    # previous question too, and the cache shares answers only between queries of the same context
    context: list[Turn] = Field(default_factory=list, max_length=20)
    # the A/B variant the gateway assigned (experiment/variant); carried onto the answer, audit and metrics
    variant: VariantLabel = ""


class Citation(_Model):
    doc_id: str
    version: int
    chunk_id: str
    title: str = ""
    snippet: str = ""
    score: float = 0.0
    metadata: dict[str, Scalar] = Field(default_factory=dict)
    updated_at: datetime | None = None
    # where in the document the cited chunk is: its page (PDF, 1-based) and heading path ("Chapter 2 \u203a Meals")
    page: int | None = None
    section: str = ""


class Usage(_Model):
    """Tokens a generated answer cost (0 for extractive answers) and their price by the configured table."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class Answer(_Model):
    """The final answer to a query (``kind`` = final), after any number of ``AnswerDelta`` messages."""

    schema_version: Literal[1] = 1
    kind: Literal["final"] = "final"
    query_id: str
    tenant: str
    status: Literal["ok", "no_answer", "error"]
    answer: str = ""
    citations: list[Citation] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    cached: bool = False
    cache_lookup: Literal["exact", "semantic"] | None = None
    model: str = ""
    error: str | None = None
    # what went wrong (status error): the gateway's HTTP status and metrics read this, not ``error``'s text
    code: ErrorCode | None = None
    # which generator wrote the answer, and why earlier tiers did not (empty: the first tier answered); also a
    # retriever that failed ("retrieval: bm25 unavailable: ..."): the answer came from the other one alone; also
    # "guard: ...": the injection guard removed text from the prompt (such an answer is never cached)
    generator: str = ""
    fallback: list[str] = Field(default_factory=list)
    # false: the generator cited no provided source (see STREAMRAG_UNGROUNDED)
    grounded: bool = True
    usage: Usage = Field(default_factory=Usage)
    # number of AnswerDelta messages published before this one (0: none)
    deltas: int = 0
    # the index version the answer was retrieved from (every citation is from this one)
    index: str = ""
    # the query's A/B variant (experiment/variant; empty: none)
    variant: VariantLabel = ""


class AnswerDelta(_Model):
    """A piece of an answer being written; the final ``Answer`` (same key) is authoritative.

    ``reset``: the text so far is void (the generator failed mid-answer; another tier continues).
    """

    schema_version: Literal[1] = 1
    kind: Literal["delta"] = "delta"
    query_id: str
    # the query's tenant (a reply router hands a delta only to a request of the same tenant)
    tenant: str = ""
    seq: int
    delta: str = ""
    generator: str = ""
    reset: bool = False


class AnswerSources(_Model):
    """The passages an answer is being written from (``kind`` = sources): sent once, ahead of its first
    ``AnswerDelta``, when the query streams (``options.stream``), right after retrieval and before the model runs.

    ``sources`` are retrieval's chunks for the query's principal (what its ACL lets it see), in rank order:
    source n is what a streamed ``[n]`` marker names. Each snippet has instruction-like text removed (the injection
    guard). A cached answer's are its citations (``cached``); a query with nothing relevant has none. The final
    ``Answer`` (its ``citations``) is authoritative.
    """

    schema_version: Literal[1] = 1
    kind: Literal["sources"] = "sources"
    query_id: str
    # the query's tenant (a reply router hands it only to a request of the same tenant)
    tenant: str = ""
    sources: list[Citation] = Field(default_factory=list)
    cached: bool = False
