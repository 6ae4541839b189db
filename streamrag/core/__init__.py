"""Core logic, pure: chunking, retrieval and fusion, answering, caching policy, ingest and query steps.

Talks to the outside only through the ports in ``core.ports`` (Protocols) that ``connectors`` implement; it imports
only ``schemas`` and libraries, never connectors, flows, tools or entry points."""
