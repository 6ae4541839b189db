import pytest

from streamrag.core.errors import ConfigError
from streamrag.core.settings import Settings, load_settings


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_CHUNK_SIZE", "300")
    s = load_settings()
    assert s.chunk_size == 300
    with pytest.raises(ValueError):
        s.chunk_size = 1  # type: ignore[misc]


def test_bad_value_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMRAG_BATCH_SIZE", "lots")
    with pytest.raises(ConfigError, match="STREAMRAG_BATCH_SIZE"):
        load_settings()


def test_overlap_must_be_smaller() -> None:
    with pytest.raises(ConfigError):
        load_settings(chunk_size=32, chunk_overlap=32)


def test_object_store_uri_passes_through() -> None:
    assert Settings(lancedb_uri="s3://bucket/idx").lancedb_path() == "s3://bucket/idx"
