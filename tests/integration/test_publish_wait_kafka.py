"""``streamrag publish --wait``'s progress: each document change counted as its index event arrives (real Kafka; the
events produced here stand for an ingest worker's)."""

from __future__ import annotations

import threading
import time

import pytest

from streamrag.connectors.kafka_index_events import IndexEventWatcher
from streamrag.core.errors import ApplyTimeout
from streamrag.core.settings import Settings
from tests.integration.conftest import produce

pytestmark = pytest.mark.integration


def test_waiting_reports_each_change_applied_as_its_event_arrives(settings: Settings) -> None:
    expected = {"acme/a": 2, "acme/b": 1, "acme/c": 1}
    seen: list[tuple[int, int]] = []
    watcher = IndexEventWatcher(settings.kafka, settings.topics)

    def worker() -> None:
        time.sleep(0.5)
        produce(settings, settings.topics.index_events, [
            ("acme/a", {"tenant": "acme", "doc_id": "a", "version": 1, "status": "indexed"}),  # an older version
            ("acme/a", {"tenant": "acme", "doc_id": "a", "version": 2, "status": "indexed"}),
            ("acme/b", {"tenant": "acme", "doc_id": "b", "version": 1, "status": "deleted"}),
            ("other/x", {"tenant": "other", "doc_id": "x", "version": 9, "status": "indexed"}),
            ("acme/c", {"tenant": "acme", "doc_id": "c", "version": 3, "status": "indexed"}),
        ])

    threading.Thread(target=worker).start()
    done = watcher.wait(expected, timeout=60, applied=lambda n, total: seen.append((n, total)))
    assert done == {"acme/a": "indexed", "acme/b": "deleted", "acme/c": "indexed"}
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(ApplyTimeout):
        IndexEventWatcher(settings.kafka, settings.topics).wait({"acme/never": 1}, timeout=1.0)
