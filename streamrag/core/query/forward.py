"""An attribute of the query processor that lives on its steps (``qp.cache``, ``qp.generator``...): read from the
first step named, set on every one, so that replacing a collaborator after wiring (tests, the worker's
``entries_on_stream``) reaches each step that uses it."""

from __future__ import annotations

from functools import reduce
from typing import Any, Generic, TypeVar, cast, overload

T = TypeVar("T")


def _at(obj: object, path: list[str]) -> Any:
    return reduce(getattr, path, obj)


class Forwarded(Generic[T]):
    """``Forwarded[SemanticCache | None]("retrieval.cache", "composition.cache")``: the owner's ``retrieval.cache``,
    set on its ``composition`` too."""

    def __init__(self, *paths: str) -> None:
        if not paths:
            raise ValueError("a forwarded attribute needs the path of at least one step's attribute")
        self.paths = [p.split(".") for p in paths]

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Forwarded[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> Forwarded[T] | T:
        if obj is None:
            return self
        return cast(T, _at(obj, self.paths[0]))

    def __set__(self, obj: object, value: T) -> None:
        for *where, name in self.paths:
            setattr(_at(obj, where), name, value)
