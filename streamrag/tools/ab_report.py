"""``streamrag ab report``: an experiment's audit records and feedback read from their topics (beginning to
end, committing nothing) and compared by variant (core.ab_report)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from streamrag.connectors.kafka_topic_reader import TopicReader
from streamrag.core.ab_report import figures, report
from streamrag.core.errors import ConfigError
from streamrag.core.settings import Settings
from streamrag.schemas.models import AuditRecord, Feedback

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def read_all(s: Settings, topic: str, model: type[M], keep: Callable[[M], bool], timeout_s: float = 60.0) -> list[M]:
    """Every record of ``topic`` up to its end now that parses as ``model`` and passes ``keep``."""
    reader = TopicReader(s.kafka, topic, f"streamrag-ab-{uuid.uuid4().hex[:8]}", start="beginning")
    out: list[M] = []
    skipped = 0
    try:
        ends = reader.ends()
        deadline = time.monotonic() + timeout_s
        while reader.behind(ends) > 0 and time.monotonic() < deadline:
            for rec in reader.read(1000, 0.5):
                if rec.value is None:
                    continue
                try:
                    m = model.model_validate_json(rec.value)
                except ValidationError:
                    skipped += 1
                    continue
                if keep(m):
                    out.append(m)
    finally:
        reader.close()
    if skipped:
        log.warning("%s: %d records that are not %s skipped", topic, skipped, model.__name__)
    return out


def ab_report(s: Settings, experiment: str) -> dict[str, object]:
    exp = next((e for e in s.gateway.experiments if e.name == experiment), None)
    known = [f"{experiment}/{v.name}" for v in exp.variants] if exp is not None else []
    if exp is None:
        names = ", ".join(e.name for e in s.gateway.experiments) or "none configured"
        log.warning("experiment %r is not in STREAMRAG_GATEWAY_EXPERIMENTS (%s): reporting what the topics hold",
                    experiment, names)
    prefix = f"{experiment}/"
    audits = read_all(s, s.topics.audit, AuditRecord, lambda a: a.variant.startswith(prefix))
    feedback = read_all(s, s.topics.feedback, Feedback, lambda f: f.variant.startswith(prefix))
    if exp is None and not audits and not feedback:
        raise ConfigError(f"no experiment named {experiment!r}: neither configured nor seen on the audit topic")
    return report(experiment, figures(experiment, audits, feedback, known))
