"""Reading outside JSON with limits: size, nesting depth and number range bounded before any model sees it.

orjson parses (it refuses NaN/Infinity literals, lone surrogates and invalid UTF-8, and stops at 1,024
levels without recursing in Python; it reads an integer past 64 bits as a float, which a field that
wants an integer then refuses); the parsed value is then walked once, iteratively, to enforce the
configured depth and to keep every number inside what the store and the models can hold (an integer
within signed 64 bits, a finite float). Every violation is a reason string, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Bounds on one message from outside (STREAMRAG_MAX_MESSAGE_BYTES, STREAMRAG_MAX_JSON_DEPTH)."""

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 32


def describe_validation(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(p)[:64] for p in e.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {str(e.get('msg'))[:200]}")
    return "; ".join(parts)


def _violation(data: Any, max_depth: int) -> str | None:
    """The first limit the parsed value breaks, or None (an iterative walk: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                return f"JSON nested deeper than {max_depth} levels (STREAMRAG_MAX_JSON_DEPTH)"
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list | int | float))
        elif isinstance(node, bool):
            continue
        elif isinstance(node, int):
            if not INT64_MIN <= node <= INT64_MAX:
                return "integer out of range (a signed 64-bit integer at most)"
        elif isinstance(node, float) and not math.isfinite(node):
            return "number out of range (not a finite 64-bit float)"
    return None


def read_json(value: bytes | None, limits: JsonLimits, empty: str = "empty message") -> Any | str:
    """Bytes -> a JSON value within ``limits``; a ``Reason`` (str subclass) says why not."""
    if value is None or len(value) == 0:
        return Reason(empty)
    if len(value) > limits.max_bytes:
        return Reason(f"message too large: {len(value)} bytes > STREAMRAG_MAX_MESSAGE_BYTES={limits.max_bytes}")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Reason(f"malformed JSON: {str(exc)[:300]}")
    why = _violation(data, limits.max_depth)
    return Reason(why) if why is not None else data


class Reason(str):
    """Why a message could not be read (a plain string, told apart from a JSON string value)."""

    __slots__ = ()


def read_object(value: bytes | None, limits: JsonLimits, empty: str = "empty message") -> dict[str, Any] | Reason:
    """Bytes -> a JSON object within ``limits``, or the reason it is not one."""
    data = read_json(value, limits, empty)
    if isinstance(data, Reason):
        return data
    if not isinstance(data, dict):
        return Reason(f"expected a JSON object, got {type(data).__name__}")
    return data


def read_model(value: bytes | None, model: type[M], limits: JsonLimits) -> M | Reason:
    """Bytes -> ``model`` within ``limits``, or the reason (parse or validation) it is not one."""
    data = read_object(value, limits)
    if isinstance(data, Reason):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return Reason(f"invalid {model.__name__}: {describe_validation(exc)}")
