"""``streamrag replay --index NAME``: build or catch up an index version from the compacted documents
topic (the source of truth), through the same ingest stages as the ingest worker.

Resumable: the replay's consumer group (``<ingest group>-replay-<NAME>``) is committed only after a
batch has been written, and writes are idempotent (per-document versions), so a replay killed at
any point and started again ends with the same index. Chunks whose embedded text an index of the
same model already holds reuse the stored vectors instead of being encoded again.

One writer per version: live ingest writes the active version, so a replay into it is refused (two writers
inserting the same new chunk at once would both keep theirs), unless the caller says the ingest workers are
stopped (``ingest_stopped``). With STREAMRAG_WRITER_LEASE=redis a replay holds a lease on its version while it
runs, and promote and rollback take the same lease to switch: a version is not made active while a replay holds
its lease, and no replay starts on a version being switched to (a replay whose lease was lost stops at its next
batch). Without the lease (one machine) a replay reads the
active version before each batch and stops, the batch in hand unwritten and its offsets uncommitted, when its
version has become the active one (a standby promoted while it followed).

One guarded ingest path: a replay runs the ingest flow's steps (flows.ingest ``run_steps``) through the same
step guard, with a crash ledger of its own (``replay-NAME`` in STREAMRAG_STATE_DIR: a record that kills the
replay twice is dead-lettered at the next run), and sends its outputs through the ingest worker's sink (flush,
then commit): dead letters always, index events when it writes the active version (``ingest_stopped``), so the
query workers' caches drop answers citing the text it replaced. A standby's writes are announced by no event:
nothing reads that version until it is promoted.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bytewax.outputs import StatelessSinkPartition

from streamrag.connectors.crash_ledger import FileCrashLedger, replay_ledger_path
from streamrag.connectors.kafka_admin import check_reachable
from streamrag.connectors.kafka_sink import FlushThenCommitSink
from streamrag.connectors.kafka_topic_reader import Start, TopicReader
from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.connectors.lancedb_store import LanceStore
from streamrag.connectors.redis_cache import redis_for
from streamrag.connectors.redis_lease import RedisLease
from streamrag.core.errors import IndexRefused
from streamrag.core.index_versions import (
    DEFAULT_INDEX,
    INDEX_FIELDS,
    check_name,
    differing_settings,
    index_settings,
    new_manifest,
    with_overrides,
)
from streamrag.core.ingest.stages import IngestStages
from streamrag.core.lease import AlwaysHeld, Lease, kept
from streamrag.core.records import Outgoing
from streamrag.core.sealing import sealer_for
from streamrag.core.settings import Settings
from streamrag.flows.components import embedder_for, make_extractors
from streamrag.flows.index_views import store_for
from streamrag.flows.ingest import messages_of, run_steps
from streamrag.schemas.models import DeadLetter, IndexEvent, IndexManifest

Progress = Callable[[int, int], None]  # (records done, records known in total)


@dataclass
class ReplayReport:
    index: str
    created: bool = False
    read: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    encoded: int = 0
    reused: int = 0
    seconds: float = 0.0
    caught_up: bool = False
    promoted: bool = False  # stopped because its version became the active one (live ingest writes it now)

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "created": self.created, "read": self.read, "outcomes": self.outcomes,
                "dead_letters": self.dead_letters, "chunks_encoded": self.encoded, "chunks_reused": self.reused,
                "seconds": round(self.seconds, 2), "records_per_s": round(self.read / self.seconds, 1)
                if self.seconds else 0.0, "caught_up": self.caught_up, "promoted": self.promoted}


def replay_group(s: Settings, name: str) -> str:
    return f"{s.worker.ingest_group}-replay-{name}"


def ensure_default_registered(s: Settings, registry: LanceIndexRegistry) -> None:
    """The index that predates versions keeps the settings it was built with: frozen in a manifest."""
    if DEFAULT_INDEX not in registry.manifests():
        registry.register(new_manifest(DEFAULT_INDEX, s))


def prepare_index(
    s: Settings, registry: LanceIndexRegistry, name: str, overrides: dict[str, str]
) -> tuple[IndexManifest, bool]:
    """The manifest of index ``name`` (created with ``overrides`` when new) and whether it is new.
    An existing index keeps its settings: asking for others is refused with what differs."""
    check_name(name)
    shaped = {k: v for k, v in overrides.items() if k in INDEX_FIELDS}
    known = registry.manifests()
    if name in known or name == DEFAULT_INDEX:
        ensure_default_registered(s, registry)
        m = registry.manifests()[name]
        if shaped:
            wanted = new_manifest(name, with_overrides(index_settings(s, m), shaped))
            diff = differing_settings(m, wanted)
            if diff:
                what = ", ".join(f"{k}={a} (asked {b})" for k, (a, b) in diff.items())
                raise IndexRefused(f"index {name!r} exists with {what}: drop it or choose another name")
        return m, False
    ensure_default_registered(s, registry)
    m = new_manifest(name, with_overrides(s, shaped))
    registry.register(m)
    return m, True


def writer_lease(s: Settings, name: str) -> Lease:
    """The lease a replay of index version ``name`` holds, and a switch to it takes (STREAMRAG_WRITER_LEASE)."""
    if s.worker.writer_lease == "none":
        return AlwaysHeld()
    return RedisLease(redis_for(s.redis, s.cache.redis_prefix, timeout_s=2.0), f"writer:{s.lancedb_path()}:{name}",
                      s.worker.maintenance_lease_ttl_s)


def take_writer_lease(lease: Lease, name: str) -> None:
    if not lease.acquire():
        raise IndexRefused(f"index {name!r} is being replayed or switched to (its writer lease in Redis is held, "
                           "or Redis does not answer): stop that replay, or try again when it has finished")


def check_not_live(registry: LanceIndexRegistry, name: str, ingest_stopped: bool) -> None:
    """Refuse a replay into the version live ingest writes (the active one) unless the ingest workers are stopped."""
    if not ingest_stopped and registry.active() == name:
        raise IndexRefused(
            f"index {name!r} is the active version, which the live ingest workers write: replay into a new version "
            f"and promote it, or stop the ingest workers and replay with --ingest-stopped"
        )


def reuse_sources(s: Settings, registry: LanceIndexRegistry, m: IndexManifest) -> list[LanceStore]:
    """Other versions built with the same embedding model, the active one first."""
    active = registry.active()
    others = [o for o in registry.manifests().values()
              if o.name != m.name and o.settings.get("embedding_model") == m.settings.get("embedding_model")]
    others.sort(key=lambda o: o.name != active)
    return [store_for(s, o) for o in others[:2]]


def replay(
    s: Settings,
    name: str,
    *,
    start: Start = "resume",
    overrides: dict[str, str] | None = None,
    follow: bool = False,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    ingest_stopped: bool = False,
    lease: Lease | None = None,
) -> ReplayReport:
    check_name(name)
    lease = lease or writer_lease(s, name)
    take_writer_lease(lease, name)
    try:
        with kept(lease) as lost:
            return _replay(s, name, start, overrides or {}, follow, progress, stop, ingest_stopped, lost)
    finally:
        lease.release()


def _replay(
    s: Settings, name: str, start: Start, overrides: dict[str, str], follow: bool, progress: Progress | None,
    stop: threading.Event | None, ingest_stopped: bool, lost: threading.Event,
) -> ReplayReport:
    registry = LanceIndexRegistry(s.lancedb_path())
    check_not_live(registry, name, ingest_stopped)
    check_reachable(s.kafka)
    m, created = prepare_index(s, registry, name, overrides)
    # the index's own settings, then this run's (batch sizes, devices: fields that do not shape the index)
    rs = with_overrides(index_settings(s, m), {k: v for k, v in overrides.items() if k not in INDEX_FIELDS})
    store = store_for(rs, m)
    stages = IngestStages.from_settings(rs, store, embedder_for(rs), reuse=reuse_sources(rs, registry, m),
                                       extractors=make_extractors(rs.index))
    reader = TopicReader(s.kafka, s.topics.documents, replay_group(s, name), "beginning" if created else start)
    report = ReplayReport(name, created=created)
    stop = stop or _stop_on_signals()
    ledger = FileCrashLedger(replay_ledger_path(s.worker.state_dir, name), "ingest")
    to_messages = messages_of(s)
    sink: StatelessSinkPartition[Outgoing] | None = None  # the ingest worker's sink, made for the first batch with something to send
    t0 = time.perf_counter()
    total = reader.behind()
    last_maintain = time.monotonic()
    try:
        while not stop.is_set():
            recs = reader.read(rs.worker.source_batch_size, 0.5)
            if lost.is_set():
                raise IndexRefused(f"the writer lease on {name!r} was lost (Redis did not answer in time): replay stopped; "
                                   "run it again to resume")
            active = registry.active() == name
            if active and not ingest_stopped:
                report.promoted = True  # live ingest writes this version now: the batch in hand stays unwritten
                break
            if recs:
                finished = run_steps(stages, recs, ledger)
                msgs = [m for f in finished if active or isinstance(f.output, DeadLetter) for m in to_messages(f)]
                if msgs:
                    sink = sink or FlushThenCommitSink(s.kafka, s.worker, sealer_for(s)).build("replay", 0, 1)
                    sink.write_batch(msgs)  # produced and flushed (or TemporaryFailure: nothing committed)
                reader.commit()  # only now: these records are in the index (or dead-lettered), their events sent
                report.read += len(recs)
                report.dead_letters += sum(m.topic == s.topics.dead_letters for m in msgs)
                for f in finished:
                    if isinstance(f.output, IndexEvent):
                        report.outcomes[f.output.status] = report.outcomes.get(f.output.status, 0) + 1
                if progress is not None:
                    progress(report.read, max(total, report.read))
                continue
            behind = reader.behind()
            if behind == 0 and not follow:
                report.caught_up = True
                break
            total = report.read + behind
            if follow and time.monotonic() - last_maintain > 10:
                store.maintain()
                last_maintain = time.monotonic()
    finally:
        reader.close()
        if sink is not None:
            sink.close()
        store.maintain(force=True)  # FTS and ANN indexes before anyone searches this version
        report.encoded, report.reused = stages.encoded_chunks, stages.reused_chunks
        report.seconds = time.perf_counter() - t0
    return report


def _stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT end the replay after the batch in hand (its offsets committed)."""
    ev = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: ev.set())
    return ev
