"""A ``Scope`` (core/scope.py) rendered as LanceDB's SQL prefilter, and the literals every LanceDB filter is written
with: the one place the project writes a value into a LanceDB filter string.

Every value is quoted as a SQL literal whatever it holds: a string between single quotes with each quote doubled
(LanceDB's parser reads a backslash as itself, so doubling the quote is all a string needs: tests/unit/test_lancedb_filters.py
checks quotes, backslashes, ``%`` and other scripts against a real table); integers and finite floats as numbers;
booleans as ``true``/``false``. A NUL character is refused. Column names come from the allow-list in core/scope.py
and a pattern, never from a caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from streamrag.core.scope import FIELDS, Condition, Scope, Value

_COLUMN = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_LIST_COLUMNS = frozenset({"meta", "acl"})  # list<string> columns: ``has_any``
_COMPARE = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def literal(value: Value) -> str:
    """``value`` as a SQL literal that reads back as exactly ``value`` (never more of the expression)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"refusing a non-finite number in a filter: {value!r}")
        return repr(float(value))
    if not isinstance(value, str):
        raise ValueError(f"refusing a {type(value).__name__} in a filter")
    if "\x00" in value:
        raise ValueError("refusing a NUL character in a filter")
    return "'" + value.replace("'", "''") + "'"


def column(name: str) -> str:
    if not _COLUMN.match(name):
        raise ValueError(f"refusing {name!r} as a column name")
    return name


def in_list(values: Iterable[Value]) -> str:
    """``(v1, v2, …)`` for ``IN``; at least one value (an empty ``IN`` is no SQL: say ``false`` instead)."""
    vals = [literal(v) for v in values]
    if not vals:
        raise ValueError("an IN list needs at least one value")
    return "(" + ", ".join(vals) + ")"


def equals(name: str, value: Value) -> str:
    return f"{column(name)} = {literal(value)}"


def one_of(name: str, values: Iterable[Value]) -> str:
    """``name IN (…)``; ``false`` for no values (nothing matches)."""
    vals = list(values)
    return f"{column(name)} IN {in_list(vals)}" if vals else "false"


def has_any(name: str, values: Iterable[Value]) -> str:
    """A list column holding one of ``values``; ``false`` for no values."""
    vals = [literal(v) for v in values]
    return f"array_has_any({column(name)}, [{', '.join(vals)}])" if vals else "false"


def condition(c: Condition) -> str:
    if c.field not in FIELDS:
        raise ValueError(f"no such field in a scope: {c.field!r}")
    many = c.value if isinstance(c.value, tuple) else (c.value,)
    if c.operator == "has_any":
        if c.field not in _LIST_COLUMNS:
            raise ValueError(f"has_any needs a list column, not {c.field!r}")
        return has_any(c.field, many)
    if c.field in _LIST_COLUMNS:
        raise ValueError(f"{c.field!r} is a list column: only has_any applies")
    if c.operator == "in":
        return one_of(c.field, many)
    if c.operator == "not in":
        return f"NOT ({one_of(c.field, many)})" if many else "true"
    (value,) = many  # (a comparison holds one value: core/scope.py checks)
    return f"{column(c.field)} {_COMPARE[c.operator]} {literal(value)}"


def render(scope: Scope) -> str:
    """The scope as LanceDB's prefilter: the tenant, the ACL, then each condition, all of them AND-ed."""
    parts = [equals("tenant", scope.tenant), has_any("acl", scope.tokens), *(condition(c) for c in scope.conditions)]
    return " AND ".join(f"({p})" for p in parts)
