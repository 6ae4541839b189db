"""The ``streamrag`` command line: argument parsing only; each command calls one function.

Errors print one line and exit non-zero (see app.cli_errors).
"""

import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Each module registers its commands on the app when imported.
from streamrag.cli import (  # noqa: F401
    ab,
    ask,
    audit,
    bench,
    cluster,
    demo,
    doc_history,
    documents,
    evaluation,
    gateway,
    index,
    models,
    replay,
    status,
    tune,
    workers,
)
from streamrag.cli.app import app

__all__ = ["app"]
