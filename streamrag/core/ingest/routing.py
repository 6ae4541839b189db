"""The ingest stages of the active index version: each record's target version is fixed when it is
parsed, and every later stage runs that version's stages (its chunking, model and store) on it.

A promote between two batches sends the next batch to the new version; no record is chunked for
one version and written to another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from streamrag.core.ingest.changes import Item, Pending
from streamrag.core.ingest.stages import IngestStages
from streamrag.schemas.vocabulary import IngestStage


class RoutedStages:
    def __init__(self, target: Callable[[], tuple[str, IngestStages]], stages_of: Callable[[str], IngestStages]) -> None:
        self.target = target
        self.stages_of = stages_of

    def run(self, stage: IngestStage, items: Sequence[Any]) -> list[Item]:
        """``parse`` on the active version's stages (which fixes each record's version); every later stage on
        the stages of the version each record was parsed for."""
        if stage == "parse":
            name, stages = self.target()
            return [replace(i, index=name) if isinstance(i, Pending) else i for i in stages.run("parse", items)]
        out: list[Item] = []
        groups: dict[str, list[Item]] = {}
        for i in items:
            if isinstance(i, Pending):
                groups.setdefault(i.index, []).append(i)
            else:
                out.append(i)
        for name, group in groups.items():
            out.extend(self.stages_of(name).run(stage, group))
        return out
