"""The one way this process opens a LanceDB database: the object store's options of the deployment applied to
every connection (server-side encryption of an ``s3://`` index: STREAMRAG_ENCRYPTION_S3_SSE).

The options are the object_store crate's S3 keys, which LanceDB hands to it as they are: ``aws_server_side_
encryption`` (``AES256``: SSE-S3, ``aws:kms``: SSE-KMS) and ``aws_sse_kms_key_id``. Credentials and the endpoint
still come from the ``AWS_*`` variables. ``use_object_store`` is called once where a process reads its settings
(the CLI, a worker's entry point); local folders and ``memory://`` get no options.
"""

from __future__ import annotations

import threading
from typing import Any

import lancedb

from streamrag.core.config import EncryptionConfig

_lock = threading.Lock()
_options: dict[str, str] = {}


def s3_options(enc: EncryptionConfig) -> dict[str, str]:
    """The S3 storage options of ``enc`` (empty: the bucket's own default)."""
    out: dict[str, str] = {}
    if enc.s3_sse:
        out["aws_server_side_encryption"] = enc.s3_sse
        if enc.s3_sse == "aws:kms" and enc.s3_sse_kms_key_id:
            out["aws_sse_kms_key_id"] = enc.s3_sse_kms_key_id
    return out


def use_object_store(enc: EncryptionConfig) -> None:
    """Every later connection of this process to an ``s3://`` URI gets ``enc``'s options."""
    with _lock:
        _options.clear()
        _options.update(s3_options(enc))


def storage_options(uri: str) -> dict[str, str]:
    """The options a connection to ``uri`` gets (a copy)."""
    with _lock:
        return dict(_options) if uri.startswith(("s3://", "s3a://")) else {}


def connect(uri: str, **kw: Any) -> Any:
    """``lancedb.connect`` with this process's object-store options for ``uri``."""
    return lancedb.connect(uri, storage_options=storage_options(uri) or None, **kw)


class SideTable:
    """A small table beside the index (drift baselines, fusion evidence), connected on first use; ``open`` gives
    the newest commit on each call (whoever wrote it), or None before the table exists."""

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri
        self.name = name
        self._db: Any = None

    def open(self) -> Any | None:
        if self._db is None:
            self._db = connect(self.uri, read_consistency_interval=None)
        names = self._db.list_tables() if hasattr(self._db, "list_tables") else self._db.table_names()
        return self._db.open_table(self.name) if self.name in list(getattr(names, "tables", names)) else None

    def open_or_create(self, schema: Any) -> Any:
        return self.open() or self._db.create_table(self.name, schema=schema, exist_ok=True)
