"""Build a heavy object on first use, once, thread-safely (models, clients); import a named object when it is
first needed."""

from __future__ import annotations

import importlib
import importlib.util
import sys
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


def defer_package_init(name: str) -> bool:
    """Register package ``name`` without running its ``__init__`` until a name it defines is first asked for:
    its submodules import on their own meanwhile (``__path__`` is set). For a package whose ``__init__`` imports
    far more than its importers use. False (nothing done) where it is already imported or not installed."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader
    lock = threading.RLock()

    def run_init(attr: str) -> Any:  # PEP 562: called only for a name the module does not have (yet)
        with lock:
            if module.__dict__.pop("__getattr__", None) is not None:
                loader.exec_module(module)
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    setattr(module, "__getattr__", run_init)  # noqa: B010 (a module attribute mypy does not know)
    sys.modules[name] = module
    return True
