"""A search's scope as a value: the tenant, the asker's ACL tokens and typed conditions on the rows' fields.

Core says *what* a search may see; each store renders it in its own terms (LanceDB's SQL prefilter:
connectors/lancedb_filters.py; the vector mirror's row masks: connectors/lancedb_vector_mirror.py; the answer
cache checks a cached answer's tenant and ACL with ``Scope.sees``). Nothing here is SQL, and nothing here needs
quoting: the renderers quote every value they write (issue #36).

Conditions follow Haystack 2.x's filters (``{"field": ..., "operator": ..., "value": ...}``), all of them
AND-ed: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in`` and ``not in`` compare a scalar field, ``has_any``
holds when a list field has one of the values (an empty list of values: nothing matches). A row is in scope when
its tenant is the scope's, its ACL holds one of the scope's tokens and every condition holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from streamrag.core.security import meta_token, principal_tokens
from streamrag.schemas.models import Query, QueryFilters

# the row fields a condition may name (the chunks table's columns: connectors/lancedb_schema.py)
Field = Literal["meta", "updated_ms", "doc_id", "doc_key", "id", "version", "chunk_no"]
Operator = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "has_any"]
Value = str | int | float | bool
FIELDS: frozenset[str] = frozenset(get_args(Field))
OPERATORS: frozenset[str] = frozenset(get_args(Operator))
_MANY = frozenset({"in", "not in", "has_any"})


@dataclass(frozen=True, slots=True)
class Condition:
    """``field operator value``: ``value`` is a tuple for ``in``, ``not in`` and ``has_any``, a scalar otherwise."""

    field: Field
    operator: Operator
    value: Value | tuple[Value, ...]

    def __post_init__(self) -> None:
        if self.field not in FIELDS:
            raise ValueError(f"no such field in a scope: {self.field!r}")
        if self.operator not in OPERATORS:
            raise ValueError(f"no such operator in a scope: {self.operator!r}")
        if (self.operator in _MANY) != isinstance(self.value, tuple):
            raise ValueError(f"{self.operator!r} takes {'a tuple' if self.operator in _MANY else 'one value'}")


@dataclass(frozen=True, slots=True)
class Scope:
    """What one search may see: rows of ``tenant`` whose ACL holds one of ``tokens`` and where every condition
    holds. ``plain``: no conditions (a store may answer it from the tenant and ACL columns alone)."""

    tenant: str
    tokens: tuple[str, ...]
    conditions: tuple[Condition, ...] = field(default=())

    @classmethod
    def of(cls, tenant: str, tokens: Iterable[str], conditions: Iterable[Condition] = ()) -> Scope:
        return cls(tenant, tuple(tokens), tuple(conditions))

    @property
    def plain(self) -> bool:
        return not self.conditions

    def sees(self, tenant: str, acl: Iterable[str]) -> bool:
        """Whether a row of ``tenant`` with ACL tokens ``acl`` passes the tenant and ACL parts of this scope."""
        return tenant == self.tenant and not set(self.tokens).isdisjoint(acl)


def filter_conditions(f: QueryFilters) -> list[Condition]:
    """A query's validated filters as conditions: metadata values as the hashed tokens the rows carry in ``meta``
    (core/security.py), dates as epoch milliseconds of ``updated_ms``."""
    out = []
    for key, value in sorted(f.metadata.items()):
        values = value if isinstance(value, list) else [value]
        out.append(Condition("meta", "has_any", tuple(meta_token(key, v) for v in values)))
    if f.updated_from is not None:
        out.append(Condition("updated_ms", ">=", int(f.updated_from.timestamp() * 1000)))
    if f.updated_to is not None:
        out.append(Condition("updated_ms", "<=", int(f.updated_to.timestamp() * 1000)))
    return out


def scope_for(q: Query) -> Scope:
    """The scope of every search and cache lookup of a query: its tenant, its principal's tokens, its filters."""
    return Scope.of(q.tenant, principal_tokens(q.principal), filter_conditions(q.filters))
