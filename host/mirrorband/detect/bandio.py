"""What a band's sensors would deliver for a recording, in the firmware's units.

The firmware works on integers (see ``firmware/mbfw``):

* EMG: 0.5 µV per count at 1000 Hz, clipped to ±(2**19 - 1);
* accelerometer: mg, clipped to ±16000; gyroscope: 0.1 deg/s, clipped to ±8191;
  at 104 Hz, each IMU sample tagged with the 10 ms EMG window it falls in;
* task protocol: change points ``(start_ms, step_kind)``.

This module turns a :class:`~mirrorband.recording.Recording` (already at the
native rates) into those streams; the CPython, MicroPython and numpy runtimes
all consume the same streams, so their results can be compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mbfw.task import MAX_STEPS, STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R
from mirrorband.recording import EMG_RATE_HZ, HANDS, IMU_RATE_HZ, Recording, RecordingError

EMG_COUNTS_PER_UV = 2
EMG_MAX = (1 << 19) - 1
ACC_MAX_MG = 16000
GYR_MAX = 8191
WINDOW = 10  # EMG samples per window


@dataclass
class HandStream:
    """Integer streams of one band."""

    hand: str
    emg: np.ndarray  # (nch, n) int32 counts, n a multiple of WINDOW
    acc: np.ndarray | None  # (m, 3) int32 mg
    gyr: np.ndarray | None  # (m, 3) int32 0.1 deg/s
    imu_win: np.ndarray | None  # (m,) int64 global window index of each IMU sample

    @property
    def nch(self) -> int:
        return self.emg.shape[0]

    @property
    def has_imu(self) -> bool:
        return self.acc is not None

    @property
    def n_windows(self) -> int:
        return self.emg.shape[1] // WINDOW


def imu_window(j: np.ndarray) -> np.ndarray:
    """Window (10 ms) index of IMU sample ``j`` at 104 Hz: floor(j * 1000/104 / 10)."""
    return (j * 25) // 26


def emg_counts(uv: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(uv * EMG_COUNTS_PER_UV), -EMG_MAX, EMG_MAX).astype(np.int32)


def hand_stream(rec: Recording, hand: str) -> HandStream:
    if rec.emg_rate != EMG_RATE_HZ:
        raise RecordingError(f"EMG must be at {EMG_RATE_HZ} Hz for the band (got {rec.emg_rate:g})")
    sig = rec.hands[hand]
    chans = [sig.emg["FLEX"]] + ([sig.emg["EXT"]] if "EXT" in sig.emg else [])
    n = (len(chans[0]) // WINDOW) * WINDOW
    if n < 100 * WINDOW:
        raise RecordingError("the recording is shorter than 1 s")
    emg = np.stack([emg_counts(np.asarray(c[:n], dtype=np.float64)) for c in chans])
    acc = gyr = win = None
    if sig.acc is not None and sig.gyr is not None:
        if rec.imu_rate != IMU_RATE_HZ:
            raise RecordingError(f"IMU must be at {IMU_RATE_HZ} Hz for the band (got {rec.imu_rate:g})")
        m = min(len(sig.acc), len(sig.gyr))
        j = np.arange(m, dtype=np.int64)
        win = imu_window(j)
        keep = win < n // WINDOW
        acc = np.clip(np.rint(sig.acc[:m][keep] * 1000.0), -ACC_MAX_MG, ACC_MAX_MG).astype(np.int32)
        gyr = np.clip(np.rint(sig.gyr[:m][keep] * 10.0), -GYR_MAX, GYR_MAX).astype(np.int32)
        win = win[keep]
        if len(win) == 0:
            acc = gyr = win = None
    return HandStream(hand, emg, acc, gyr, win)


def detect_mains(rec: Recording, default: int = 50) -> int:
    """Mains frequency (50 or 60 Hz) seen in the EMG, as a band would be configured.

    Compares the spectral peaks at the fundamental and the 2nd and 3rd
    harmonics against their neighbourhood (±2-6 Hz); ``default`` when neither
    stands out (a clean recording: then the choice does not matter much).
    """
    scores = {50: 0.0, 60: 0.0}
    for sig in rec.hands.values():
        x = np.asarray(sig.emg["FLEX"][: int(30 * rec.emg_rate)], dtype=np.float64)
        if len(x) < rec.emg_rate:
            continue
        x = x - x.mean()
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        freqs = np.fft.rfftfreq(len(x), 1.0 / rec.emg_rate)
        for mains in scores:
            for k in (1, 2, 3):
                f = mains * k
                if f > rec.emg_rate / 2 - 10:
                    continue
                peak = spec[np.abs(freqs - f) <= 0.6].max(initial=0.0)
                near = spec[(np.abs(freqs - f) >= 2) & (np.abs(freqs - f) <= 6)]
                if len(near):
                    scores[mains] += float(np.log10((peak + 1e-12) / (np.median(near) + 1e-12)))
    best = max(scores, key=lambda m: scores[m])
    if scores[best] < 3.0 or scores[best] - min(scores.values()) < 1.0:
        return default
    return best


def effective_emg_rate(rec: Recording) -> float:
    """How many times per second the EMG samples actually change (Hz).

    A band's ADC gives a new value at every sample; recordings upsampled by
    sample-and-hold from a slow device (the Myo armband's 200 Hz in the UCI
    set) repeat values, and carry no EMG above about half this rate.
    """
    best = 0.0
    for sig in rec.hands.values():
        for x in sig.emg.values():
            x = np.asarray(x[: int(60 * rec.emg_rate)])
            if len(x) > 1:
                best = max(best, float(np.count_nonzero(np.diff(x))) / (len(x) - 1) * rec.emg_rate)
    return best


def band_settings(rec: Recording, overrides: dict[str, int] | None = None) -> tuple[dict[str, int], list[str]]:
    """Firmware settings a band would be configured with for this recording.

    ``mains_hz`` is detected from the EMG unless given. When the EMG is
    band-limited (it changes fewer than 400 times a second, so it has no
    content above ~200 Hz), the LF/HF artifact rule (``lf_k``), which expects
    the broadband EMG of the band's 1 kHz ADC, is turned off unless given.
    Returns the settings and notes to show the user.
    """
    out = dict(overrides or {})
    notes: list[str] = []
    out.setdefault("mains_hz", detect_mains(rec))
    if "lf_k" not in out:
        eff = effective_emg_rate(rec)
        if eff < 400:
            out["lf_k"] = 0
            notes.append(f"EMG changes only {eff:.0f} times/s (band-limited): "
                         "low-frequency artifact rule off")
    if not any(a.text == "REST" for a in rec.task_annotations()):
        notes.append("no REST step in the task protocol: the baseline is learnt without REST "
                     "(minimum statistics over the recording's quietest stretches)")
    return out, notes


def task_points(rec: Recording) -> list[tuple[int, int]]:
    """The task annotations as firmware step change points ``(start_ms, kind)``."""
    kinds = {"REST": STEP_REST, "WRITE L": STEP_WRITE_L, "WRITE R": STEP_WRITE_R}
    spans = []
    for a in rec.task_annotations():
        start = int(round(a.onset * 1000))
        end = int(round(a.end * 1000))
        if end > start:
            spans.append((start, end, kinds[a.text]))
    points: list[tuple[int, int]] = []
    for i, (start, end, kind) in enumerate(spans):
        if points and points[-1][0] == start:
            points[-1] = (start, kind)  # same start: the later annotation wins
        else:
            points.append((start, kind))
        nxt = spans[i + 1][0] if i + 1 < len(spans) else None
        if nxt is None or nxt > end:
            points.append((end, STEP_NONE))
    # drop redundant change points
    out: list[tuple[int, int]] = []
    for p in points:
        if out and out[-1][1] == p[1]:
            continue
        out.append(p)
    if out and out[0][1] == STEP_NONE:
        out = out[1:]
    if len(out) > MAX_STEPS:
        raise RecordingError(f"the task protocol has more than {MAX_STEPS} steps")
    return out


def streams(rec: Recording) -> list[HandStream]:
    """Both bands' streams (one per hand present), L before R, equal length."""
    out = [hand_stream(rec, h) for h in HANDS if h in rec.hands]
    n = min(s.emg.shape[1] for s in out)
    for s in out:
        if s.emg.shape[1] != n:
            s.emg = s.emg[:, :n]
            if s.imu_win is not None and s.acc is not None and s.gyr is not None:
                keep = s.imu_win < n // WINDOW
                s.acc, s.gyr, s.imu_win = s.acc[keep], s.gyr[keep], s.imu_win[keep]
    return out
