"""Index versions as workers see them: a view per version (its settings, store, embedder), built
once each, and the active one followed from the registry by a thread.

A switch is prepared before it is made: the new version's embedder is loaded and warmed up, then
one reference changes. Queries read the active view once per batch, so a query finishes on the
version it started on; the ingest flow fixes a record's target version when it parses it.
"""

from __future__ import annotations

import logging
import threading
import time

from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core import telemetry
from streamrag.core.errors import IndexRefused
from streamrag.core.index_versions import DEFAULT_INDEX, IndexView, index_settings, new_manifest
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.settings import Settings
from streamrag.flows.components import (
    embedder_for,
    make_extractors,
    make_history,
    make_store,
    question_embedder_for,
)
from streamrag.schemas.models import IndexManifest

log = logging.getLogger(__name__)


def store_for(s: Settings, m: IndexManifest) -> LanceStore:
    return make_store(s, chunks_table=m.chunks_table, docs_table=m.docs_table)


class IndexViews:
    """``questions``: views of a process that answers questions and writes nothing (the query worker, an
    embedded ask), whose embedders may run on ONNX Runtime alone (components.question_embedder_for)."""

    def __init__(self, s: Settings, registry: LanceIndexRegistry | None = None, *, questions: bool = False) -> None:
        self.s = s
        self.questions = questions
        self.registry = registry or LanceIndexRegistry(s.lancedb_path())
        self._views: dict[str, IndexView] = {}
        self._stages: dict[str, IngestStages] = {}
        self.history = make_history(s)  # one document history for every index version
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._current = self.view(self.registry.active())
        telemetry.ACTIVE_INDEX.labels(self._current.name).set(1)

    def manifest(self, name: str) -> IndexManifest:
        m = self.registry.manifests().get(name)
        if m is None:
            if name != DEFAULT_INDEX:
                raise IndexRefused(f"no index named {name!r} (see `streamrag index list`)")
            m = new_manifest(DEFAULT_INDEX, self.s)  # the index that predates versions: this process's settings
        return m

    def view(self, name: str) -> IndexView:
        with self._lock:
            v = self._views.get(name)
            if v is None:
                m = self.manifest(name)
                vs = index_settings(self.s, m)
                embedder = question_embedder_for(vs) if self.questions else embedder_for(vs)
                v = self._views[name] = IndexView(name, vs, store_for(vs, m), embedder)
            return v

    def current(self) -> IndexView:
        return self._current

    def ingest_stages(self, name: str) -> IngestStages:
        """The ingest stages writing index ``name`` (its chunking and model)."""
        with self._lock:
            st = self._stages.get(name)
        if st is None:
            v = self.view(name)
            st = IngestStages.from_settings(v.settings, v.store, v.embedder,
                                            extractors=make_extractors(v.settings.index), history=self.history)
            with self._lock:
                st = self._stages.setdefault(name, st)
        return st

    def target(self) -> tuple[str, IngestStages]:
        v = self._current
        return v.name, self.ingest_stages(v.name)

    def prepare(self, name: str) -> IndexView:
        """The view of ``name``, built and its embedder warmed (a model already serving is not run again)."""
        known = name in self._views
        v = self.view(name)
        if not known and v.embedder is not self._current.embedder:
            v.embedder.embed(["warm up"])
            v.embedder.embed_queries(["warm up"])
        return v

    def prepare_registered(self) -> None:
        """Views of every registered version built ahead, so that a promote only changes a reference."""
        for name in self.registry.manifests():
            self.prepare(name)

    def refresh(self) -> bool:
        """Follow the registry; True when the active version changed (the new one is warm first)."""
        name = self.registry.active()
        old = self._current
        if name == old.name:
            return False
        t0 = time.monotonic()
        new = self.prepare(name)
        self._current = new
        telemetry.ACTIVE_INDEX.labels(old.name).set(0)
        telemetry.ACTIVE_INDEX.labels(new.name).set(1)
        log.warning("active index: %s -> %s (prepared in %.2f s)", old.name, new.name, time.monotonic() - t0)
        return True

    def follow(self, every_s: float, prepare_every_s: float = 2.0) -> None:
        last_prepared = 0.0
        while not self._stop.wait(every_s):
            try:
                if time.monotonic() - last_prepared >= prepare_every_s:
                    self.prepare_registered()
                    last_prepared = time.monotonic()
                self.refresh()
            except Exception as exc:  # keep serving the current version; try again on the next tick
                telemetry.STORE_READ_ERRORS.labels("index_registry").inc()
                log.warning("reading the active index failed (keeping %s): %s", self._current.name, exc)

    def start(self, every_s: float) -> IndexViews:
        threading.Thread(target=self.follow, args=(every_s,), name="index-follower", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
