"""Write (or check) the JSON Schema files generated from the models: python -m streamrag.schemas.generate [--check]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from streamrag.schemas.models import ALL_MODELS

OUT = Path(__file__).parent / "json"


def render() -> dict[str, str]:
    return {
        f"{name}.v1.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in ALL_MODELS.items()
    }


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    drift = []
    for name, text in render().items():
        path = OUT / name
        if check:
            if not path.exists() or path.read_text() != text:
                drift.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
    if drift:
        print("schema files out of date: " + ", ".join(drift) + " (run python -m streamrag.schemas.generate)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
