import pytest

from streamrag.core.errors import ConfigError
from streamrag.core.settings import Settings, load_settings


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_CHUNK_SIZE", "300")
    s = load_settings()
    assert s.chunk.size == 300
    with pytest.raises(ValueError):
        s.chunk.size = 1  # type: ignore[misc]


def test_bad_value_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_BATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match="STREAMRAG_BATCH_SIZE"):
        load_settings()


def test_overlap_must_be_smaller() -> None:
    with pytest.raises(ConfigError):
        load_settings(chunk_size=32, chunk_overlap=32)


def test_object_store_uri_passes_through() -> None:
    assert Settings(lancedb_uri="s3://bucket/idx").lancedb_path() == "s3://bucket/idx"


def test_configuration_is_small_components_under_one_name_each() -> None:
    comps = Settings.components()
    assert len(comps) <= 30 and all(len(m.model_fields) <= 30 for m in comps.values())
    flat = Settings.flat_fields()
    assert len(flat) == sum(len(m.model_fields) for m in comps.values())  # no two fields share a variable
    assert flat["kafka_bootstrap"][:2] == ("kafka", "bootstrap") and flat["ingest_group"][:2] == ("worker", "ingest_group")


def test_flat_names_construct_and_copies_revalidate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_KAFKA_BOOTSTRAP", "kafka:9092")
    s = Settings(chunk_size=64, chunk_overlap=8)
    assert (s.chunk.size, s.chunk.overlap, s.kafka.bootstrap) == (64, 8, "kafka:9092")  # the rest from the env
    t = s.model_copy(update={"answer_min_score": 0.05})
    assert t.retrieval.answer_min_score == 0.05 and t.chunk.size == 64 and s.retrieval.answer_min_score == 0.25
    with pytest.raises(ValueError, match="chunk_overlap must be smaller"):
        s.model_copy(update={"chunk_overlap": 64})  # a copy is validated like a new one
    with pytest.raises(ValueError, match="unknown setting"):
        s.model_copy(update={"chunk_sizes": 1})
    assert s.flat()["chunk_size"] == 64 and Settings(**s.flat()).flat() == s.flat()


def test_no_import_cycle_between_project_modules() -> None:
    """Including imports behind TYPE_CHECKING (grimp sees those too)."""
    import grimp

    graph = grimp.build_graph("streamrag")
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            assert not graph.chain_exists(imported, module, as_packages=False), f"{module} <-> {imported}"


HOSTILE_VALUES = ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, "\udcff\x07\x1b[2Jgarbage", "9" * 5000, "x" * 200_000]


@pytest.mark.parametrize("name", ["query_encoder", "query_torch_threads", "writer_lease", "embedding_model", "prompts",
                                  "generator", "max_doc_bytes", "fusion_evidence_ttl_s"])
def test_a_hostile_setting_is_one_clear_line_or_a_value(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Settings parsed from text (this change's among them): deep or huge JSON, garbage, a huge number give a
    ConfigError of one line naming the variable, or a validated value; never another exception."""
    var = f"STREAMRAG_{name.upper()}"
    for value in HOSTILE_VALUES:
        monkeypatch.setenv(var, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        try:
            load_settings()
        except ConfigError as exc:
            assert var in str(exc) and "\n" not in str(exc).strip()
