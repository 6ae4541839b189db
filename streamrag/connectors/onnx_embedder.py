"""A sentence-transformers model run by ONNX Runtime alone, for processes that answer questions (the query
worker, an embedded ``ask``): its transformer from the export that ``onnx_query_encoder`` wrote once per machine,
its tokenizer from the model folder's ``tokenizer.json`` by the ``tokenizers`` library, its prompts, length and
pooling from the folder's sentence-transformers files. Neither torch nor transformers is imported: a query
worker starts in the time ONNX Runtime takes to load the export (tenths of a second), not the seconds of a
PyTorch model. The same vectors as the PyTorch model (tests/unit/test_onnx_embedder.py compares them).

``OnnxEmbedder.from_export`` says whether a model qualifies: a transformer, mean pooling, at most a normalisation
after it (all-MiniLM-L6-v2, e5), a fast tokenizer, and an export on disk; the others keep PyTorch."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from streamrag.core.errors import ModelLoadError
from streamrag.core.lazy import Lazy

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_OTHER_POOLING = ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                  "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken")


def onnx_path(cache_dir: Path, name: str) -> Path:
    """Where a model's exported transformer lives: one file per configured model name."""
    return cache_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.onnx"


def mean_pooled(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Token states averaged over the attention mask, then L2-normalised (sentence-transformers' mean pooling
    and Normalize)."""
    mask = attention_mask[..., None].astype(np.float32)
    vecs = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    return np.asarray(vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12), dtype=np.float32)


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass(frozen=True)
class OnnxModelFolder:
    """What the ONNX path needs of a sentence-transformers folder, read from its JSON files."""

    tokenizer_file: Path
    max_len: int
    lower_case: bool
    pad_token: str
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt: str | None = None

    @classmethod
    def read(cls, folder: Path) -> OnnxModelFolder | None:
        """The folder's settings, or None when its pipeline is not transformer + mean pooling (+ Normalize) or
        it has no fast tokenizer."""
        modules = _json(folder / "modules.json")
        types = [m.get("type") for m in modules] if isinstance(modules, list) else []
        if len(types) < 2 or types[0] != _TRANSFORMER or types[1] != _POOLING or any(t != _NORMALIZE for t in types[2:]):
            return None
        pooling = _json(folder / modules[1].get("path", "") / "config.json")
        if not pooling.get("pooling_mode_mean_tokens") or any(pooling.get(k) for k in _OTHER_POOLING) \
                or pooling.get("include_prompt") is False:
            return None
        tdir = folder / modules[0].get("path", "")
        if not (tdir / "tokenizer.json").is_file():
            return None
        st = _json(tdir / "sentence_bert_config.json") or _json(folder / "sentence_bert_config.json")
        pad = _json(tdir / "tokenizer_config.json").get("pad_token") or "[PAD]"
        conf = _json(folder / "config_sentence_transformers.json")
        return cls(tokenizer_file=tdir / "tokenizer.json", max_len=int(st.get("max_seq_length") or 256),
                   lower_case=bool(st.get("do_lower_case")),
                   pad_token=pad.get("content", "[PAD]") if isinstance(pad, dict) else str(pad),
                   prompts=dict(conf.get("prompts") or {}), default_prompt=conf.get("default_prompt_name"))


class OnnxEmbedder:
    """The Embedder port on ONNX Runtime: questions and passages (a query worker's fusion evidence) alike,
    in batches of ``batch_size``; the session loads on first use."""

    def __init__(self, name: str, folder: OnnxModelFolder, export: Path, threads: int = 0, batch_size: int = 32) -> None:
        self.name = name
        self.folder = folder
        self.export = export
        self.threads = threads
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(folder.tokenizer_file))
        self._spans: Lazy[Tokenizer] = Lazy(self._span_tokenizer)  # chunking's, which a question process never needs
        self.tokenizer.enable_truncation(folder.max_len)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(folder.pad_token) or 0, pad_token=folder.pad_token)
        self._session: Lazy[ort.InferenceSession] = Lazy(self._load)

    @classmethod
    def from_export(cls, name: str, folder: Path, onnx_dir: Path, threads: int = 0) -> OnnxEmbedder | None:
        """Model ``name`` (its files in ``folder``) on its export in ``onnx_dir``, the session loaded; None when
        the model does not qualify or has no export yet."""
        settings = OnnxModelFolder.read(folder) if folder.is_dir() else None
        export = onnx_path(onnx_dir, name)
        if settings is None or not export.is_file():
            return None
        return cls(name, settings, export, threads=threads).load()

    def _load(self) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(str(self.export), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelLoadError(f"could not load the ONNX export of {self.name!r} ({self.export}): {exc}") from exc

    def load(self) -> OnnxEmbedder:
        self._session.get()
        return self

    @property
    def dim(self) -> int:
        width = self._session.get().get_outputs()[0].shape[-1]
        return width if isinstance(width, int) else int(self.embed_queries(["dimension"]).shape[1])

    @property
    def max_tokens(self) -> int:
        return self.folder.max_len

    def prompt_name(self, role: str) -> str | None:
        """As SentenceTransformerEmbedder.prompt_name: the model's prompt for ``role``, if it has one."""
        names = ("query",) if role == "query" else ("passage", "document", "doc")
        return next((n for n in names if self.folder.prompts.get(n)), None)

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.prompt_name("passage"))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.prompt_name("query"))

    def _encode(self, texts: list[str], prompt_name: str | None) -> np.ndarray:
        session = self._session.get()
        prefix = self.folder.prompts.get(prompt_name or self.folder.default_prompt or "", "")
        texts = [prefix + t for t in texts]
        if self.folder.lower_case:
            texts = [t.lower() for t in texts]
        wanted = {i.name for i in session.get_inputs()}
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.tokenizer.encode_batch(texts[i:i + self.batch_size])
            ids = np.asarray([e.ids for e in enc], dtype=np.int64)
            arrays = {"input_ids": ids, "attention_mask": np.asarray([e.attention_mask for e in enc], dtype=np.int64),
                      "token_type_ids": np.asarray([e.type_ids for e in enc], dtype=np.int64)}
            feed = {k: arrays[k] for k in INPUTS if k in wanted}
            out.append(mean_pooled(session.run(None, feed)[0], arrays["attention_mask"]))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out)

    def _span_tokenizer(self) -> Tokenizer:
        tok = Tokenizer.from_file(str(self.folder.tokenizer_file))
        tok.no_truncation()
        tok.no_padding()
        return tok

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's word-piece tokens (special tokens excluded), the text whole."""
        enc = self._spans.get().encode(text, add_special_tokens=False)
        return [(s, e) for s, e in enc.offsets if e > s]
