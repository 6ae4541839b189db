"""Retention of existing topics brought to the configuration at start: a topic made before a setting changed
(STREAMRAG_AUDIT_RETENTION_DAYS, say) keeps its old ``retention.ms`` otherwise. Only ``retention.ms`` is changed,
with an incremental alter (every other setting of the topic is left as it is), and only where it differs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from streamrag.core.errors import ServiceUnavailable

log = logging.getLogger(__name__)
RETENTION = "retention.ms"


def current_retention(a: Any, topics: list[str], timeout_s: float) -> dict[str, str]:
    """Each topic's ``retention.ms`` as the broker has it."""
    if not topics:
        return {}
    out: dict[str, str] = {}
    res = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    for r, fut in a.describe_configs(res, request_timeout=timeout_s).items():
        entry = fut.result(timeout=timeout_s).get(RETENTION)
        out[r.name] = entry.value if entry is not None else ""
    return out


def apply_retention(a: Any, specs: Mapping[str, Mapping[str, str]], existing: set[str],
                    timeout_s: float) -> dict[str, str]:
    """Set ``retention.ms`` of the existing topics whose spec names one and whose broker value differs.
    Returns topic -> "retention changed from X to Y ms" for each topic changed."""
    want = {t: cfg[RETENTION] for t, cfg in specs.items() if t in existing and RETENTION in cfg}
    have = current_retention(a, sorted(want), timeout_s)
    change = {t: v for t, v in want.items() if have.get(t) != v}
    if not change:
        return {}
    res = [ConfigResource(ResourceType.TOPIC, t, incremental_configs=[
        ConfigEntry(RETENTION, v, incremental_operation=AlterConfigOpType.SET)]) for t, v in sorted(change.items())]
    done: dict[str, str] = {}
    for r, fut in a.incremental_alter_configs(res, request_timeout=timeout_s).items():
        try:
            fut.result(timeout=timeout_s)
        except Exception as exc:
            raise ServiceUnavailable(f"could not set {RETENTION} of topic {r.name}: {exc}") from exc
        done[r.name] = f"retention changed from {have.get(r.name) or '?'} to {change[r.name]} ms"
        log.warning("topic %s: %s", r.name, done[r.name])
    return done
