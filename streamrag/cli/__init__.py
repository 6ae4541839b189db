"""The ``streamrag`` command line: argument parsing only; each command calls one function.

Errors print one line and exit non-zero (see app.cli_errors and app.EXIT_CODES). A command's module is imported
when that command runs (app.COMMAND_MODULES): ``streamrag --help`` imports none of them.
"""

import os

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from streamrag.cli.app import app, load_commands

__all__ = ["app", "load_commands"]
