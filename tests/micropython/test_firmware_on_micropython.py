"""The firmware's pure modules on real MicroPython interpreters.

* unix port, ``-X heapsize=64K``: two bands' block loop under
  ``micropython.heap_lock()`` allocates nothing and fits;
* 32-bit WebAssembly port (31-bit small ints like a microcontroller): the same
  loop, so any intermediate reaching 2**30 would allocate a big int and fail;
* mpy-cross compiles every firmware file for the band architectures.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..conftest import FIRMWARE, compile_firmware, mpy_cross_bin, run_unix, run_wasm

HERE = Path(__file__).parent
HEAP_CHECK = HERE.parents[1] / "host" / "mirrorband" / "benchmarks" / "mpscripts" / "heap_check.py"
FIRMWARE_FILES = sorted((FIRMWARE / "mbfw").glob("*.py"))


def _parse_ok(out: str) -> dict[str, int]:
    line = [ln for ln in out.splitlines() if ln.startswith(("OK", "FAIL"))]
    assert line, out
    assert line[-1].startswith("OK"), line[-1]
    _, blocks, mirror, burst, artifact, grown, state, total = line[-1].split()
    return dict(blocks=int(blocks), mirror=int(mirror), burst=int(burst), artifact=int(artifact),
                grown=int(grown), state=int(state), total=int(total))


def test_block_loop_allocates_nothing_within_64k_heap(tmp_path):
    # firmware precompiled as on a band (mpy-cross), 64 KB heap as a hard cap
    dest = compile_firmware(tmp_path, [HEAP_CHECK])
    proc = run_unix(f"import sys; sys.path.insert(0, {str(dest)!r}); import heap_check", heapsize="64K")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    r = _parse_ok(proc.stdout)
    assert r["grown"] == 0
    assert r["mirror"] > 0 and r["burst"] > 0 and r["artifact"] > 0  # every path ran locked
    assert r["state"] < 24 * 1024, r  # two bands' pipeline state
    assert r["total"] < 56 * 1024, r  # everything in use, code included


def test_block_loop_on_32bit_port_keeps_small_ints(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import sys\nprint('MAXSIZE', sys.maxsize)\n")
    proc = run_wasm(probe)
    assert "MAXSIZE 2147483647" in proc.stdout, proc.stdout  # really a 32-bit port
    proc = run_wasm(HEAP_CHECK)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = _parse_ok(proc.stdout)
    assert r["grown"] == 0
    assert r["mirror"] > 0 and r["burst"] > 0 and r["artifact"] > 0


def test_wasm_port_detects_a_small_int_overflow(tmp_path):
    # the gate itself: an intermediate of 2**30 under heap_lock must fail
    script = tmp_path / "overflow.py"
    script.write_text(
        "import micropython\nx = 1 << 29\nok = 1\nmicropython.heap_lock()\n"
        "try:\n    y = x + x\nexcept MemoryError:\n    ok = 0\nfinally:\n    micropython.heap_unlock()\n"
        "print('OVERFLOW_CAUGHT' if not ok else 'NO_ALLOC')\n")
    assert "OVERFLOW_CAUGHT" in run_wasm(script).stdout


@pytest.mark.parametrize("arch", ["xtensawin", "armv7emsp"])
def test_mpy_cross_compiles_every_firmware_file(tmp_path, arch):
    exe = mpy_cross_bin()
    assert FIRMWARE_FILES
    for src in FIRMWARE_FILES:
        out = tmp_path / (src.stem + ".mpy")
        proc = subprocess.run([exe, f"-march={arch}", "-o", str(out), str(src)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"
        assert out.stat().st_size > 0
