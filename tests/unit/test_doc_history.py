"""A document's history: every applied version kept by the write stage, listed by ``documents history``, pruned
past its retention, and a version restored as a new, higher one (the rollback's change)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from streamrag.cli import app
from streamrag.connectors.lancedb_history import LanceHistory
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ingest.history import DAY_MS
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings, settings_env
from streamrag.flows.components import make_extractors
from streamrag.tools.doc_history import HistoryRefused, rollback_change
from tests.conftest import change
from tests.fakes import HashEmbedder


@pytest.fixture
def history(settings: Settings) -> LanceHistory:
    return LanceHistory(settings.lancedb_path(), settings.index.history_retention_days)


@pytest.fixture
def ingest(settings: Settings, store: LanceStore, history: LanceHistory) -> Any:
    stages = IngestStages.from_settings(settings, store, HashEmbedder(), extractors=make_extractors(), history=history)

    def run(*objs: dict[str, Any], publisher: str = "") -> list[Any]:
        return stages.process_batch([RawRecord(json.dumps(o).encode(), b"k", publisher=publisher) for o in objs])

    return run


def test_every_applied_version_is_kept_with_its_content(ingest: Any, history: LanceHistory) -> None:
    ingest(change("d1", 1, "The first text.", title="One", metadata={"team": "hr"}, acl={"roles": ["hr"]}),
           publisher="alice")
    ingest(change("d1", 2, "The second text."))
    ingest(change("d1", 1, "A stale one."))  # refused as stale: not applied, not kept
    ingest(change("d1", 2, "The second text."))  # unchanged: not kept twice
    rows = history.versions("acme", "d1")
    assert [r["version"] for r in rows] == [2, 1]
    old = rows[1]
    assert old["text"] == "The first text." and old["title"] == "One" and old["publisher"] == "alice"
    assert json.loads(old["metadata_json"]) == {"team": "hr"} and json.loads(old["acl_json"])["roles"] == ["hr"]
    assert len(old["content_hash"]) > 10 and old["applied_ms"] > 0


def test_rollback_restores_old_content_as_a_new_version(settings: Settings, ingest: Any) -> None:
    ingest(change("d1", 3, "The first text.", title="One", acl={"roles": ["hr"]}))
    ingest(change("d1", 7, "The second text."))
    ch = rollback_change(settings, "acme", "d1", 3)
    assert ch.version == 8 and ch.text == "The first text." and ch.title == "One" and ch.acl.roles == ["hr"]
    ingest(json.loads(ch.wire_json()))  # applied like any change: the index and the history follow
    with pytest.raises(HistoryRefused, match="not in the document's history"):
        rollback_change(settings, "acme", "d1", 5)
    ingest(change("d1", 9, op="delete"))
    with pytest.raises(HistoryRefused, match="is a delete"):
        rollback_change(settings, "acme", "d1", 9)
    assert rollback_change(settings, "acme", "d1", 8).version == 10


def test_old_versions_are_pruned_past_the_retention(ingest: Any, history: LanceHistory) -> None:
    ingest(change("d1", 1, "one"))
    ingest(change("d1", 2, "two"))
    history.prune(now_ms=history.versions("acme", "d1")[0]["applied_ms"] + int(91 * DAY_MS))
    assert history.versions("acme", "d1") == []


def test_no_history_when_retention_is_zero(settings: Settings, store: LanceStore) -> None:
    off = LanceHistory(settings.lancedb_path(), 0)
    stages = IngestStages.from_settings(settings, store, HashEmbedder(), history=off)
    stages.process_batch([RawRecord(json.dumps(change("d1", 1, "one")).encode(), b"k")])
    assert off.versions("acme", "d1") == []


def test_cli_lists_the_history(settings: Settings, ingest: Any) -> None:
    ingest(change("d1", 1, "The first text.", title="One"), publisher="alice")
    ingest(change("d1", 2, "The second text."))
    r = CliRunner().invoke(app, ["documents", "history", "acme/d1", "--json"], env=settings_env(settings))
    assert r.exit_code == 0, r.output
    h = json.loads(r.output)
    assert h["current"]["version"] == 2
    assert [(v["version"], v["publisher"]) for v in h["versions"]] == [(2, ""), (1, "alice")]
    bad = CliRunner().invoke(app, ["documents", "rollback", "acme/d1", "--to", "5"], env=settings_env(settings))
    assert bad.exit_code == 1 and "not in the document's history" in bad.output
