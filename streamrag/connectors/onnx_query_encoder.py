"""A sentence-transformers model's questions encoded by ONNX Runtime instead of PyTorch
(``STREAMRAG_QUERY_ENCODER=onnx``): the same vectors (cosine 1.0000 measured), a third of the time for one
question on a CPU (25.7 -> 8.5 ms for all-MiniLM-L6-v2 on 2 cores: docs/benchmarks.md). Passages stay on
PyTorch, where batches gain nothing.

The model's transformer is exported once with torch.onnx (opset 17, dynamic batch and length) into
``cache_dir`` (a file per model name, written aside and renamed, so processes starting together agree), then
loaded with ``threads`` intra-op threads. A process that only answers questions loads that export without
torch (``onnx_embedder.OnnxEmbedder``). Only models whose pipeline is a transformer, mean pooling and an
optional normalisation are supported (``supports``); the others keep PyTorch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from streamrag.connectors.onnx_embedder import INPUTS as _INPUTS
from streamrag.connectors.onnx_embedder import mean_pooled, onnx_path


def supports(model: Any) -> bool:
    """A transformer, mean pooling, and at most a normalisation after it (all-MiniLM-L6-v2, e5, bge with mean)."""
    mods = [type(m).__name__ for m in model]
    if len(mods) < 2 or mods[0] != "Transformer" or mods[1] != "Pooling" or any(m != "Normalize" for m in mods[2:]):
        return False
    return str(getattr(model[1], "pooling_mode", "mean")) == "mean" or bool(getattr(model[1], "pooling_mode_mean_tokens", False))


class _Hidden(torch.nn.Module):
    def __init__(self, auto: Any) -> None:
        super().__init__()
        self.auto = auto

    def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
        return self.auto(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


class OnnxQueryEncoder:
    def __init__(self, model: Any, name: str, cache_dir: Path, threads: int = 0) -> None:
        self.tokenizer = model.tokenizer
        self.max_len = int(getattr(model, "max_seq_length", 256) or 256)
        path = onnx_path(cache_dir, name)
        if not path.exists():
            _export(model[0].auto_model, self.tokenizer, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}

    def encode(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="np")
        feed = {k: np.asarray(enc.get(k, np.zeros_like(enc["input_ids"])), dtype=np.int64) for k in _INPUTS if k in self._inputs}
        return mean_pooled(self.session.run(None, feed)[0], feed["attention_mask"])


def _export(auto: Any, tokenizer: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = tokenizer(["a question"], return_tensors="pt")
    args = tuple(enc.get(k, torch.zeros_like(enc["input_ids"])) for k in _INPUTS)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        torch.onnx.export(_Hidden(auto).eval(), args, tmp, dynamo=False, input_names=list(_INPUTS), output_names=["hidden"],
                          dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*_INPUTS, "hidden")}, opset_version=17)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
