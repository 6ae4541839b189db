"""Index versions: manifests and overrides, promote checks, routing of ingest, reuse of embeddings,
cache keys per version, the registry's history."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.cache.policy import options_hash
from streamrag.core.errors import ConfigError
from streamrag.core.index_versions import (
    IndexView,
    index_settings,
    lagging,
    new_manifest,
    parse_overrides,
    table_names,
    with_overrides,
)
from streamrag.core.ingest.routing import RoutedStages
from streamrag.core.ingest.stages import IngestStages, run_stages
from streamrag.core.settings import Settings
from streamrag.schemas.models import IndexEvent, IndexManifest, Query
from streamrag.schemas.vocabulary import INGEST_STAGES
from tests.conftest import change, rec
from tests.fakes import HashEmbedder

LONG = " ".join(f"Sentence number {i} talks about topic{i}." for i in range(30))


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += len(texts)
        return super().embed(texts)


def test_overrides_are_settings_fields_validated_and_kept_in_the_manifest(settings: Settings) -> None:
    assert parse_overrides(["chunk_size=64", "embedding_model=/models/x"]) == {
        "chunk_size": "64", "embedding_model": "/models/x"}
    with pytest.raises(ConfigError, match="not a settings field"):
        parse_overrides(["chunk_sise=64"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["chunk_size"])
    with pytest.raises(ConfigError, match="chunk_overlap"):
        with_overrides(settings, {"chunk_size": "16", "chunk_overlap": "16"})
    green = with_overrides(settings, {"chunk_size": "64"})
    m = new_manifest("green", green)
    assert (m.chunks_table, m.docs_table) == table_names("green") == ("chunks__green", "docs__green")
    assert table_names("default") == ("chunks", "docs")
    assert m.settings["chunk_size"] == 64 and "kafka_bootstrap" not in m.settings
    # a worker with other process settings still builds green with green's chunking
    assert index_settings(settings.model_copy(update={"chunk_size": 300}), m).chunk.size == 64


def test_lagging_lists_documents_missing_or_older_in_the_candidate() -> None:
    active = {"a": (3, False), "b": (1, False), "c": (2, True), "d": (1, False), "e": (1, False)}
    green = {"a": (3, False), "b": (2, False), "d": (0, False)}
    # d is older in green, e is missing; c is deleted (nothing to have); b is newer in green
    assert lagging(active, green) == ["d", "e"]
    assert lagging(active, {**green, "d": (1, False), "e": (1, False)}) == []


def test_registry_history_promote_and_rollback(tmp_path: Any) -> None:
    reg = LanceIndexRegistry(str(tmp_path))
    assert reg.active() == "default" and reg.history() == []
    a = reg.activate("green", "promote")
    assert (a.seq, a.name, a.previous) == (1, "green", "default")
    other = LanceIndexRegistry(str(tmp_path))  # another worker sees it
    assert other.active() == "green"
    b = other.activate(other.history()[-1].previous, "rollback")
    assert (b.name, b.previous) == ("default", "green") and reg.active() == "default"


def test_a_record_is_written_to_the_version_it_was_parsed_for(settings: Settings, tmp_path: Any) -> None:
    blue = LanceStore(str(tmp_path / "db"), chunks_table="chunks", docs_table="docs")
    green = LanceStore(str(tmp_path / "db"), chunks_table="chunks__green", docs_table="docs__green")
    stages = {"default": IngestStages.from_settings(settings, blue, HashEmbedder()),
              "green": IngestStages.from_settings(with_overrides(settings, {"chunk_size": "64"}), green, HashEmbedder())}
    active = ["default"]
    routed = RoutedStages(lambda: (active[0], stages[active[0]]), stages.__getitem__)
    items = routed.run("parse", [rec(change("d1", 1, LONG))])
    active[0] = "green"  # a promote between two stages of the same batch
    for name in INGEST_STAGES[1:]:
        items = routed.run(name, items)
    assert [i.output.status for i in items] == ["indexed"]  # type: ignore[union-attr]
    assert len(blue.chunk_rows()) > 3 and green.chunk_rows() == []
    assert run_stages(routed, [rec(change("d1", 1, LONG))])[0].status == "indexed"  # type: ignore[union-attr]
    assert 0 < len(green.chunk_rows()) < len(blue.chunk_rows())  # green's own (larger) chunks


def test_unchanged_chunks_reuse_stored_embeddings(settings: Settings, tmp_path: Any) -> None:
    store = LanceStore(str(tmp_path / "db"))
    emb = CountingEmbedder()
    stages = IngestStages.from_settings(settings, store, emb)
    stages.process_batch([rec(change("d1", 1, LONG))])
    first = {r["id"]: r for r in store.chunk_rows()}
    n = len(first)
    assert emb.texts == n and n > 3
    edited = LONG.replace("topic29.", "a changed ending.")
    out = stages.process_batch([rec(change("d1", 2, edited))])
    assert isinstance(out[0], IndexEvent) and out[0].status == "indexed"
    assert emb.texts - n < n / 2 and stages.reused_chunks >= n - 2  # only the changed tail is encoded
    # a new index of the same model reuses the vectors of another one
    other = LanceStore(str(tmp_path / "db"), chunks_table="chunks__b", docs_table="docs__b")
    emb2 = CountingEmbedder()
    IngestStages.from_settings(settings, other, emb2, reuse=[store]).process_batch([rec(change("d1", 2, edited))])
    assert emb2.texts == 0


def test_cache_keys_differ_per_index_version(settings: Settings, tmp_path: Any) -> None:
    q = Query(query_id="q", tenant="acme", text="hello")
    assert options_hash(q, "rrf", 0.5, "none") == options_hash(q, "rrf", 0.5, "none", index="")
    assert options_hash(q, "rrf", 0.5, "none", index="green") != options_hash(q, "rrf", 0.5, "none")
    view = IndexView("default", settings, None, None)
    assert view.cache_tag == "" and IndexView("green", settings, None, None).cache_tag == "green"


def test_probes_grow_with_an_ivf_pq_index_and_never_fall_below_the_setting() -> None:
    from streamrag.connectors.lancedb_ann import PqProbe

    probe = PqProbe()
    assert probe.nprobes(32) == 32  # no PQ index: as configured
    probe.is_pq, probe.rows = True, 1_000_000
    assert probe.nprobes(32) == 50 and probe.nprobes(80) == 80
    probe.rows = 100_000
    assert probe.nprobes(32) == 32


def test_the_probe_recognises_a_real_ivf_pq_index(tmp_path: Any) -> None:
    import lancedb
    import pyarrow as pa

    from streamrag.connectors.lancedb_ann import PqProbe, build_ann

    vecs = np.random.default_rng(0).random((2_000, 16), dtype=np.float32)
    t = lancedb.connect(str(tmp_path)).create_table(
        "chunks", pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel()), 16)}))
    probe = PqProbe()
    assert not probe.uses_pq(t)
    build_ann(t, 2_000, pq_min_rows=1_000)
    probe.checked_at = -1e9
    assert probe.uses_pq(t) and probe.rows == 2_000


def test_maintenance_and_status_follow_the_active_index(settings: Settings) -> None:
    from streamrag.flows.index_views import IndexViews
    from streamrag.flows.maintenance import Maintainer

    views = IndexViews(settings)
    maintainer = Maintainer(settings, views=views)
    assert maintainer.store.chunks_name == "chunks"
    views.registry.register(new_manifest("green", settings))
    views.registry.activate("green", "promote")
    assert views.refresh() and views.current().name == "green"
    assert maintainer.store.chunks_name == "chunks__green"  # the maintainer keeps the promoted version
    assert maintainer.store is not views.current().store  # with handles of its own, never the writers'
    assert IndexViews(settings).current().name == "green"  # what `streamrag status` reports and reads


def test_registered_versions_are_prepared_before_a_promote(settings: Settings) -> None:
    """A promote only changes a reference: the view (store, warm embedder) was built when the version
    was registered, so queries move to it within one poll of the registry."""
    from streamrag.flows.index_views import IndexViews

    views = IndexViews(settings)
    views.registry.register(new_manifest("green", settings))
    views.prepare_registered()

    def unreadable(name: str) -> IndexManifest:
        raise AssertionError(f"the view of {name!r} was built at the switch, not before it")

    views.manifest = unreadable  # type: ignore[method-assign]
    views.registry.activate("green", "promote")
    assert views.refresh() and views.current().name == "green"
