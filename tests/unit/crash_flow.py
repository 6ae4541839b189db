"""A worker that dies (os._exit, no unwinding) on one record: run by test_crash_ledger in a subprocess.

    python -m tests.unit.crash_flow STATE_DIR DB_DIR OUT_FILE
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bytewax.testing import TestingSource, run_main

from streamrag.connectors.crash_ledger import FileCrashLedger, ledger_path
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.flows import ingest as ingest_flow
from streamrag.flows.local import CallbackSink
from tests.fakes import HashEmbedder

DOCS = ["alpha", "bomb", "gamma", "delta"]


class DyingStages(IngestStages):
    def embed(self, items: Any) -> list[Any]:
        if any(getattr(getattr(i, "change", None), "doc_id", "") == "bomb" for i in items):
            os._exit(70)  # a native crash: no exception, no finally
        return super().embed(items)


def main(state_dir: str, db: str, out_file: str) -> None:
    s = Settings(lancedb_uri=db, generator="extractive", chunk_size=20, chunk_overlap=4, _env_file=None)  # type: ignore[call-arg]
    recs = [RawRecord(value=json.dumps({"op": "upsert", "tenant": "acme", "doc_id": d, "version": 1,
                                        "text": f"{d} text"}).encode(), key=d.encode(), topic="docs", partition=0,
                      offset=i) for i, d in enumerate(DOCS)]
    outs: list[dict[str, Any]] = []
    ledger = FileCrashLedger(ledger_path(state_dir, "ingest", 0), "ingest")
    flow = ingest_flow.build_flow(
        s, source=TestingSource(recs, batch_size=10), ledger=ledger,
        sink=CallbackSink(lambda items: outs.extend(o.model_dump(mode="json") for o in items)),
        stages=DyingStages.from_settings(s, LanceStore(s.lancedb_path(), fts_rebuild_every_s=0), HashEmbedder()),
    )
    run_main(flow)
    Path(out_file).write_text(json.dumps(outs))


if __name__ == "__main__":
    main(*sys.argv[1:4])
