"""``streamrag index list | promote | rollback | drop``: the index versions and which one is active.

A promote is refused while the candidate is behind the active version on any document (compared
per document version), unless forced. Workers follow the registry within STREAMRAG_INDEX_POLL_S.
A promote or rollback takes the version's writer lease (STREAMRAG_WRITER_LEASE=redis) for the switch: a version
a replay is writing is not made active (live ingest would write it beside the replay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException

from streamrag.connectors.kafka_admin import admin
from streamrag.connectors.lancedb_index_registry import LanceIndexRegistry
from streamrag.core.errors import IndexRefused
from streamrag.core.index_versions import DEFAULT_INDEX, Activation, index_settings, lagging, new_manifest
from streamrag.core.lease import Lease
from streamrag.core.settings import Settings
from streamrag.flows.index_views import store_for
from streamrag.schemas.models import IndexManifest
from streamrag.tools.replay import ensure_default_registered, replay_group, take_writer_lease, writer_lease


@dataclass(frozen=True)
class Switch:
    activation: Activation
    behind: list[str]  # documents the newly active version lacks or holds older (forced / rollback)


def _registry(s: Settings) -> LanceIndexRegistry:
    return LanceIndexRegistry(s.lancedb_path())


def manifests(s: Settings, registry: LanceIndexRegistry) -> dict[str, IndexManifest]:
    known = registry.manifests()
    if DEFAULT_INDEX not in known:
        known = {DEFAULT_INDEX: new_manifest(DEFAULT_INDEX, s), **known}
    return known


def manifest_of(s: Settings, registry: LanceIndexRegistry, name: str) -> IndexManifest:
    m = manifests(s, registry).get(name)
    if m is None:
        raise IndexRefused(f"no index named {name!r} (see `streamrag index list`)")
    return m


def list_indexes(s: Settings) -> list[dict[str, Any]]:
    reg = _registry(s)
    active = reg.active()
    rows = []
    for name, m in sorted(manifests(s, reg).items()):
        store = store_for(index_settings(s, m), m)
        states, st = store.doc_versions(), store.stats()
        rows.append({
            "name": name, "active": name == active, "documents": sum(1 for _, d in states.values() if not d),
            "chunks": sum(t["chunks"] for t in st["tenants"].values()), "settings": m.settings,
            "created_at": m.created_at.isoformat(),
        })
    return rows


def behind(s: Settings, registry: LanceIndexRegistry, candidate: str, reference: str) -> list[str]:
    ms = manifests(s, registry)
    ref, cand = ms[reference], ms[candidate]
    return lagging(store_for(s, ref).doc_versions(), store_for(s, cand).doc_versions())


def promote(s: Settings, name: str, force: bool = False, lease: Lease | None = None) -> Switch:
    reg = _registry(s)
    manifest_of(s, reg, name)
    active = reg.active()
    if name == active:
        raise IndexRefused(f"{name!r} is already the active index")
    lease = lease or writer_lease(s, name)
    take_writer_lease(lease, name)
    try:
        late = behind(s, reg, name, active)
        if late and not force:
            raise IndexRefused(
                f"{name!r} is behind {active!r} on {len(late)} documents (first: {late[0]}): "
                f"run `streamrag replay --index {name}` to catch up, or promote with --force"
            )
        ensure_default_registered(s, reg)
        return Switch(reg.activate(name, "promote" + (" (forced)" if late else "")), late)
    finally:
        lease.release()


def rollback(s: Settings, lease: Lease | None = None) -> Switch:
    reg = _registry(s)
    hist = reg.history()
    if not hist:
        raise IndexRefused("nothing to roll back: no index has been promoted")
    current, previous = hist[-1].name, hist[-1].previous
    if previous not in manifests(s, reg):
        raise IndexRefused(f"the previous index {previous!r} has been dropped")
    lease = lease or writer_lease(s, previous)
    take_writer_lease(lease, previous)
    try:
        late = behind(s, reg, previous, current)
        return Switch(reg.activate(previous, "rollback"), late)
    finally:
        lease.release()


def drop(s: Settings, name: str) -> None:
    reg = _registry(s)
    m = manifest_of(s, reg, name)
    if reg.active() == name:
        raise IndexRefused(f"{name!r} is the active index: promote another one before dropping it")
    store_for(s, m).drop()
    reg.remove(name)
    client = admin(s.kafka)  # kept referenced until its futures are done
    try:  # a later index of the same name replays from the beginning, not from this one's offsets
        for f in client.delete_consumer_groups([replay_group(s, name)], request_timeout=s.kafka.timeout_s).values():
            f.result(timeout=s.kafka.timeout_s)
    except (KafkaException, TimeoutError):
        pass  # no such group (never replayed): nothing to forget
