"""HTML -> the page's main text (trafilatura: without navigation, headers, footers, scripts and styles), its
headings and table rows kept (as Markdown, read by core.extraction), the title from the page's metadata."""

from __future__ import annotations

import logging

import trafilatura

from streamrag.core.extraction import Extracted, ExtractionFailed, parse_markdown

logging.getLogger("trafilatura").setLevel(logging.ERROR)


class HtmlExtractor:
    def extract(self, data: bytes) -> Extracted:
        main = trafilatura.extract(
            data, output_format="markdown", include_formatting=True, include_tables=True, include_comments=False,
            include_images=False, include_links=False, with_metadata=False, deduplicate=False,
        )
        if not main or not main.strip():
            raise ExtractionFailed("empty HTML: no main text found")
        got = parse_markdown(main)
        meta = trafilatura.extract_metadata(data)
        title = (meta.title if meta is not None else "") or got.title
        return Extracted(got.blocks, title or "", 0)
