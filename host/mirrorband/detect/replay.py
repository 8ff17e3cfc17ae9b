"""Replay a recording through the band firmware, as two bands would see it.

Runtimes (all consume the same integer streams from :mod:`mirrorband.detect.bandio`
and must report identical events):

* ``cpython``     the firmware package ``mbfw`` imported into this interpreter;
* ``micropython`` the same firmware files inside the MicroPython unix port
  (see :mod:`mirrorband.detect.mpy`);
* ``numpy``       the host's exact vectorised port (:mod:`mirrorband.detect.fastpath`).

The two bands run in lockstep, block by block: both analyse a block, then both
detect with the other band's activity state for the same windows (what the
activity beacon delivers on real bands).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np

import mbfw
from mbfw.config import HAND_L, HAND_R, Config
from mbfw.events import (
    ART_KNOCK,
    ART_MOTION,
    ART_POP,
    EV_AREA,
    EV_ART,
    EV_CCI,
    EV_CH,
    EV_FLAGS,
    EV_HAND,
    EV_KIND,
    EV_NF,
    EV_OFFSET,
    EV_ONSET,
    EV_PEAK,
    EV_ROT,
    FLAG_JOLT,
    FLAG_MOVEMENT,
    FLAG_PEER_UNKNOWN,
    KIND_ARTIFACT,
    KIND_BURST,
    KIND_MIRROR,
)
from mbfw.pipeline import Hand
from mirrorband.detect.bandio import WINDOW, HandStream, band_settings, streams, task_points
from mirrorband.recording import Recording

RUNTIMES = ("cpython", "micropython", "numpy")
BLOCK = 100  # EMG samples per block (100 ms): 10 windows
MAX_IMU_PER_BLOCK = 24  # at 104 Hz a 100 ms block holds 10 or 11 samples
KIND_NAMES = {KIND_MIRROR: "mirror", KIND_BURST: "burst", KIND_ARTIFACT: "artifact"}
ART_NAMES = {ART_KNOCK: "knock", ART_MOTION: "motion", ART_POP: "pop"}


def hand_config(hand: str, **overrides: int) -> Config:
    return Config(hand=HAND_L if hand == "L" else HAND_R, **overrides)


def imu_blocks(s: HandStream, n_blocks: int) -> np.ndarray:
    """Index of the first IMU sample of each block (length n_blocks + 1)."""
    wpb = BLOCK // WINDOW
    if s.imu_win is None:
        return np.zeros(n_blocks + 1, dtype=np.int64)
    return np.searchsorted(s.imu_win, np.arange(n_blocks + 1) * wpb, side="left")


def imu_block_buffer(s: HandStream, lo: int, hi: int, first_window: int) -> np.ndarray:
    """IMU samples lo..hi as the firmware's (window-in-block, ax, ay, az, gx, gy, gz) rows."""
    rows = np.empty((hi - lo, 7), dtype=np.int32)
    assert s.imu_win is not None and s.acc is not None and s.gyr is not None
    rows[:, 0] = s.imu_win[lo:hi] - first_window
    rows[:, 1:4] = s.acc[lo:hi]
    rows[:, 4:7] = s.gyr[lo:hi]
    return rows


