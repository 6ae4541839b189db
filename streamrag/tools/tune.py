"""``streamrag tune --tenant T``: adapt the embedding model to a tenant's corpus without labels, save it
as a model folder, and say how to make it live (a replay into a new index version, then a promote)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamrag.connectors.embedding_tuner import fine_tune
from streamrag.core.errors import StreamragError
from streamrag.core.settings import Settings
from streamrag.core.tuning import training_pairs
from streamrag.flows.index_views import IndexViews


def tune(s: Settings, tenant: str, *, index: str | None = None, out: Path | None = None, epochs: int = 1,
         max_pairs: int = 20_000, log: Callable[[str], None] = print) -> dict[str, Any]:
    views = IndexViews(s)
    view = views.view(index) if index else views.current()
    rows = view.store.chunk_rows(tenant)
    pairs = training_pairs(rows, max_pairs=max_pairs)
    if len(pairs) < 64:
        raise StreamragError(f"tenant {tenant!r} has too little text in index {view.name!r} to tune on "
                             f"({len(pairs)} training pairs from {len(rows)} chunks; at least 64 needed)")
    out = out or Path(s.generation.model_dir) / f"tuned-{tenant}-{time.strftime('%Y%m%d-%H%M%S')}"
    log(f"tuning {view.settings.index.embedding_model} on {len(pairs)} pairs from {len(rows)} chunks of tenant {tenant!r}")
    report = fine_tune(view.settings.index.embedding_model, pairs, out, epochs=epochs, device=s.index.device, log=log)
    name = "tuned-" + re.sub(r"[^a-z0-9_-]", "-", tenant.lower())[:30]
    report.update({"tenant": tenant, "index": view.name, "base_model": view.settings.index.embedding_model,
                   "next": f"streamrag replay --index {name} --set embedding_model={out.resolve()} && "
                           f"streamrag index compare {view.name} {name} && streamrag index promote {name}"})
    return report
