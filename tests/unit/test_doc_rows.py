"""Enrichment reads a document's row once per version: later answers citing that version take it from memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.query.enrich import enrich
from streamrag.schemas.models import Citation
from tests.conftest import change


def counting_reads(store: LanceStore) -> list[str]:
    """Names of the tables the store opens for reading from now on."""
    opened: list[str] = []
    table: Callable[[str], Any] = store.table

    def counted(name: str) -> Any:
        opened.append(name)
        return table(name)

    store.table = counted  # type: ignore[method-assign]
    return opened


def test_a_cited_version_is_read_once_and_a_new_version_again(store: LanceStore, run: Callable[..., list[Any]]) -> None:
    run(change("d1", 1, "alpha beta gamma", title="First title"), change("d2", 1, "delta epsilon", title="Other"))
    cites = [Citation(doc_id="d1", version=1, chunk_id="c1"), Citation(doc_id="d2", version=1, chunk_id="c2")]
    assert [c.title for c in enrich(store, "acme", cites)] == ["First title", "Other"]
    opened = counting_reads(store)
    assert [c.title for c in enrich(store, "acme", cites)] == ["First title", "Other"]
    assert store.docs_name not in opened  # both rows came from memory
    run(change("d1", 2, "alpha beta gamma, edited", title="Second title"))
    new = enrich(store, "acme", [Citation(doc_id="d1", version=2, chunk_id="c1")])
    assert [c.title for c in new] == ["Second title"] and store.docs_name in opened
