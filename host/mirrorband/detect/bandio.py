"""What a band's sensors would deliver for a recording, in the firmware's units.

The firmware works on integers (see ``firmware/mbfw``):

* EMG: 0.5 µV per count at 1000 Hz, clipped to ±(2**19 - 1);
* accelerometer: mg, clipped to ±16000; gyroscope: 0.1 deg/s, clipped to ±8191;
  at 104 Hz, each IMU sample tagged with the 10 ms EMG window it falls in;
* task protocol: change points ``(start_ms, step_kind)``.

This module is the one stream builder: it turns a recording (a
:class:`~mirrorband.recording.Recording` already at the native rates, or any
:class:`SignalSource`, such as an EDF file read in chunks) into those streams,
and computes once per recording what every runtime needs (:func:`prepare`:
band settings with the detected mains frequency and effective EMG rate, the
task change points, the streams chunk by chunk). The CPython, MicroPython and
numpy runtimes all consume the same :class:`BandInput`, so their results can be
compared exactly; the helpers they share (block size, IMU block layout, event
order and JSON form) live here too, so that no runtime imports
:mod:`mirrorband.detect.replay`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
from mbfw.task import MAX_STEPS, STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R
from mirrorband.recording import EMG_RATE_HZ, HANDS, IMU_RATE_HZ, Annotation, Recording, RecordingError

EMG_COUNTS_PER_UV = 2
EMG_MAX = (1 << 19) - 1
ACC_MAX_MG = 16000
GYR_MAX = 8191
WINDOW = 10  # EMG samples per window
BLOCK = 100  # EMG samples per firmware block (100 ms): 10 windows
MAX_IMU_PER_BLOCK = 24  # at 104 Hz a 100 ms block holds 10 or 11 samples
#: EMG samples per chunk when a recording is streamed (60 s); a multiple of 1000 (the
#: baseline's 0.5 s blocks and the firmware's 100 ms blocks both divide it).
CHUNK = 60_000
KIND_NAMES = {KIND_MIRROR: "mirror", KIND_BURST: "burst", KIND_ARTIFACT: "artifact"}
ART_NAMES = {ART_KNOCK: "knock", ART_MOTION: "motion", ART_POP: "pop"}


@dataclass
class HandStream:
    """Integer streams of one band."""

    hand: str
    emg: np.ndarray  # (nch, n) int32 counts, n a multiple of WINDOW
    acc: np.ndarray | None  # (m, 3) int32 mg
    gyr: np.ndarray | None  # (m, 3) int32 0.1 deg/s
    imu_win: np.ndarray | None  # (m,) int64 global window index of each IMU sample
    w0: int = 0  # global index of the first window (a chunk of a longer stream)

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


class Channel:
    """One signal at the band's native rate, read by sample ranges (float64, in uV, g or deg/s).

    Either held in memory (``data``) or read on demand with ``read(start, n)``
    (for example ``functools.partial(pyedflib_reader.readSignal, index)``) and
    multiplied by ``factor``; the values are the same either way.
    """

    __slots__ = ("data", "_read", "factor", "length")

    def __init__(self, data: np.ndarray | None = None, read: Any = None, length: int | None = None,
                 factor: float = 1.0) -> None:
        self.data, self._read, self.factor = data, read, factor
        self.length = len(data) if data is not None else int(length or 0)

    def __len__(self) -> int:
        return self.length

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.length)
        if stop <= start:
            return np.zeros(0, dtype=np.float64)
        if self.data is not None:
            return np.asarray(self.data[start:stop], dtype=np.float64)
        x = self._read(start, stop - start).astype(np.float64)
        if self.factor != 1.0:
            x *= self.factor
        return x


@dataclass
class HandChannels:
    """One band's signals: EMG channels (FLEX first), and ACC/GYR X, Y, Z or None."""

    emg: dict[str, Channel]
    acc: list[Channel] | None = None
    gyr: list[Channel] | None = None


@dataclass
class Signals:
    """A recording as channels to read from (FORMATS.md §1 at the band's native rates).

    What :func:`prepare` needs: the same as a :class:`~mirrorband.recording.Recording`
    without holding the samples (an EDF file is read chunk by chunk).
    """

    hands: dict[str, HandChannels]
    annotations: list[Annotation]
    emg_rate: float = EMG_RATE_HZ
    imu_rate: float = IMU_RATE_HZ
    name: str = ""
    notes: list[str] = field(default_factory=list)
    closer: Any = None  # releases what the channels read from (an open file)

    def close(self) -> None:
        if self.closer is not None:
            self.closer()
            self.closer = None

    def __enter__(self) -> Signals:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def duration(self) -> float:
        return max(len(h.emg["FLEX"]) for h in self.hands.values()) / self.emg_rate

    def task_annotations(self) -> list[Annotation]:
        return Recording.task_annotations(self)  # type: ignore[arg-type]


