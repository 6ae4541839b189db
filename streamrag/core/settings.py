"""The configuration of a process: its components (``core.config``), composed once at the entry point and
passed down. Each component reads its own ``STREAMRAG_*`` variables (or a ``.env`` file).

``Settings(chunk_size=64, ...)`` and ``settings.model_copy(update={...})`` take the variables' names without
the ``STREAMRAG_`` prefix (``flat`` names) and validate what they change; ``settings.kafka.bootstrap`` reads
one value; ``flat()`` gives every value by its flat name (the manifests of index versions, workers' env).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError

from streamrag.core.config import (
    AnnConfig,
    AuditConfig,
    AuthConfig,
    CacheConfig,
    ChunkConfig,
    EncryptionConfig,
    GatewayConfig,
    GenerationConfig,
    IndexConfig,
    KafkaConfig,
    LocalModelConfig,
    OpenAIConfig,
    PiiConfig,
    QueryPolicyConfig,
    RedisConfig,
    RetrievalSettings,
    TopicLayout,
    TopicsConfig,
    WorkerConfig,
    _Component,
)
from streamrag.core.errors import ConfigError
from streamrag.core.json_limits import JsonLimits


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    chunk: ChunkConfig = Field(default_factory=ChunkConfig)
    ann: AnnConfig = Field(default_factory=AnnConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    local: LocalModelConfig = Field(default_factory=LocalModelConfig)
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    policy: QueryPolicyConfig = Field(default_factory=QueryPolicyConfig)
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig)

    # -- flat names ------------------------------------------------------------------------------------
    @classmethod
    def components(cls) -> dict[str, type[_Component]]:
        return {name: f.annotation for name, f in cls.model_fields.items()}  # type: ignore[misc]

    @classmethod
    def flat_fields(cls) -> dict[str, tuple[str, str, FieldInfo]]:
        """Every setting by its flat name (``kafka_bootstrap``): (component, field, its definition)."""
        out: dict[str, tuple[str, str, FieldInfo]] = {}
        for comp, model in cls.components().items():
            for field, info in model.model_fields.items():
                out[model.flat_prefix() + field] = (comp, field, info)
        return out

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        """Flat names (and ``_env_file``) routed to their components; a component given whole is kept, and
        re-validated with the flat values that change it."""
        if not isinstance(data, Mapping):
            return data
        flat = cls.flat_fields()
        comps = cls.components()
        given = {k: v for k, v in data.items() if k in comps}
        private = {k: v for k, v in data.items() if k.startswith("_")}
        changes: dict[str, dict[str, Any]] = {}
        for k, v in data.items():
            if k in comps or k in private:
                continue
            if k not in flat:
                raise ValueError(f"unknown setting {k!r}")
            comp, field, _ = flat[k]
            changes.setdefault(comp, {})[field] = v
        for comp, model in comps.items():
            if comp in changes or (private and comp not in given):
                base = given[comp].model_dump() if isinstance(given.get(comp), BaseModel) else {}
                given[comp] = model(**{**base, **changes.get(comp, {})}, **private)
        return given

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Settings:
        """A copy with ``update`` (flat names or components), validated like a new one."""
        return Settings(**{c: getattr(self, c) for c in self.components()}, **dict(update or {}))

    def flat(self) -> dict[str, Any]:
        """Every value by its flat name (JSON-compatible)."""
        out: dict[str, Any] = {}
        for comp, model in self.components().items():
            dumped = getattr(self, comp).model_dump(mode="json")
            out.update({model.flat_prefix() + k: v for k, v in dumped.items()})
        return out

    # -- derived values ---------------------------------------------------------------------------------
    @property
    def project_topics(self) -> dict[str, str]:
        """Every topic the project owns, by setting (topic_documents, ..., topic_audit): the one list of them."""
        return {f"topic_{k}": v for k, v in self.topics.model_dump().items()}

    @property
    def topic_layout(self) -> TopicLayout:
        """The topics' names and configuration, as ``ensure_topics`` creates them."""
        return TopicLayout(topics=self.topics, worker=self.worker, audit=self.audit)

    @property
    def json_limits(self) -> JsonLimits:
        return JsonLimits(max_bytes=self.worker.max_message_bytes, max_depth=self.worker.max_json_depth)

    @property
    def auth_on(self) -> bool:
        return self.auth.required if self.auth.required is not None else self.worker.profile == "production"

    @cached_property
    def brokers(self) -> list[str]:
        return [b.strip() for b in self.kafka.bootstrap.split(",") if b.strip()]

    @property
    def lancedb_is_local(self) -> bool:
        return "://" not in self.index.lancedb_uri

    def lancedb_path(self) -> str:
        """The URI to hand LanceDB: local folders are made absolute, object-store URIs pass through."""
        if self.lancedb_is_local:
            return str(Path(self.index.lancedb_uri).expanduser().resolve())
        return self.index.lancedb_uri


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise ConfigError with one readable line on bad values."""
    flat = Settings.flat_fields()
    parts: dict[str, Any] = {}
    changes: dict[str, dict[str, Any]] = {}
    for k, v in overrides.items():
        if k not in flat:
            raise ConfigError(f"unknown setting {k!r}")
        changes.setdefault(flat[k][0], {})[flat[k][1]] = v
    for comp, model in Settings.components().items():
        try:
            parts[comp] = model(**changes.get(comp, {}))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first.get("loc", ("",))[0]) if first.get("loc") else ""
            env = f"STREAMRAG_{(model.flat_prefix() + field).upper()}" if field else f"{comp} settings"
            raise ConfigError(f"invalid {env}: {first.get('msg')}") from exc
        except SettingsError as exc:  # a list or dict setting whose text is not JSON
            m = re.search(r'field "(\w+)"', str(exc))
            env = f"STREAMRAG_{(model.flat_prefix() + m.group(1)).upper()}" if m else f"{comp} settings"
            raise ConfigError(f"invalid {env}: not valid JSON") from exc
        except RecursionError as exc:  # JSON nested deeper than the decoder can follow, in a list or dict setting
            deep = [f"STREAMRAG_{(model.flat_prefix() + f).upper()}" for f in model.model_fields
                    if _nesting(os.environ.get(f"STREAMRAG_{(model.flat_prefix() + f).upper()}", "")) > MAX_NESTING]
            raise ConfigError(f"invalid {deep[0] if deep else comp + ' settings'}: JSON nested deeper than "
                              f"{MAX_NESTING} levels") from exc
    return Settings(**parts)


MAX_NESTING = 100  # no setting's JSON needs more than a few levels


def _nesting(text: str) -> int:
    """The deepest bracket nesting of ``text`` (strings not told apart: a bound, not a parser)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def settings_env(s: Settings) -> dict[str, str]:
    """The environment that reproduces ``s`` in another process (workers started by tools and tests)."""
    env: dict[str, str] = {}
    for name, value in s.flat().items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"STREAMRAG_{name.upper()}"] = text
    return env
