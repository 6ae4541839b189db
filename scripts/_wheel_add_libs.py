"""Add llama.cpp's shared libraries to a llama-cpp-python wheel built without them (scripts/llama-cpp-build).

Usage: python scripts/_wheel_add_libs.py PURE_WHEEL LIB_DIR OUT_DIR

The wheel built with ``CMAKE_ARGS=-DLLAMA_BUILD=OFF`` holds only the Python binding; the binding loads
``llama_cpp/lib/libllama.so`` (and libggml, libmtmd) at import. This writes the same wheel with those
libraries, under the names the loader and the libraries' SONAMEs ask for (``libX.so`` and ``libX.so.N``),
a platform tag (it is no longer pure) and a RECORD listing every file with its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

PREFIXES = ("libllama.so", "libggml", "libmtmd.so")  # not libllama-common / libllama-server-impl: server only
WANTED = re.compile(r"^lib[\w-]+\.so(\.\d+)?$")  # libX.so and its SONAME libX.so.N, not libX.so.N.M.K


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _platform_tag() -> str:
    import sysconfig

    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def add_libs(pure: Path, lib_dir: Path, out_dir: Path) -> Path:
    libs = sorted(
        p for p in lib_dir.iterdir() if p.name.startswith(PREFIXES) and WANTED.match(p.name) and p.is_file()
    )
    if not any(p.name == "libllama.so" for p in libs):
        raise SystemExit(f"no libllama.so in {lib_dir}")
    name, version = pure.name.split("-")[:2]
    out = out_dir / f"{name}-{version}-py3-none-{_platform_tag()}.whl"
    dist_info = f"{name}-{version}.dist-info"
    records: list[str] = []
    partial = out.with_name(out.name + ".partial")  # written aside: OUT_DIR may hold the pure wheel itself
    with zipfile.ZipFile(pure) as src, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in (f"{dist_info}/RECORD", f"{dist_info}/WHEEL"):
                continue
            data = src.read(info)
            dst.writestr(info, data)
            records.append(_record_line(info.filename, data))
        for lib in libs:
            arcname = f"llama_cpp/lib/{lib.name}"
            data = lib.read_bytes()  # follows the build's symlinks: a wheel holds plain files
            zinfo = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
            zinfo.external_attr = 0o755 << 16
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zinfo, data)
            records.append(_record_line(arcname, data))
        wheel_meta = src.read(f"{dist_info}/WHEEL").decode()
        wheel_meta = re.sub(r"(?m)^Root-Is-Purelib: .*$", "Root-Is-Purelib: false", wheel_meta)
        wheel_meta = re.sub(r"(?m)^Tag: .*\n?", "", wheel_meta).rstrip("\n")
        wheel_meta += f"\nTag: py3-none-{_platform_tag()}\n"
        dst.writestr(f"{dist_info}/WHEEL", wheel_meta)
        records.append(_record_line(f"{dist_info}/WHEEL", wheel_meta.encode()))
        records.append(f"{dist_info}/RECORD,,")
        dst.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    partial.replace(out)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    print(add_libs(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
