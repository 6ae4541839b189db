"""``python -m streamrag``: the same as the ``streamrag`` command."""

from streamrag.cli import app

app()
