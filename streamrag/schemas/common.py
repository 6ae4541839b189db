"""What every event contract shares: the base model (frozen, unknown fields refused, null read as absent), the
identifier types (tenant, document id, name) and UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

SCHEMA_VERSION = 1

# Tenants are operator-chosen identifiers; they never need quoting anywhere.
Tenant = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DocId = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Scalar = str | int | float | bool | None
# an A/B variant as "experiment/variant" (empty: none)
VariantLabel = Annotated[str, StringConstraints(max_length=81, pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,39}/[A-Za-z0-9][A-Za-z0-9_.-]{0,39})?$")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(d: datetime) -> datetime:
    """A time without a zone is read as UTC (the one place that decides it)."""
    return d if d.tzinfo else d.replace(tzinfo=UTC)


# every time that arrives from outside is zone-aware once validated
UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        """JSON producers send null for an absent optional field: read it as the field's default."""
        if isinstance(data, dict):
            fields = cls.model_fields
            return {
                k: v for k, v in data.items()
                if not (v is None and k in fields and not fields[k].is_required() and fields[k].default is not None)
            }
        return data