def signals_of(rec: Recording | Signals) -> Signals:
    """A recording in memory as :class:`Signals` (no copy)."""
    if isinstance(rec, Signals):
        return rec
    hands = {}
    for h, sig in rec.hands.items():
        emg = {c: Channel(np.asarray(x)) for c, x in sig.emg.items()}
        acc = [Channel(sig.acc[:, j]) for j in range(3)] if sig.acc is not None else None
        gyr = [Channel(sig.gyr[:, j]) for j in range(3)] if sig.gyr is not None else None
        hands[h] = HandChannels(emg, acc, gyr)
    return Signals(hands, list(rec.annotations), rec.emg_rate, rec.imu_rate, rec.name, list(rec.notes))


@dataclass
class HandSpec:
    """What a band's streams hold: ``nch`` EMG channels, IMU or not (``m`` IMU samples kept)."""

    hand: str
    channels: list[Channel]
    acc: list[Channel] | None
    gyr: list[Channel] | None
    m: int

    @property
    def nch(self) -> int:
        return len(self.channels)

    @property
    def has_imu(self) -> bool:
        return self.acc is not None

    def stream(self, w0: int, w1: int) -> HandStream:
        """Windows ``w0 .. w1 - 1`` of this band's integer streams."""
        emg = np.stack([emg_counts(c.read(w0 * WINDOW, w1 * WINDOW)) for c in self.channels])
        if self.acc is None or self.gyr is None:
            return HandStream(self.hand, emg, None, None, None, w0)
        j0 = min(self.m, -(-26 * w0 // 25))
        j1 = min(self.m, -(-26 * w1 // 25))
        acc = np.empty((j1 - j0, 3), dtype=np.int32)
        gyr = np.empty((j1 - j0, 3), dtype=np.int32)
        for a in range(3):
            acc[:, a] = np.clip(np.rint(self.acc[a].read(j0, j1) * 1000.0), -ACC_MAX_MG, ACC_MAX_MG)
            gyr[:, a] = np.clip(np.rint(self.gyr[a].read(j0, j1) * 10.0), -GYR_MAX, GYR_MAX)
        return HandStream(self.hand, emg, acc, gyr, imu_window(np.arange(j0, j1, dtype=np.int64)), w0)


def hand_spec(src: Signals, hand: str) -> HandSpec:
    if src.emg_rate != EMG_RATE_HZ:
        raise RecordingError(f"EMG must be at {EMG_RATE_HZ} Hz for the band (got {src.emg_rate:g})")
    sig = src.hands[hand]
    chans = [sig.emg["FLEX"]] + ([sig.emg["EXT"]] if "EXT" in sig.emg else [])
    n = (len(chans[0]) // WINDOW) * WINDOW
    if n < 100 * WINDOW:
        raise RecordingError("the recording is shorter than 1 s")
    if sig.acc is None or sig.gyr is None:
        return HandSpec(hand, chans, None, None, 0)
    if src.imu_rate != IMU_RATE_HZ:
        raise RecordingError(f"IMU must be at {IMU_RATE_HZ} Hz for the band (got {src.imu_rate:g})")
    m = min(min(len(c) for c in sig.acc), min(len(c) for c in sig.gyr))
    if m == 0:
        return HandSpec(hand, chans, None, None, 0)
    return HandSpec(hand, chans, sig.acc, sig.gyr, m)


def hand_stream(rec: Recording | Signals, hand: str) -> HandStream:
    spec = hand_spec(signals_of(rec), hand)
    return spec.stream(0, len(spec.channels[0]) // WINDOW)


def detect_mains(rec: Recording | Signals, default: int = 50) -> int:
    """Mains frequency (50 or 60 Hz) seen in the EMG, as a band would be configured.

    Compares the spectral peaks at the fundamental and the 2nd and 3rd
    harmonics against their neighbourhood (±2-6 Hz); ``default`` when neither
    stands out (a clean recording: then the choice does not matter much).
    """
    rec = signals_of(rec)
    scores = {50: 0.0, 60: 0.0}
    for sig in rec.hands.values():
        x = sig.emg["FLEX"].read(0, int(30 * rec.emg_rate))
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


def effective_emg_rate(rec: Recording | Signals) -> float:
    """How many times per second the EMG samples actually change (Hz).

    A band's ADC gives a new value at every sample; recordings upsampled by
    sample-and-hold from a slow device (the Myo armband's 200 Hz in the UCI
    set) repeat values, and carry no EMG above about half this rate.
    """
    rec = signals_of(rec)
    best = 0.0
    for sig in rec.hands.values():
        for c in sig.emg.values():
            x = c.read(0, int(60 * rec.emg_rate))
            if len(x) > 1:
                best = max(best, float(np.count_nonzero(np.diff(x))) / (len(x) - 1) * rec.emg_rate)
    return best


def band_settings(rec: Recording | Signals, overrides: dict[str, int] | None = None
                  ) -> tuple[dict[str, int], list[str]]:
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


def task_points(rec: Recording | Signals) -> list[tuple[int, int]]:
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


@dataclass
class BandInput:
    """Everything the runtimes need for one recording, computed once (:func:`prepare`).

    ``settings``: firmware settings (``mbfw.config.Config`` fields, ``mains_hz``
    always set); ``notes`` to show the user; ``points``: the task protocol as
    firmware change points; ``hands``: the bands present, L before R; ``n``:
    EMG samples per band (equal for both, a multiple of ``WINDOW``). The
    streams are built from ``signals`` chunk by chunk (:meth:`chunks`).
    """

    signals: Signals
    settings: dict[str, int]
    notes: list[str]
    points: list[tuple[int, int]]
    hands: list[HandSpec]
    n: int

    @property
    def name(self) -> str:
        return self.signals.name

    @property
    def duration_s(self) -> float:
        return self.signals.duration

    @property
    def n_windows(self) -> int:
        return self.n // WINDOW

    def config(self, hand: str) -> Config:
        return hand_config(hand, **self.settings)

    def chunks(self, size: int = CHUNK) -> Iterator[list[HandStream]]:
        """Both bands' streams, ``size`` EMG samples at a time (a multiple of 1000; the last chunk shorter)."""
        if size <= 0 or size % 1000:
            raise ValueError("chunk size must be a positive multiple of 1000 samples")
        wpc = size // WINDOW
        for w0 in range(0, self.n_windows, wpc):
            w1 = min(self.n_windows, w0 + wpc)
            yield [h.stream(w0, w1) for h in self.hands]

    def streams(self) -> list[HandStream]:
        """The whole streams at once (short recordings)."""
        return [h.stream(0, self.n_windows) for h in self.hands]


def prepare(rec: Recording | Signals, overrides: dict[str, int] | None = None) -> BandInput:
    """Compute once what the bands would be configured with and what they would sample."""
    src = signals_of(rec)
    settings, notes = band_settings(src, overrides)
    points = task_points(src)
    hands = [hand_spec(src, h) for h in HANDS if h in src.hands]
    n = min((len(h.channels[0]) // WINDOW) * WINDOW for h in hands)
    for h in hands:
        if h.has_imu:  # IMU samples past the common end are dropped
            h.m = min(h.m, -(-26 * (n // WINDOW) // 25))
    return BandInput(src, settings, notes, points, hands, n)


def streams(rec: Recording | Signals) -> list[HandStream]:
    """Both bands' streams (one per hand present), L before R, equal length."""
    src = signals_of(rec)
    hands = [hand_spec(src, h) for h in HANDS if h in src.hands]
    n = min((len(h.channels[0]) // WINDOW) * WINDOW for h in hands)
    return [h.stream(0, n // WINDOW) for h in hands]


# --- what every runtime shares --------------------------------------------------------------

def hand_config(hand: str, **overrides: int) -> Config:
    return Config(hand=HAND_L if hand == "L" else HAND_R, **overrides)


def imu_blocks(s: HandStream, n_blocks: int) -> np.ndarray:
    """Index (in ``s``) of the first IMU sample of each block of ``s`` (length n_blocks + 1)."""
    wpb = BLOCK // WINDOW
    if s.imu_win is None:
        return np.zeros(n_blocks + 1, dtype=np.int64)
    return np.searchsorted(s.imu_win, s.w0 + np.arange(n_blocks + 1) * wpb, side="left")


def imu_block_buffer(s: HandStream, lo: int, hi: int, first_window: int) -> np.ndarray:
    """IMU samples lo..hi as the firmware's (window-in-block, ax, ay, az, gx, gy, gz) rows."""
    rows = np.empty((hi - lo, 7), dtype=np.int32)
    assert s.imu_win is not None and s.acc is not None and s.gyr is not None
    rows[:, 0] = s.imu_win[lo:hi] - first_window
    rows[:, 1:4] = s.acc[lo:hi]
    rows[:, 4:7] = s.gyr[lo:hi]
    return rows


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
