"""Adapters, one per file: Kafka, LanceDB, Redis, model runtimes, extractors and files behind the ports of
``core.ports``. Each takes the component configuration it uses (``core.config``), never the whole settings."""
