"""Index versions (blue-green): named indexes, each with the settings that shaped it, one active.

An index version is a pair of tables (chunks, docs) and a manifest: the values of the settings
fields that decide what its rows are (embedding model, chunking) and how they are searched
(fusion defaults). The registry (a port; LanceDB tables beside the index by default) names the
active version for every worker; promote and rollback append to its history.

``default`` is the index that predates versions: the tables ``chunks`` and ``docs``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from streamrag.core.config import IndexShape
from streamrag.core.errors import ConfigError, IndexRefused
from streamrag.core.settings import Settings
from streamrag.schemas.models import IndexManifest

DEFAULT_INDEX = "default"
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

# The settings that shape an index (its rows, or how they are searched): kept in its manifest.
INDEX_FIELDS: tuple[str, ...] = tuple(IndexShape.model_fields)


@dataclass(frozen=True, slots=True)
class Activation:
    """One entry of the active-index history."""

    seq: int
    name: str
    previous: str
    at: datetime
    reason: str


class IndexRegistry(Protocol):
    """Where every worker reads the same active index; durable beside the index."""

    def manifests(self) -> dict[str, IndexManifest]: ...

    def register(self, manifest: IndexManifest) -> None: ...

    def remove(self, name: str) -> None: ...

    def active(self) -> str: ...

    def history(self) -> list[Activation]: ...

    def activate(self, name: str, reason: str) -> Activation: ...


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise IndexRefused(f"invalid index name {name!r}: lower-case letters, digits, '_' and '-' (max 40)")
    return name


def table_names(name: str) -> tuple[str, str]:
    """The (chunks, docs) tables of an index version."""
    return ("chunks", "docs") if name == DEFAULT_INDEX else (f"chunks__{name}", f"docs__{name}")


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs (KEY a settings field name) -> a dict; one readable line on a bad pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set wants KEY=VALUE, got {pair!r}")
        if key not in Settings.flat_fields():
            raise ConfigError(f"--set {key}: not a settings field (see the README's configuration table)")
        out[key] = value
    return out


def with_overrides(base: Settings, overrides: Mapping[str, Any]) -> Settings:
    """``base`` with the given fields replaced, validated like the environment would be."""
    if not overrides:
        return base
    try:
        return base.model_copy(update=dict(overrides))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"invalid {field}: {first.get('msg')}") from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def new_manifest(name: str, s: Settings) -> IndexManifest:
    chunks, docs = table_names(check_name(name))
    flat = s.flat()
    shaped = IndexShape(**{k: flat[k] for k in INDEX_FIELDS}).model_dump(mode="json")
    return IndexManifest(name=name, chunks_table=chunks, docs_table=docs, settings=shaped)


def index_settings(base: Settings, m: IndexManifest) -> Settings:
    """The settings a worker uses for index ``m``: its own index-shaping fields over the process's."""
    return with_overrides(base, {k: v for k, v in m.settings.items() if k in INDEX_FIELDS})


def lagging(active: Mapping[str, tuple[int, bool]], candidate: Mapping[str, tuple[int, bool]]) -> list[str]:
    """Documents whose version in ``candidate`` is older than in ``active`` (or missing): promote waits."""
    behind = []
    for key, (version, deleted) in active.items():
        have = candidate.get(key)
        if have is None:
            if not deleted:
                behind.append(key)
        elif have[0] < version:
            behind.append(key)
    return sorted(behind)


def differing_settings(a: IndexManifest, b: IndexManifest) -> dict[str, tuple[Any, Any]]:
    return {k: (a.settings.get(k), b.settings.get(k)) for k in INDEX_FIELDS if a.settings.get(k) != b.settings.get(k)}


@dataclass(frozen=True)
class IndexView:
    """What a query needs of one index version: its name, settings, store and embedder."""

    name: str
    settings: Settings
    store: Any  # an IndexReader (and, for ingest, an IndexWriter)
    embedder: Any  # an Embedder

    @property
    def cache_tag(self) -> str:
        """Mixed into cache keys: entries of one version are never served on another ("" keeps old keys)."""
        return "" if self.name == DEFAULT_INDEX else self.name


class ViewSource(Protocol):
    """The index versions a query worker answers on: the active one, and any registered one by name."""

    def current(self) -> IndexView: ...

    def view(self, name: str) -> IndexView: ...


@dataclass(frozen=True)
class FixedView:
    """One index version only (the embedded path, tests)."""

    only: IndexView

    def current(self) -> IndexView:
        return self.only

    def view(self, name: str) -> IndexView:
        if name != self.only.name:
            raise IndexRefused(f"no index named {name!r} here (this process serves {self.only.name!r} only)")
        return self.only