def run_cpython(recs: Sequence[HandStream], points: list[tuple[int, int]],
                overrides: dict[str, int] | None = None) -> list[tuple[int, ...]]:
    """Run the firmware in this interpreter; returns the raw event tuples."""
    overrides = overrides or {}
    n = recs[0].emg.shape[1]
    n_blocks = n // BLOCK
    tail = n - n_blocks * BLOCK
    hands = []
    for s in recs:
        h = Hand(hand_config(s.hand, **overrides), nch=s.nch, has_imu=s.has_imu)
        h.task.set(points)
        h.start(0)
        hands.append(h)
    starts = [imu_blocks(s, n_blocks + 1) for s in recs]
    out: list[tuple[int, ...]] = []
    ev = array("i", bytes(4 * EV_NF))
    emg_bufs = [array("i", bytes(4 * s.nch * BLOCK)) for s in recs]
    sizes = [BLOCK] * n_blocks + ([tail] if tail else [])
    for b, size in enumerate(sizes):
        for i, (s, h) in enumerate(zip(recs, hands, strict=True)):
            seg = s.emg[:, b * BLOCK:b * BLOCK + size]
            buf = emg_bufs[i]
            buf[: s.nch * size] = array("i", seg.reshape(-1).tobytes())
            if s.has_imu:
                lo, hi = int(starts[i][b]), int(starts[i][b + 1])
                rows = imu_block_buffer(s, lo, hi, b * (BLOCK // WINDOW))
                imu = array("i", rows.reshape(-1).tobytes())
                h.analyse(buf, size, imu, hi - lo)
            else:
                h.analyse(buf, size, array("i"), 0)
        if len(hands) == 2:
            hands[0].detect(hands[1].act_w)
            hands[1].detect(hands[0].act_w)
        else:
            hands[0].detect(None)
        for h in hands:
            while h.pop(ev):
                out.append(tuple(ev))
    for h in hands:
        h.finish()
        while h.pop(ev):
            out.append(tuple(ev))
    return sort_events(out)


def sort_events(events: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    return sorted(events, key=lambda e: (e[EV_ONSET], e[EV_HAND], e[EV_OFFSET]))


def event_dict(ev: Sequence[int]) -> dict:
    """A firmware event (EV_* fields) as the JSON object of FORMATS.md §2."""
    d: dict = {
        "hand": "LR"[ev[EV_HAND]],
        "kind": KIND_NAMES[ev[EV_KIND]],
        "onset_s": round(max(0, ev[EV_ONSET]) / 1000.0, 3),
        "offset_s": round(max(0, ev[EV_OFFSET]) / 1000.0, 3),
        "peak_ratio": round(ev[EV_PEAK] / 16.0, 2),
        "area": round(ev[EV_AREA] / 16.0 * WINDOW / 1000.0, 3),
        "channels": [name for bit, name in ((1, "FLEX"), (2, "EXT")) if ev[EV_CH] & bit],
    }
    if ev[EV_CCI] >= 0:
        d["cci"] = round(ev[EV_CCI] / 100.0, 2)
    if ev[EV_ROT] >= 0:
        d["imu_deg"] = round(ev[EV_ROT] / 10.0, 1)
    if ev[EV_FLAGS] & FLAG_PEER_UNKNOWN:
        d["peer_unknown"] = True
    if ev[EV_FLAGS] & FLAG_MOVEMENT:
        d["movement"] = True
    if ev[EV_FLAGS] & FLAG_JOLT:
        d["jolt"] = True
    if ev[EV_ART]:
        d["artifact"] = ART_NAMES[ev[EV_ART]]
    return d


def replay_events(rec: Recording, runtime: str = "cpython",
                  overrides: dict[str, int] | None = None) -> list[tuple[int, ...]]:
    """Raw firmware events of a recording with the chosen runtime.

    ``overrides`` are firmware settings (``mbfw.config.Config``); without
    ``mains_hz`` the mains frequency is detected from the recording.
    """
    overrides, _ = band_settings(rec, overrides)
    recs = streams(rec)
    points = task_points(rec)
    if runtime == "cpython":
        return run_cpython(recs, points, overrides)
    if runtime == "numpy":
        from mirrorband.detect.fastpath import run_numpy

        return run_numpy(recs, points, overrides)
    if runtime == "micropython":
        from mirrorband.detect.mpy import run_micropython

        return run_micropython(recs, points, overrides)
    raise ValueError(f"unknown runtime {runtime!r}")


def replay(rec: Recording, runtime: str = "cpython", name: str | None = None,
           overrides: dict[str, int] | None = None) -> dict:
    """The ``mirrorband replay --json`` object (FORMATS.md §2).

    Adds the optional key ``mains_hz``: the mains frequency the bands were
    configured with (detected from the recording unless given).
    """
    overrides, _ = band_settings(rec, overrides)
    events = replay_events(rec, runtime, overrides)
    return {
        "recording": name if name is not None else rec.name,
        "duration_s": round(rec.duration, 3),
        "runtime": runtime,
        "firmware_version": mbfw.VERSION,
        "mains_hz": overrides["mains_hz"],
        "events": [event_dict(e) for e in events],
    }
