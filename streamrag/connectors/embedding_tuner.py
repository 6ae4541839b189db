"""Fine-tuning a sentence-transformers model on (anchor, positive) pairs with in-batch negatives
(the multiple-negatives ranking loss), in a plain torch loop: no extra training dependencies."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streamrag.connectors.sentence_embedder import pick_device, resolve_model_path
from streamrag.core.errors import ModelLoadError


def fine_tune(
    model: str, pairs: Sequence[tuple[str, str]], out_dir: Path, *, epochs: int = 1, batch_size: int = 32,
    lr: float = 2e-5, max_seq_length: int = 128, scale: float = 20.0, device: str = "auto", seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    try:
        m = SentenceTransformer(resolve_model_path(model), device=pick_device(device))
    except Exception as exc:
        raise ModelLoadError(f"could not load embedding model {model!r}: {exc}") from exc
    torch.manual_seed(seed)
    rng = random.Random(seed)
    m.max_seq_length = max_seq_length
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    m.train()
    steps, losses, t0 = 0, [], time.perf_counter()
    for epoch in range(epochs):
        order = list(pairs)
        rng.shuffle(order)
        for i in range(0, len(order) - 1, batch_size):
            batch = order[i : i + batch_size]
            if len(batch) < 2:
                break
            a = _features(m, [x for x, _ in batch])
            b = _features(m, [y for _, y in batch])
            ea = F.normalize(m(a)["sentence_embedding"], dim=-1)
            eb = F.normalize(m(b)["sentence_embedding"], dim=-1)
            loss = F.cross_entropy(ea @ eb.T * scale, torch.arange(len(batch), device=ea.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            losses.append(float(loss.detach()))
            if steps % 20 == 0:
                log(f"epoch {epoch + 1} step {steps}: loss {sum(losses[-20:]) / 20:.4f}")
    m.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    m.save(str(out_dir))
    return {"pairs": len(pairs), "steps": steps, "epochs": epochs, "seconds": round(time.perf_counter() - t0, 1),
            "loss_first": round(sum(losses[:20]) / max(1, len(losses[:20])), 4),
            "loss_last": round(sum(losses[-20:]) / max(1, len(losses[-20:])), 4), "model": str(out_dir)}


def _features(m: Any, texts: list[str]) -> dict[str, Any]:
    """Tokenised inputs on the model's device (``preprocess`` in sentence-transformers >= 6)."""
    prep = getattr(m, "preprocess", None) or m.tokenize
    return {k: v.to(m.device) if hasattr(v, "to") else v for k, v in prep(texts).items()}
