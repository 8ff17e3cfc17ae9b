"""Replay a recording through the band firmware, as two bands would see it.

This module only dispatches. :func:`mirrorband.detect.bandio.prepare` computes
once per recording what the bands would be configured with (mains frequency,
effective EMG rate, task protocol) and how to build their integer streams;
each runtime takes that :class:`~mirrorband.detect.bandio.BandInput` and must
report identical events:

* ``cpython``     the firmware package ``mbfw`` imported into this interpreter
  (:mod:`mirrorband.detect.cpython`);
* ``micropython`` the same firmware files inside the MicroPython unix port
  (:mod:`mirrorband.detect.mpy`);
* ``numpy``       the host's exact vectorised port (:mod:`mirrorband.detect.fastpath`).

All three stream the recording chunk by chunk (``chunk`` EMG samples), so a
long recording is replayed in bounded memory.
"""

from __future__ import annotations

import mbfw
from mirrorband.detect.bandio import (
    CHUNK,
    BandInput,
    Signals,
    event_dict,
    prepare,
)
from mirrorband.recording import Recording

RUNTIMES = ("cpython", "micropython", "numpy")


def run(inp: BandInput, runtime: str = "cpython", chunk: int = CHUNK) -> list[tuple[int, ...]]:
    """Raw firmware events (sorted) of a prepared recording with the chosen runtime."""
    if runtime == "cpython":
        from mirrorband.detect.cpython import run_cpython

        return run_cpython(inp, chunk)
    if runtime == "numpy":
        from mirrorband.detect.fastpath import run_numpy

        return run_numpy(inp, chunk)
    if runtime == "micropython":
        from mirrorband.detect.mpy import run_micropython

        return run_micropython(inp, chunk)
    raise ValueError(f"unknown runtime {runtime!r}")


def replay_events(rec: Recording | Signals | BandInput, runtime: str = "cpython",
                  overrides: dict[str, int] | None = None, chunk: int = CHUNK) -> list[tuple[int, ...]]:
    """Raw firmware events of a recording with the chosen runtime.

    ``overrides`` are firmware settings (``mbfw.config.Config``); without
    ``mains_hz`` the mains frequency is detected from the recording.
    """
    inp = rec if isinstance(rec, BandInput) else prepare(rec, overrides)
    return run(inp, runtime, chunk)


def replay(rec: Recording | Signals | BandInput, runtime: str = "cpython", name: str | None = None,
           overrides: dict[str, int] | None = None, chunk: int = CHUNK) -> dict:
    """The ``mirrorband replay --json`` object (FORMATS.md §2).

    Adds the optional key ``mains_hz``: the mains frequency the bands were
    configured with (detected from the recording unless given).
    """
    inp = rec if isinstance(rec, BandInput) else prepare(rec, overrides)
    events = run(inp, runtime, chunk)
    return {
        "recording": name if name is not None else inp.name,
        "duration_s": round(inp.duration_s, 3),
        "runtime": runtime,
        "firmware_version": mbfw.VERSION,
        "mains_hz": inp.settings["mains_hz"],
        "events": [event_dict(e) for e in events],
    }
