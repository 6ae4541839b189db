"""Build a heavy object on first use, once, thread-safely (models, clients); import a named object when it is
first needed."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value


def import_named(spec: str) -> Any:
    """The object ``spec`` names ("package.module:attribute"), its module imported now if it was not yet."""
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)
