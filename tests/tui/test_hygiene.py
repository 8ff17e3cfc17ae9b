"""Core modules never import textual: only mirrorband.tui and mirrorband.cli.tui may."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HOST = Path(__file__).resolve().parents[2] / "host" / "mirrorband"
UI_ONLY = {("tui",), ("cli", "tui")}
SCRIPTS = {"_mpy_runner"}  # run as programs (read sys.argv), not imported
MICROPYTHON = {("benchmarks", "mpscripts")}  # scripts for the MicroPython unix port, never imported by CPython


def core_modules() -> list[str]:
    out = []
    for p in sorted(HOST.rglob("*.py")):
        rel = p.relative_to(HOST).with_suffix("")
        if any(rel.parts[:len(k)] == k for k in UI_ONLY | MICROPYTHON) or rel.name == "__main__" or rel.name in SCRIPTS:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.append(".".join(("mirrorband", *parts)))
    return out


def test_core_modules_do_not_import_textual() -> None:
    mods = core_modules()
    assert "mirrorband.control.controller" in mods and "mirrorband.cli.core" in mods
    code = ("import importlib, sys\n"
            f"mods = {mods!r}\n"
            "failed = []\n"
            "for m in mods:\n"
            "    try:\n"
            "        importlib.import_module(m)\n"
            "    except Exception as e:\n"
            "        failed.append((m, str(e)))\n"
            "print('FAILED', failed)\n"
            "print('TEXTUAL', sorted(k for k in sys.modules if k == 'textual' or k.startswith('textual.')))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HOST.parent), str(HOST.parents[1] / "firmware")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TEXTUAL []" in r.stdout, r.stdout
    assert "FAILED []" in r.stdout, r.stdout


def test_the_check_sees_textual_when_imported() -> None:
    # the same probe detects textual when a UI module is imported (so the test above can fail)
    code = "import sys, mirrorband.tui\nprint('textual' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HOST.parent), str(HOST.parents[1] / "firmware")]))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.strip() == "True", r.stderr
