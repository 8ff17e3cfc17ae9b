"""Static checks in the test command: ruff over the tree, pyright over the
firmware as MicroPython code (MicroPython stubs) and over the host as CPython."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO

PYRIGHT = REPO / "node_modules" / ".bin" / "pyright"


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_ruff():
    proc = _run([sys.executable, "-m", "ruff", "check", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("project", ["firmware/pyrightconfig.json", "pyproject.toml"])
def test_pyright(project):
    if not PYRIGHT.exists():
        pytest.fail("pyright is not installed (run: make setup)")
    if project.startswith("firmware") and not (REPO / ".mpy-stubs" / "micropython.pyi").exists():
        pytest.fail("MicroPython stubs are not installed (run: make setup)")
    proc = _run([str(PYRIGHT), "-p", project])
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "0 errors" in proc.stdout


# MicroPython's own pure modules: allowed everywhere in the firmware
_PURE_OK = {"array", "struct", "micropython", "mbfw", "binascii", "hashlib", "cryptolib", "errno", "gc", "sys"}
# I/O modules also reach the file system, the clock, the scheduler, the radio
# and the board factory (hardware objects are injected, never created at import)
_IO_OK = _PURE_OK | {"os", "time", "asyncio", "bluetooth", "board", "machine"}
_IO_MODULES = {"fsio", "eventlog", "identity", "app", "sampler", "main", "bleservice", "console", "usbconsole", "mcu", "aio"}


def test_firmware_has_no_host_or_hardware_imports():
    for src in sorted((REPO / "firmware" / "mbfw").glob("*.py")):
        allowed = _IO_OK if src.stem in _IO_MODULES else _PURE_OK
        for line in src.read_text().splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                top = words[1].split(".")[0]
                if top:  # relative imports ("from . import x") stay inside mbfw
                    assert top in allowed, f"{src.name}: {line.strip()}"


def test_firmware_modules_stay_small():
    for src in (REPO / "firmware" / "mbfw").glob("*.py"):
        assert len(src.read_text().splitlines()) < 400, src.name
