"""The ingest path: document changes into chunks and rows, stage by stage (parse, extract, chunk, embed, write)."""
