"""scripts/llama-cpp-build's wheel step: the pure llama-cpp-python wheel plus llama.cpp's shared libraries is a
wheel pip installs, with the libraries where the binding loads them and every file in its RECORD."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "_wheel_add_libs.py"
DIST = "llama_cpp_python-9.9.9"


def _pure_wheel(folder: Path) -> Path:
    wheel = folder / f"{DIST}-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("llama_cpp/__init__.py", '__version__ = "9.9.9"\n')
        z.writestr(f"{DIST}.dist-info/METADATA", "Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: 9.9.9\n")
        z.writestr(f"{DIST}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{DIST}.dist-info/RECORD", f"llama_cpp/__init__.py,,\n{DIST}.dist-info/RECORD,,\n")
    return wheel


def _libs(folder: Path) -> Path:
    lib = folder / "bin"
    lib.mkdir()
    (lib / "libllama.so.0.5.0").write_bytes(b"\x7fELF llama")
    (lib / "libllama.so.0").symlink_to("libllama.so.0.5.0")
    (lib / "libllama.so").symlink_to("libllama.so.0")
    (lib / "libggml-base.so.0").write_bytes(b"\x7fELF ggml-base")
    (lib / "libmtmd.so").write_bytes(b"\x7fELF mtmd")
    (lib / "libllama-server-impl.so").write_bytes(b"server only")
    (lib / "llama-server").write_bytes(b"binary")
    return lib


def test_the_libraries_join_the_wheel_with_a_valid_record(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), str(_pure_wheel(tmp_path)), str(_libs(tmp_path)),
                          str(tmp_path)], capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert {"llama_cpp/lib/libllama.so", "llama_cpp/lib/libllama.so.0", "llama_cpp/lib/libggml-base.so.0",
                "llama_cpp/lib/libmtmd.so"} <= names
        assert not {"llama_cpp/lib/libllama.so.0.5.0", "llama_cpp/lib/libllama-server-impl.so",
                    "llama_cpp/lib/llama-server"} & names
        assert z.read("llama_cpp/lib/libllama.so") == b"\x7fELF llama"  # the symlink's target, as a plain file
        wheel_meta = z.read(f"{DIST}.dist-info/WHEEL").decode()
        assert "Root-Is-Purelib: false" in wheel_meta and "Tag: py3-none-linux_x86_64" in wheel_meta
        record = dict(line.split(",", 1) for line in z.read(f"{DIST}.dist-info/RECORD").decode().splitlines())
        assert set(record) == names
        for name in names - {f"{DIST}.dist-info/RECORD"}:
            digest = base64.urlsafe_b64encode(hashlib.sha256(z.read(name)).digest()).rstrip(b"=").decode()
            assert record[name] == f"sha256={digest},{len(z.read(name))}", name


def test_a_folder_without_libllama_is_refused(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("wheel_add_libs", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"no libllama\.so"):
        module.add_libs(_pure_wheel(tmp_path), tmp_path / "empty", tmp_path)
