"""``streamrag replay dead-letters``: put dead-lettered documents back on the documents topic after a
fix in code or configuration.

Each re-published record carries the header ``streamrag-replayed``; if it fails again, its new dead
letter says ``replayed: true``, and neither it nor any other dead letter of the same record (same key
and bytes: an ingest worker that restarts reads the topic again and fails the original again) is
replayed again: no loop. The job's consumer group on the dead-letter topic is committed after the
records are delivered, so the next run starts after them; ``--since`` starts from a time instead.

An original encrypted at rest (``sealed``: the deployment has STREAMRAG_ENCRYPTION_KEYS) is opened with the
keys set here and re-published as it first arrived; one that does not open (no key, a retired key) is skipped
and counted, never re-published encrypted. A record's identity is its key and original bytes, not their
ciphertext (a fresh nonce each time).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_producer import JsonProducer
from streamrag.connectors.kafka_topic_reader import TopicReader
from streamrag.core.json_limits import Reason, read_model
from streamrag.core.records import REPLAYED_HEADER, RawRecord
from streamrag.core.sealing import sealer_for
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
    return f"{s.worker.ingest_group}-dead-letter-replay"


def _identity(d: DeadLetter, original: bytes) -> str:
    return hashlib.sha256(f"{d.original_key_b64}\x00".encode() + original).hexdigest()


def replay_dead_letters(
    s: Settings, *, stage: str | None = None, since: datetime | None = None, dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> DeadLetterReplay:
    """``progress(read, total)``: the dead-letter topic's records read so far, of those on it (a progress bar)."""
    check_reachable(s.kafka)
    # the whole topic is read (records that failed after a replay are known wherever they are);
    # only dead letters after the last run (or since a time) are candidates
    reader = TopicReader(s.kafka, s.topics.dead_letters, dead_letter_group(s), "beginning")
    done = reader.committed()
    since_ms = int(since.timestamp() * 1000) if since is not None else None
    failed_again: set[str] = set()
    candidates: list[tuple[RawRecord, DeadLetter, bytes]] = []
    out = DeadLetterReplay(dry_run=dry_run)
    sealer = sealer_for(s)
    read = 0
    try:
        while True:
            recs = reader.read(500, 0.5)
            if not recs:
                if reader.behind() == 0:
                    break
                continue
            read += len(recs)
            if progress is not None:
                progress(read, read + reader.behind())
            for rec in recs:
                d = read_model(rec.value, DeadLetter, s.json_limits)
                if isinstance(d, Reason):
                    out.skip("not a dead letter")
                    continue
                original = sealer.original(d)
                if isinstance(original, Reason):
                    out.skip(str(original))
                    continue
                if d.replayed:
                    failed_again.add(_identity(d, original))
                    out.skip("failed again after a replay")
                    continue
                new = (since_ms is None and (rec.offset or 0) >= done.get(rec.partition or 0, -1)) or (
                    since_ms is not None and (rec.timestamp_ms or 0) >= since_ms)
                if new:
                    candidates.append((rec, d, original))
        producer = None if dry_run else JsonProducer(s.kafka, s.worker)
        sent: set[str] = set()
        for rec, d, original in candidates:
            ident = _identity(d, original)
            if ident in failed_again:
                out.skip("failed again after a replay")
            elif d.source.topic != s.topics.documents:
                out.skip("not from the documents topic")
            elif stage is not None and d.stage != stage:
                out.skip(f"stage {d.stage}")
            elif ident in sent:
                out.skip("same record dead-lettered more than once")
            else:
                sent.add(ident)
                out.replayed += 1
                if producer is not None:
                    key = base64.b64decode(d.original_key_b64) if d.original_key_b64 else None
                    where = f"{rec.topic}/{rec.partition}/{rec.offset}".encode()
                    producer.send(s.topics.documents, key, original, headers=[(REPLAYED_HEADER, where)])
        if producer is not None:
            producer.flush()
            reader.commit()  # delivered: the next run starts after these
    finally:
        reader.close()
    return out
