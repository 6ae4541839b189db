"""Records as they arrive (from Kafka or files) and messages as they leave, independent of transport."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from streamrag.schemas.models import DeadLetter, SourcePosition
from streamrag.schemas.vocabulary import DeadLetterStage, ErrorCode

# the header a re-published dead letter carries (its value: the dead letter's topic/partition/offset)
REPLAYED_HEADER = "streamrag-replayed"
# who published a document change (a verified gateway user, or the CLI's operator), kept in the document's history
PUBLISHER_HEADER = "streamrag-publisher"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One input record, whatever its origin."""

    value: bytes | None
    key: bytes | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    timestamp_ms: int | None = None
    replayed: bool = False  # re-published from the dead-letter topic (header streamrag-replayed)
    publisher: str = ""  # header streamrag-publisher ("" when unknown)

    @property
    def position(self) -> SourcePosition:
        return SourcePosition(topic=self.topic, partition=self.partition, offset=self.offset)

    def dead(self, stage: DeadLetterStage, code: ErrorCode, error: str) -> DeadLetter:
        """A dead letter carrying this record's original bytes, key and position, what went wrong and why."""
        return DeadLetter.make(stage=stage, code=code, error=error, value=self.value, key=self.key, source=self.position,
                               replayed=self.replayed)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message for a topic, and the input record it answers (for flush-then-commit)."""

    topic: str
    key: bytes | None
    value: bytes
    source: RawRecord | None = None

    @classmethod
    def of(cls, topic: str, key: str | bytes | None, model: BaseModel, source: RawRecord | None = None) -> Outgoing:
        k = key.encode("utf-8") if isinstance(key, str) else key
        return cls(topic, k, model.model_dump_json().encode("utf-8"), source)
