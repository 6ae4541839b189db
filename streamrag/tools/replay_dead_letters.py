"""``streamrag replay dead-letters``: put dead-lettered documents back on the documents topic after a
fix in code or configuration.

Each re-published record carries the header ``streamrag-replayed``; if it fails again, its new dead
letter says ``replayed: true`` and is never replayed again (no loop). The job's consumer group on the
dead-letter topic is committed after the records are delivered, so a second run does not publish
them twice; ``--since`` starts from a time instead.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.kafka_topic_reader import TopicReader
from streamrag.core.records import REPLAYED_HEADER
from streamrag.core.settings import Settings
from streamrag.schemas.models import DeadLetter


@dataclass
class DeadLetterReplay:
    replayed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "skipped": self.skipped, "dry_run": self.dry_run}


def dead_letter_group(s: Settings) -> str:
    return f"{s.ingest_group}-dead-letter-replay"


def replay_dead_letters(
    s: Settings, *, stage: str | None = None, since: datetime | None = None, dry_run: bool = False
) -> DeadLetterReplay:
    check_reachable(s)
    reader = TopicReader(s, s.topic_dead_letters, dead_letter_group(s), since or "resume")
    out = DeadLetterReplay(dry_run=dry_run)
    producer = None if dry_run else JsonProducer(s)
    try:
        while True:
            recs = reader.read(500, 0.5)
            if not recs:
                if reader.behind() == 0:
                    break
                continue
            for rec in recs:
                try:
                    d = DeadLetter.model_validate_json(rec.value or b"")
                except ValidationError:
                    out.skip("not a dead letter")
                    continue
                if d.replayed:
                    out.skip("failed again after a replay")
                elif d.source.topic != s.topic_documents:
                    out.skip("not from the documents topic")
                elif stage is not None and d.stage != stage:
                    out.skip(f"stage {d.stage}")
                else:
                    out.replayed += 1
                    if producer is not None:
                        key = base64.b64decode(d.original_key_b64) if d.original_key_b64 else None
                        where = f"{rec.topic}/{rec.partition}/{rec.offset}".encode()
                        producer.send(s.topic_documents, key, d.original(), headers=[(REPLAYED_HEADER, where)])
            if producer is not None:
                producer.flush()
                reader.commit()  # delivered: the next run starts after these
    finally:
        reader.close()
    return out
