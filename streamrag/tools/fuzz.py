"""``streamrag bench fuzz``: hostile records sent to running workers, then every one accounted for.

Documents and queries go to their topics with their delivery positions noted; the tool then reads the
dead-letters, index-events and answers topics (from their ends before the send) until each record has
an outcome: a dead letter at its position, an index event for its document, or an answer to its query
id. A record with none when the time is up is counted ``unaccounted`` (the figure that must be 0).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer

from streamrag.connectors.kafka_admin import check_reachable, client_config
from streamrag.connectors.kafka_topic_reader import TopicReader
from streamrag.core.ingest.changes import parse_change
from streamrag.core.json_limits import Reason, read_model
from streamrag.core.ports import Position
from streamrag.core.records import RawRecord
from streamrag.core.settings import Settings
from streamrag.schemas.models import Answer, DeadLetter, DocumentChange, IndexEvent
from streamrag.tools.fuzz_records import HostileRecord, hostile_records


@dataclass
class FuzzReport:
    records: int = 0
    documents: int = 0
    queries: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by stage
    index_events: Counter[str] = field(default_factory=Counter)  # by status
    answers: Counter[str] = field(default_factory=Counter)  # by status
    shapes: Counter[str] = field(default_factory=Counter)
    unaccounted: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "documents": self.documents, "queries": self.queries,
                "dead_letters": dict(self.dead_letters), "index_events": dict(self.index_events),
                "answers": dict(self.answers), "shapes": dict(self.shapes),
                "unaccounted": len(self.unaccounted), "unaccounted_examples": self.unaccounted[:10],
                "seconds": round(self.seconds, 1)}


def _send(s: Settings, recs: list[HostileRecord]) -> list[Position]:
    """Produce each record to its topic; their positions, in order."""
    p = Producer(client_config(s.kafka, **{"linger.ms": 5, "message.max.bytes": 8 * 1024 * 1024}))
    where: dict[int, Position] = {}
    failed: list[str] = []

    def noted(i: int) -> Any:
        def cb(err: Any, msg: Any) -> None:
            if err is not None:
                failed.append(str(err))
            else:
                where[i] = (msg.topic(), msg.partition(), msg.offset())
        return cb

    for i, r in enumerate(recs):
        topic = s.topics.documents if r.kind == "document" else s.topics.queries
        while True:
            try:
                p.produce(topic, key=r.key, value=r.value, on_delivery=noted(i))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(60)
    if failed or len(where) != len(recs):
        raise RuntimeError(f"{len(recs) - len(where)} fuzz records not delivered: {failed[:1]}")
    return [where[i] for i in range(len(recs))]


def run_fuzz(s: Settings, n: int, *, seed: int = 0, timeout_s: float = 300.0, tenant: str | None = None) -> FuzzReport:
    """Send ``n`` hostile records to the running workers and account for each one."""
    check_reachable(s.kafka)
    tenant = tenant or f"fuzz-{uuid.uuid4().hex[:8]}"
    recs = hostile_records(n, tenant=tenant, seed=seed)
    readers = {t: TopicReader(s.kafka, t, f"fuzz-{uuid.uuid4().hex[:8]}", "beginning")
               for t in (s.topics.dead_letters, s.topics.index_events, s.topics.answers)}
    for reader in readers.values():  # only what follows the send
        reader.position = reader.ends()
        reader.reassign()
    t0 = time.monotonic()
    positions = _send(s, recs)
    report = FuzzReport(records=n, documents=sum(r.kind == "document" for r in recs),
                        queries=sum(r.kind == "query" for r in recs), shapes=Counter(r.shape for r in recs))
    open_: dict[int, HostileRecord] = dict(enumerate(recs))
    by_pos = {pos: i for i, pos in enumerate(positions)}
    by_doc: dict[tuple[str, str, int], int] = {}
    by_qid: dict[str, int] = {}
    for i, r in enumerate(recs):
        if r.kind == "query":
            by_qid[r.key.decode()] = i
        elif isinstance(ch := parse_change(RawRecord(r.value), s.json_limits), DocumentChange):
            by_doc[(ch.tenant, ch.doc_id, ch.version)] = i
    deadline = time.monotonic() + timeout_s
    try:
        while open_ and time.monotonic() < deadline:
            for topic, reader in readers.items():
                for m in reader.read(1000, 0.2):
                    _account(topic, m, s, report, open_, by_pos, by_doc, by_qid)
    finally:
        for reader in readers.values():
            reader.close()
    report.unaccounted = [f"{r.kind}:{r.shape}:{r.key.decode(errors='replace')}" for r in open_.values()]
    report.seconds = time.monotonic() - t0
    return report


def _account(topic: str, m: RawRecord, s: Settings, report: FuzzReport, open_: dict[int, HostileRecord],
             by_pos: dict[Position, int], by_doc: dict[tuple[str, str, int], int], by_qid: dict[str, int]) -> None:
    if topic == s.topics.dead_letters:
        d = read_model(m.value, DeadLetter, s.json_limits)
        if isinstance(d, Reason) or d.source.topic is None or d.source.partition is None or d.source.offset is None:
            return
        i = by_pos.get((d.source.topic, d.source.partition, d.source.offset))
        if i is not None:
            report.dead_letters[d.stage] += 1
            open_.pop(i, None)
    elif topic == s.topics.index_events:
        ev = read_model(m.value, IndexEvent, s.json_limits)
        if not isinstance(ev, Reason) and (i := by_doc.get((ev.tenant, ev.doc_id, ev.version))) is not None:
            report.index_events[ev.status] += 1
            open_.pop(i, None)
    else:
        a = read_model(m.value, Answer, s.json_limits)
        if not isinstance(a, Reason) and (i := by_qid.get(a.query_id)) is not None and i in open_:
            report.answers[a.status] += 1
            open_.pop(i, None)

