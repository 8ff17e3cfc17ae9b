"""Synthetic two-hand recordings of writer's cramp patients, with ground truth.

``simulate(scenario)`` returns a :class:`~mirrorband.recording.Recording` with
both bands' EMG (FLEX, EXT, in uV) and IMU (ACC in g, GYR in deg/s, band axes
of FORMATS.md), the task protocol (``REST``, ``WRITE H``) and the ground truth
(``MIRROR H``, ``BURST H``, ``ARTIFACT H``) as annotations. The model and the
reasoning behind every number are in docs/simulator.md; the numbers themselves
live in the constants below so that the document and the code can be compared.

Ground-truth timing: an annotation's onset is the first sample where the
event's activation envelope (EMG bursts) or disturbance waveform (artifacts)
leaves zero, and onset + duration is where it is back at zero. Onsets and
durations are whole milliseconds (exactly representable in EDF+).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from mirrorband.recording import (
    HANDS,
    IMU_RATE_HZ,
    TRUTH_ARTIFACT,
    TRUTH_BURST,
    TRUTH_MIRROR,
    Annotation,
    HandSignals,
    Recording,
    RecordingError,
)

SEVERITIES = ("control", "mild", "moderate", "severe")
#: Every valid scenario name: a severity, optionally suffixed with the affected side.
SCENARIOS = tuple(f"{s}{suffix}" for s in SEVERITIES for suffix in ("", "-L", "-R"))
DEFAULT_SIDE = "R"
MIN_SIM_EMG_RATE_HZ = 500.0
MAX_SIM_EMG_RATE_HZ = 2048.0
MAINS_CHOICES = (50, 60)
#: Longest protocol simulate() accepts (memory grows with duration x rate).
MAX_DURATION_S = 3600.0
PROTOCOL_TEXTS = ("REST", "WRITE L", "WRITE R")
MODELS = (1, 2)


@dataclass(frozen=True)
class Severity:
    """Mirror-dystonia parameters of a severity (ranges are drawn uniformly unless said)."""

    rate_per_min: tuple[float, float]  # mirror bursts per minute of the other hand's writing
    amplitude: tuple[float, float]  # burst RMS / resting RMS (patient centre drawn log-uniformly)
    duration_s: tuple[float, float]  # burst duration, log-uniform
    cocontraction: float  # probability that a burst also activates EXT
    latency_s: tuple[float, float]  # WRITE onset of the other hand -> first mirror burst
    posture_deg: tuple[float, float]  # wrist flexion (about band +Y) during a burst
    unaffected_rate_factor: float  # rate in the unaffected hand when the affected hand writes


SEVERITY: dict[str, Severity | None] = {
    "control": None,
    "mild": Severity((2, 5), (4, 8), (0.3, 1.0), 0.25, (5, 15), (3, 8), 0.0),
    "moderate": Severity((6, 12), (6, 15), (0.3, 2.0), 0.5, (3, 7), (5, 15), 0.02),
    "severe": Severity((12, 25), (10, 40), (0.4, 3.0), 0.8, (1, 3), (10, 30), 0.04),
}

# --- EMG model -------------------------------------------------------------------------------
#: Shwedyk-type EMG power spectrum P(f) = fh^4 f^2 / ((f^2 + fl^2)(f^2 + fh^2)^2) / (1 + (f/flp)^8):
#: peak ~84 Hz, half-power band ~37-171 Hz, median ~115 Hz.
EMG_SPECTRUM_FL_HZ = 90.0
EMG_SPECTRUM_FH_HZ = 140.0
EMG_SPECTRUM_LOWPASS_HZ = 400.0
TONIC_UV = (2.0, 4.0)  # resting tonic EMG, uV RMS
AMP_NOISE_UV = (1.0, 2.0)  # amplifier + electrode noise, white, uV RMS
CROSSTALK = (0.10, 0.20)  # fraction of the other muscle group seen by a channel
DC_OFFSET_UV = (500.0, 3000.0)  # |electrode offset|, random sign
WANDER_UV = (20.0, 200.0)  # total amplitude of baseline wander
WANDER_HZ = (0.1, 0.5)
MAINS_UV = (5.0, 30.0)  # fundamental amplitude, log-uniform
MAINS_HARMONICS = (0.15, 0.4, 0.1, 0.2)  # relative amplitudes of harmonics 2..5 (x U(0.5, 1.5))
MAINS_MOD_DEPTH = 0.4
MAINS_MOD_HZ = (0.02, 0.1)
MAINS_DRIFT_HZ = 0.05  # |grid frequency error|

# --- writing ---------------------------------------------------------------------------------
WRITE_START_DELAY_S = (0.5, 1.5)  # WRITE cue -> pen on paper
EPISODE_S = (0.8, 8.0)  # writing episode (word/line) duration: lognormal median 2.5 s, clipped
EPISODE_MEDIAN_S = 2.5
PAUSE_S = (0.3, 1.5)
STROKE_HZ = (3.0, 6.0)
STROKE_FM = 0.12  # relative slow variation of the stroke rate
WRITE_FLEX_UV = (50.0, 150.0)  # FLEX level while writing (peak of the stroke modulation), uV RMS
WRITE_EXT_RATIO = (0.4, 0.8)  # EXT level / FLEX level (controls, unaffected hand)
CRAMP_GAIN = (1.1, 1.5)  # affected hand writing: FLEX level x this
CRAMP_EXT_RATIO = (0.7, 1.1)  # affected hand writing: EXT / FLEX (co-contraction)
STROKE_DEPTH = 0.5  # EMG modulation depth at stroke rate
PEN_HOLD = 0.15  # level between episodes (pen held), fraction of the writing level
EPISODE_RAMP_S = 0.08
WRITE_ACC_G = (0.05, 0.2)
WRITE_GYR_DPS = (10.0, 40.0)
WRITE_ROLL_DEG = (20.0, 40.0)  # forearm supination while writing, about band X
WRITE_ROLL_RAMP_S = 0.8
TABLE_VIBRATION_G = (0.002, 0.005)  # resting band feels the other hand writing on the table

# --- bursts ----------------------------------------------------------------------------------
MIN_GAP_S = 0.4  # between any two ground-truth events of the same hand
WRITING_SETTLE_S = 0.15  # mirror bursts start at least this long after a writing episode starts
MIRROR_RISE_S = (0.015, 0.05)
MIRROR_FALL_S = (0.05, 0.15)
MIRROR_AMP_JITTER = 0.25  # per-burst log-normal sigma around the patient's amplitude
MIRROR_EXT_RATIO = (0.5, 1.0)  # co-contracting bursts: EXT level / FLEX level
BURST_MODULATION = 0.3  # irregular amplitude fluctuation inside a burst (x (1 + m * noise))
POSTURE_RAMP_S = 0.6  # wrist rotation reaches its angle within min(this, duration / 2)
POSTURE_RETURN_S = 0.3  # and returns within this after the burst ends
VOLUNTARY_PER_S = 1 / 15  # voluntary bursts per second of REST (per hand)
VOLUNTARY_AMP = (5.0, 20.0)
VOLUNTARY_DURATION_S = (0.3, 1.5)
VOLUNTARY_EXT_RATIO = (0.3, 1.0)
VOLUNTARY_RISE_S = (0.05, 0.15)
VOLUNTARY_FALL_S = (0.1, 0.2)
VOLUNTARY_MOVE_DEG = (5.0, 20.0)
REST_MARGIN_S = 1.0
CALIBRATION_S = 5.0  # the first seconds of the first REST stay free of bursts and artifacts

# --- artifacts -------------------------------------------------------------------------------
ARTIFACTS_PER_MIN = 1.2  # per hand, while that hand is not writing
KNOCK_S = (0.05, 0.15)
KNOCK_UV = (300.0, 1500.0)
KNOCK_ACC_G = (0.5, 2.0)
KNOCK_ACC_S = (0.02, 0.05)
KNOCK_GYR_DPS = (5.0, 30.0)
CABLE_S = (0.3, 1.5)
CABLE_HZ = (1.0, 8.0)
CABLE_UV = (100.0, 1000.0)
CABLE_ACC_G = (0.005, 0.02)
CABLE_GYR_DPS = (1.0, 3.0)
POP_UV = (100.0, 2000.0)  # log-uniform, random sign, one channel
POP_RECOVERY_S = (0.2, 1.0)  # back to 5 % (3 time constants)

# --- IMU -------------------------------------------------------------------------------------
BASE_TILT_DEG = 8.0  # resting posture: roll and pitch each U(-this, this)
ACC_NOISE_G = 0.0015
ACC_BIAS_G = 0.01
GYR_NOISE_DPS = 0.08
GYR_BIAS_DPS = 0.5
TREMOR_G = 0.001  # physiological tremor, 8-12 Hz
TREMOR_HZ = (8.0, 12.0)


def default_protocol(affected: str = DEFAULT_SIDE) -> list[tuple[str, float]]:
    """REST 15 s, WRITE unaffected 60 s, REST 10 s, WRITE affected 60 s, REST 10 s."""
    other = "L" if affected == "R" else "R"
    return [
        ("REST", 15.0),
        (f"WRITE {other}", 60.0),
        ("REST", 10.0),
        (f"WRITE {affected}", 60.0),
        ("REST", 10.0),
    ]


def parse_scenario(scenario: str) -> tuple[str, str]:
    """``"severe-L"`` -> ``("severe", "L")``; unknown names raise :class:`RecordingError`."""
    if not isinstance(scenario, str) or scenario not in SCENARIOS:
        raise RecordingError(f"unknown scenario {scenario!r}; valid: {', '.join(SCENARIOS)}")
    severity, _, side = scenario.partition("-")
    return severity, side or DEFAULT_SIDE


# ---------------------------------------------------------------------------------------------
# planning: what happens when (all times in seconds, rounded to 1 ms)


@dataclass
class _Event:
    kind: str  # TRUTH_MIRROR / TRUTH_BURST / TRUTH_ARTIFACT
    hand: str
    onset: float
    duration: float
    p: dict = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.onset + self.duration

    @property
    def tail(self) -> float:
        """End of everything the event does to the signals (IMU posture return included)."""
        return self.end + self.p.get("tail", 0.0)


@dataclass
class _Write:
    hand: str
    on: float
    off: float
    episodes: list[tuple[float, float]]
    stroke_hz: float
    flex_uv: float
    ext_ratio: float
    acc_g: float
    gyr_dps: float
    roll_deg: float


def _ms(x: float) -> float:
    return round(x * 1000) / 1000


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


class _Occupancy:
    """Ground-truth intervals of one hand, kept MIN_GAP_S apart."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []

    def free(self, start: float, end: float) -> bool:
        return all(end + MIN_GAP_S <= s or start >= e + MIN_GAP_S for s, e in self.spans)

    def add(self, ev: _Event) -> None:
        self.spans.append((ev.onset, ev.tail))

    def place(self, ev: _Event, out: list[_Event]) -> bool:
        """Add ``ev`` to ``out`` if it keeps clear of the others; whether it did."""
        if not self.free(ev.onset, ev.tail):
            return False
        self.add(ev)
        out.append(ev)
        return True


def _episodes(rng: np.random.Generator, on: float, off: float) -> list[tuple[float, float]]:
    eps = []
    t = on + _u(rng, WRITE_START_DELAY_S)
    while True:
        d = float(np.clip(EPISODE_MEDIAN_S * math.exp(rng.normal(0.0, 0.5)), *EPISODE_S))
        if t + d > off - 0.3:
            d = off - 0.3 - t
            if d < EPISODE_S[0]:
                break
        eps.append((_ms(t), _ms(t + d)))
        t += d + _u(rng, PAUSE_S)
    return eps


def _writing_time_at(eps: list[tuple[float, float]], t: float, rng: np.random.Generator) -> float | None:
    """``t`` if the pen is moving then, else a moment after the next episode has got going."""
    for s, e in eps:
        if s + WRITING_SETTLE_S <= t <= e - 0.1:
            return t
        if t < s + WRITING_SETTLE_S:
            return s + WRITING_SETTLE_S + _u(rng, (0.0, 0.3))
    return None


def _mirror_event(rng, hand, onset, duration, amp, sev: Severity, amp_range) -> _Event:
    co = bool(rng.random() < sev.cocontraction)
    rise = min(_u(rng, MIRROR_RISE_S), duration / 3)
    fall = min(_u(rng, MIRROR_FALL_S), duration / 3)
    posture = _u(rng, sev.posture_deg)
    return _Event(
        TRUTH_MIRROR,
        hand,
        onset,
        duration,
        {
            "amp": float(np.clip(amp, *amp_range)),
            "ext": _u(rng, MIRROR_EXT_RATIO) if co else 0.0,
            "rise": rise,
            "fall": fall,
            "angle": posture,
            "axis": 1,  # rotation about band Y (wrist flexion)
            "ramp": min(POSTURE_RAMP_S, duration / 2),
            "tail": POSTURE_RETURN_S,
        },
    )


def _plan_mirror(rng, sev: Severity, w: _Write, hand: str, occ: _Occupancy, affected: bool) -> list[_Event]:
    """Mirror bursts in the resting ``hand`` while ``w.hand`` writes."""
    out: list[_Event] = []
    lo, hi = sev.amplitude
    centre = _loguniform(rng, lo, hi)
    dlo, dhi = sev.duration_s
    mean_dur = (dhi - dlo) / math.log(dhi / dlo)
    last_start = w.off - 0.2 - dlo
    if affected:
        rate = _u(rng, sev.rate_per_min)
        mean_extra = max(0.2, 60.0 / rate - mean_dur - MIN_GAP_S)
        t = _writing_time_at(w.episodes, w.on + _u(rng, sev.latency_s), rng)
        while t is not None and t <= last_start:
            dur = min(_loguniform(rng, dlo, dhi), w.off - 0.2 - t)
            amp = centre * math.exp(rng.normal(0.0, MIRROR_AMP_JITTER))
            ev = _mirror_event(rng, hand, _ms(t), _ms(dur), amp, sev, (lo, hi))
            occ.place(ev, out)
            t = _writing_time_at(w.episodes, ev.tail + MIN_GAP_S + rng.exponential(mean_extra), rng)
    else:
        rate = _u(rng, sev.rate_per_min) * sev.unaffected_rate_factor
        count = int(rng.poisson(rate * (w.off - w.on) / 60.0))
        for _ in range(count):
            for _try in range(30):
                s, e = w.episodes[int(rng.integers(len(w.episodes)))]
                if e - s < WRITING_SETTLE_S + 0.3:
                    continue
                t = _u(rng, (s + WRITING_SETTLE_S, e - 0.1))
                dur = min(_loguniform(rng, dlo, min(dhi, 1.0)), w.off - 0.2 - t)
                if dur < dlo:
                    continue
                ev = _mirror_event(rng, hand, _ms(t), _ms(dur), lo * _u(rng, (1.0, 1.5)), sev, (lo, hi))
                if occ.place(ev, out):
                    break
    return out


def _plan_voluntary(rng, hand: str, windows: list[tuple[float, float]], occ: _Occupancy) -> list[_Event]:
    out = []
    for a, b in windows:
        count = int(rng.poisson(VOLUNTARY_PER_S * (b - a)))
        for _ in range(count):
            for _try in range(30):
                dur = _u(rng, VOLUNTARY_DURATION_S)
                if b - a < dur:
                    break
                t = _ms(_u(rng, (a, b - dur)))
                ev = _Event(
                    TRUTH_BURST,
                    hand,
                    t,
                    _ms(dur),
                    {
                        "amp": _loguniform(rng, *VOLUNTARY_AMP),
                        "ext": _u(rng, VOLUNTARY_EXT_RATIO),
                        "rise": _u(rng, VOLUNTARY_RISE_S),
                        "fall": _u(rng, VOLUNTARY_FALL_S),
                        "angle": _u(rng, VOLUNTARY_MOVE_DEG) * (1 if rng.random() < 0.5 else -1),
                        "axis": 1 if rng.random() < 0.6 else 0,
                        "move": True,  # smooth out-and-back movement over the burst
                    },
                )
                if occ.place(ev, out):
                    break
    return out


def _plan_artifacts(rng, hand: str, windows: list[tuple[float, float]], occ: _Occupancy) -> list[_Event]:
    out = []
    total = sum(b - a for a, b in windows)
    if total <= 0:
        return out
    lengths = np.array([b - a for a, b in windows])
    count = int(rng.poisson(ARTIFACTS_PER_MIN * total / 60.0))
    for _ in range(count):
        for _try in range(30):
            kind = ("knock", "cable", "pop")[int(rng.integers(3))]
            if kind == "knock":
                emg_s, acc_s = _u(rng, KNOCK_S), _u(rng, KNOCK_ACC_S)
                dur = max(emg_s, acc_s)
                p = {
                    "type": kind,
                    "emg_s": emg_s,
                    "uv": [_u(rng, KNOCK_UV) * _u(rng, (0.5, 1.0)) * rng.choice([-1, 1]) for _c in range(2)],
                    "acc_s": acc_s,
                    "acc_g": _u(rng, KNOCK_ACC_G),
                    "acc_dir": rng.normal(0.0, 0.3, 3) + np.array([0.0, 0.0, rng.choice([-1.0, 1.0])]),
                    "gyr_dps": _u(rng, KNOCK_GYR_DPS),
                    "gyr_dir": rng.normal(0.0, 1.0, 3),
                }
            elif kind == "cable":
                dur = _u(rng, CABLE_S)
                k = int(rng.integers(2, 4))
                p = {
                    "type": kind,
                    "freqs": rng.uniform(*CABLE_HZ, k),
                    "phases": rng.uniform(0, 2 * math.pi, k),
                    "uv": _u(rng, CABLE_UV),
                    "gains": [_u(rng, (0.3, 1.0)) * rng.choice([-1, 1]) for _c in range(2)],
                    "acc_g": _u(rng, CABLE_ACC_G),
                    "gyr_dps": _u(rng, CABLE_GYR_DPS),
                    "axis": int(rng.integers(3)),
                }
            else:
                dur = _u(rng, POP_RECOVERY_S)
                p = {
                    "type": kind,
                    "uv": _loguniform(rng, *POP_UV) * rng.choice([-1, 1]),
                    "channel": "FLEX" if rng.random() < 0.5 else "EXT",
                }
            i = int(rng.choice(len(windows), p=lengths / total))
            a, b = windows[i]
            if b - a < dur:
                continue
            ev = _Event(TRUTH_ARTIFACT, hand, _ms(_u(rng, (a, b - dur))), _ms(dur), p)
            if occ.place(ev, out):
                break
    return out


def _subtract(window: tuple[float, float], holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = [window]
    for hs, he in holes:
        nxt = []
        for a, b in out:
            if he <= a or hs >= b:
                nxt.append((a, b))
                continue
            if hs > a:
                nxt.append((a, hs))
            if he < b:
                nxt.append((he, b))
        out = nxt
    return [(a, b) for a, b in out if b - a > 0.2]


# ---------------------------------------------------------------------------------------------
# rendering


def _emg_shape(n: int, fs: float) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1.0 / fs)
    fl, fh, flp = EMG_SPECTRUM_FL_HZ, EMG_SPECTRUM_FH_HZ, EMG_SPECTRUM_LOWPASS_HZ
    p = fh**4 * f**2 / ((f**2 + fl**2) * (f**2 + fh**2) ** 2) / (1 + (f / flp) ** 8)
    return np.sqrt(p)


def _carrier(rng: np.random.Generator, shape: np.ndarray, n: int) -> np.ndarray:
    """Unit-RMS Gaussian noise with the EMG spectrum."""
    x = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n)
    return x / np.sqrt(np.mean(x * x))


def _span(t0: float, t1: float, rate: float, n: int) -> tuple[int, int]:
    return max(0, math.ceil(t0 * rate - 1e-9)), min(n, math.ceil(t1 * rate - 1e-9))


def _rc(x: np.ndarray) -> np.ndarray:
    """Raised-cosine ramp 0 -> 1 for x in [0, 1]."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _gate(t: np.ndarray, intervals: list[tuple[float, float]], ramp: float, rate: float) -> np.ndarray:
    """1 inside each interval, with raised-cosine ramps of ``ramp`` inside its edges, else 0."""
    g = np.zeros(len(t))
    for s, e in intervals:
        i0, i1 = _span(s, e, rate, len(t))
        if i1 <= i0:
            continue
        tt = t[i0:i1]
        r = min(ramp, (e - s) / 2)
        g[i0:i1] = np.minimum(_rc((tt - s) / r), _rc((e - tt) / r))
    return g


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, knot_hz: float) -> np.ndarray:
    """Unit-variance noise varying at about ``knot_hz`` (linear between random knots)."""
    if len(t) == 0:
        return np.zeros(0)
    n_knots = int(math.ceil((t[-1] - t[0]) * knot_hz)) + 2
    knots = rng.standard_normal(n_knots)
    return np.interp((t - t[0]) * knot_hz, np.arange(n_knots), knots)


def _burst_envelope(rng, ev: _Event, t: np.ndarray, rate: float) -> tuple[int, np.ndarray]:
    """Activation envelope (peak ~1) of a burst over its span: rise, irregular plateau, fall."""
    i0, i1 = _span(ev.onset, ev.end, rate, len(t))
    tt = t[i0:i1]
    env = np.minimum(_rc((tt - ev.onset) / ev.p["rise"]), _rc((ev.end - tt) / ev.p["fall"]))
    env *= np.clip(1.0 + BURST_MODULATION * _smooth_noise(rng, tt, 8.0), 0.4, 2.0)
    return i0, env


def _pulse(ti: np.ndarray, t0: float, width: float, rate: float) -> np.ndarray:
    """Half-sine pulse (peak 1) of ``width`` s at ``t0``, averaged over each IMU sample period."""
    sub = (np.arange(16) + 0.5) / 16 - 0.5
    tt = ti[:, None] + sub[None, :] / rate
    x = (tt - t0) / width
    return np.where((x >= 0) & (x <= 1), np.sin(np.pi * np.clip(x, 0, 1)), 0.0).mean(axis=1)


def _recording_chain(rng: np.random.Generator, emg: dict[str, np.ndarray], noise_uv: dict[str, float],
                     te: np.ndarray, mains_hz: int, fs: float) -> None:
    """Add amplifier noise, electrode DC offset, baseline wander and mains hum to ``emg`` in place."""
    n = len(te)
    mains_f = mains_hz + rng.uniform(-MAINS_DRIFT_HZ, MAINS_DRIFT_HZ)
    mod_f, mod_ph = _u(rng, MAINS_MOD_HZ), rng.uniform(0, 2 * math.pi)
    mains_env = 1 + MAINS_MOD_DEPTH * np.sin(2 * math.pi * mod_f * te + mod_ph)
    for ch in ("FLEX", "EXT"):
        x = emg[ch]
        x += noise_uv[ch] * rng.standard_normal(n)
        x += _u(rng, DC_OFFSET_UV) * rng.choice([-1.0, 1.0])
        total_w = _u(rng, WANDER_UV)
        for wgt in rng.dirichlet(np.ones(3)):
            x += total_w * wgt * np.sin(2 * math.pi * _u(rng, WANDER_HZ) * te + rng.uniform(0, 2 * math.pi))
        a1 = _loguniform(rng, *MAINS_UV)
        hum = np.zeros(n)
        for k, rel in enumerate((1.0, *MAINS_HARMONICS), start=1):
            amp = a1 * rel * (1.0 if k == 1 else _u(rng, (0.5, 1.5)))
            ph0 = rng.uniform(0, 2 * math.pi)
            if k * mains_f < 0.5 * fs - 5:
                hum += amp * np.sin(2 * math.pi * k * mains_f * te + ph0)
        x += hum * mains_env


def _writing_imu(rng: np.random.Generator, writes, write_sig, hand: str, m: int, ti: np.ndarray, fi: float):
    """Resting posture and the writing movements of one band's IMU.

    Returns ``(roll, pitch, lin, rate_extra)``: orientation (deg), linear
    acceleration (g) and extra angular rate (deg/s) at the IMU rate.
    """
    roll = np.full(m, _u(rng, (-BASE_TILT_DEG, BASE_TILT_DEG)))
    pitch = np.full(m, _u(rng, (-BASE_TILT_DEG, BASE_TILT_DEG)))
    lin = np.zeros((m, 3))
    rate_extra = np.zeros((m, 3))
    for w, (j0, j1, phase, gate_i) in zip(writes, write_sig, strict=True):
        if w.hand == hand:
            roll += w.roll_deg * _gate(ti, [(w.on, w.off)], WRITE_ROLL_RAMP_S, fi)
            lin[j0:j1, 0] += w.acc_g * gate_i * (0.6 * np.sin(phase) + 0.2 * np.sin(2 * phase + 0.4))
            lin[j0:j1, 1] += w.acc_g * gate_i * np.sin(phase + 1.3)
            rate_extra[j0:j1, 2] += w.gyr_dps * gate_i * np.cos(phase)
            rate_extra[j0:j1, 0] += 0.5 * w.gyr_dps * gate_i * np.sin(phase + 0.5)
        else:
            lin[j0:j1, 2] += _u(rng, TABLE_VIBRATION_G) * gate_i * np.sin(phase)
    return roll, pitch, lin, rate_extra


def _check_protocol(protocol) -> list[tuple[str, float]]:
    steps = []
    try:
        items = list(protocol)
    except TypeError:
        raise RecordingError("protocol must be a list of (text, seconds)") from None
    if not items:
        raise RecordingError("protocol is empty")
    for item in items:
        try:
            text, secs = item
            secs = float(secs)
        except (TypeError, ValueError):
            raise RecordingError(f"protocol step {item!r} is not (text, seconds)") from None
        if text not in PROTOCOL_TEXTS:
            raise RecordingError(f"protocol step {text!r}: valid steps are {', '.join(PROTOCOL_TEXTS)}")
        if not math.isfinite(secs) or secs <= 0:
            raise RecordingError(f"protocol step {text!r} has a bad duration {secs!r} s")
        steps.append((text, _ms(secs)))
    total = sum(s for _, s in steps)
    if total > MAX_DURATION_S:
        raise RecordingError(f"protocol lasts {total:g} s; at most {MAX_DURATION_S:g} s can be simulated")
    return steps


def simulate(
    scenario: str,
    *,
    seed: int = 0,
    emg_rate: float = 1000,
    mains_hz: int = 50,
    protocol: list[tuple[str, float]] | None = None,
    model: int = 1,
    rest: bool = True,
) -> Recording:
    """A simulated two-hand session of ``scenario`` (see :data:`SCENARIOS`), deterministic per seed.

    ``model=1`` is the original model (its recordings never change for the
    same arguments); ``model=2`` is the model fitted to the real recordings
    (docs/simulator.md, "Model 2"). ``rest=False`` records the same session
    without ``REST`` annotations (the host configured no REST step; the hands
    still rest there).
    """
    if model not in MODELS or isinstance(model, bool):
        raise RecordingError(f"simulator model must be 1 or 2, not {model!r}")
    if not isinstance(rest, bool):
        raise RecordingError(f"rest must be True or False, not {rest!r}")
    severity, affected = parse_scenario(scenario)
    try:
        fs = float(emg_rate)
    except (TypeError, ValueError):
        raise RecordingError(f"EMG rate {emg_rate!r} is not a number") from None
    if not MIN_SIM_EMG_RATE_HZ <= fs <= MAX_SIM_EMG_RATE_HZ:
        raise RecordingError(
            f"EMG rate {emg_rate!r} Hz is outside {MIN_SIM_EMG_RATE_HZ:g}-{MAX_SIM_EMG_RATE_HZ:g} Hz"
        )
    if mains_hz not in MAINS_CHOICES:
        raise RecordingError(f"mains frequency must be 50 or 60 Hz, not {mains_hz!r}")
    steps = _check_protocol(default_protocol(affected) if protocol is None else protocol)
    if model == 2:
        return _simulate_v2(scenario, severity, affected, fs, mains_hz, steps, rest, seed)
    if not rest:
        rec = simulate(scenario, seed=seed, emg_rate=emg_rate, mains_hz=mains_hz, protocol=protocol)
        rec.annotations = [a for a in rec.annotations if a.text != "REST"]
        rec.name = f"sim-{scenario}-norest-seed{seed}"
        return rec
    sev = SEVERITY[severity]
    rng = np.random.default_rng(seed)
    fi = float(IMU_RATE_HZ)

    # ---- protocol ----------------------------------------------------------------------------
    annotations: list[Annotation] = []
    periods: list[tuple[str, str | None, float, float]] = []
    t = 0.0
    for text, secs in steps:
        kind, _, hand = text.partition(" ")
        periods.append((kind, hand or None, t, _ms(t + secs)))
        annotations.append(Annotation(t, secs, text))
        t = _ms(t + secs)
    total = t
    n = math.ceil(total * fs - 1e-6)  # never shorter than the protocol
    m = math.ceil(total * fi - 1e-6)

    # ---- plan ----------------------------------------------------------------------------------
    writes: list[_Write] = []
    for kind, hand, on, off in periods:
        if kind != "WRITE" or hand is None:
            continue
        cramp = sev is not None and hand == affected
        flex = _u(rng, WRITE_FLEX_UV) * (_u(rng, CRAMP_GAIN) if cramp else 1.0)
        writes.append(
            _Write(
                hand=hand,
                on=on,
                off=off,
                episodes=_episodes(rng, on, off),
                stroke_hz=_u(rng, STROKE_HZ),
                flex_uv=flex,
                ext_ratio=_u(rng, CRAMP_EXT_RATIO if cramp else WRITE_EXT_RATIO),
                acc_g=_u(rng, WRITE_ACC_G),
                gyr_dps=_u(rng, WRITE_GYR_DPS),
                roll_deg=_u(rng, WRITE_ROLL_DEG) * (1 if hand == "L" else -1),
            )
        )
    occ = {h: _Occupancy() for h in HANDS}
    events: list[_Event] = []
    if sev is not None:
        for w in writes:
            rest_hand = "L" if w.hand == "R" else "R"
            if w.episodes:
                events += _plan_mirror(rng, sev, w, rest_hand, occ[rest_hand], rest_hand == affected)
    first_rest = next((p for p in periods if p[0] == "REST"), None)
    for hand in HANDS:
        windows = []
        for kind, _h, on, off in periods:
            if kind != "REST":
                continue
            a = on + (CALIBRATION_S if (kind, _h, on, off) == first_rest and on == 0.0 else REST_MARGIN_S)
            b = off - REST_MARGIN_S
            if b > a:
                windows.append((a, b))
        events += _plan_voluntary(rng, hand, windows, occ[hand])
    for hand in HANDS:
        own = [(w.on - 0.5, w.off + 0.5) for w in writes if w.hand == hand]
        windows = _subtract((min(CALIBRATION_S, total / 4), total - 0.2), own)
        events += _plan_artifacts(rng, hand, windows, occ[hand])

    # ---- render --------------------------------------------------------------------------------
    te = np.arange(n) / fs
    ti = np.arange(m) / fi
    shape = _emg_shape(n, fs)
    hands: dict[str, HandSignals] = {}
    # stroke phase of each WRITE (IMU time base), shared by the writer's EMG/IMU and the table vibration
    write_sig = []
    for w in writes:
        j0, j1 = _span(w.on, w.off, fi, m)
        tt = ti[j0:j1]
        f_inst = w.stroke_hz * (1.0 + STROKE_FM * _smooth_noise(rng, tt, 1.0))
        phase = 2 * math.pi * np.cumsum(f_inst) / fi + rng.uniform(0, 2 * math.pi)
        write_sig.append((j0, j1, phase, _gate(ti, w.episodes, EPISODE_RAMP_S, fi)[j0:j1]))

    for hand in HANDS:
        hev = [e for e in events if e.hand == hand]
        # -- muscle activity (power envelopes, uV^2) --
        ref = {}
        power = {}
        noise_uv = {}
        for ch in ("FLEX", "EXT"):
            tonic = _u(rng, TONIC_UV)
            noise_uv[ch] = _u(rng, AMP_NOISE_UV)
            ref[ch] = math.hypot(tonic, noise_uv[ch])  # the "resting level" bursts are scaled to
            power[ch] = np.full(n, tonic**2)
        for w, (j0, j1, phase, gate_i) in zip(writes, write_sig, strict=True):
            if w.hand != hand:
                continue
            i0, i1 = _span(w.on, w.off, fs, n)
            tt = te[i0:i1]
            ph = np.interp(tt, ti[j0:j1], phase)
            ep = np.interp(tt, ti[j0:j1], gate_i)
            hold = _gate(tt, [(w.on, w.off)], 0.5, fs) if len(tt) else tt
            for ch, level, shift in (
                ("FLEX", w.flex_uv, 0.0),
                ("EXT", w.flex_uv * w.ext_ratio, 0.7 * math.pi),
            ):
                mod = 1 - STROKE_DEPTH + STROKE_DEPTH * (0.5 + 0.5 * np.sin(ph + shift))
                env = level * (PEN_HOLD * hold + (1 - PEN_HOLD) * ep * mod)
                power[ch][i0:i1] += env**2
        for ev in hev:
            if ev.kind == TRUTH_ARTIFACT:
                continue
            i0, env = _burst_envelope(rng, ev, te, fs)
            power["FLEX"][i0 : i0 + len(env)] += (ev.p["amp"] * ref["FLEX"] * env) ** 2
            if ev.p["ext"] > 0:
                power["EXT"][i0 : i0 + len(env)] += (ev.p["amp"] * ev.p["ext"] * ref["EXT"] * env) ** 2
        muscle = {ch: _carrier(rng, shape, n) * np.sqrt(power[ch]) for ch in ("FLEX", "EXT")}
        c_fe, c_ef = _u(rng, CROSSTALK), _u(rng, CROSSTALK)
        emg = {"FLEX": muscle["FLEX"] + c_fe * muscle["EXT"], "EXT": muscle["EXT"] + c_ef * muscle["FLEX"]}
        del muscle, power
        # -- recording chain: amplifier noise, DC offset, wander, mains --
        _recording_chain(rng, emg, noise_uv, te, mains_hz, fs)
        # -- IMU: orientation (deg), linear acceleration (g), extra angular rate (deg/s) --
        roll, pitch, lin, rate_extra = _writing_imu(rng, writes, write_sig, hand, m, ti, fi)
        for ev in hev:
            if ev.kind == TRUTH_ARTIFACT:
                continue
            angles = pitch if ev.p["axis"] == 1 else roll
            if ev.p.get("move"):
                j0, j1 = _span(ev.onset, ev.end, fi, m)
                angles[j0:j1] += ev.p["angle"] * np.sin(np.pi * (ti[j0:j1] - ev.onset) / ev.duration) ** 2
            else:
                j0, j1 = _span(ev.onset, ev.tail, fi, m)
                tt = ti[j0:j1]
                up = _rc((tt - ev.onset) / ev.p["ramp"])
                down = 1 - _rc((tt - ev.end) / ev.p["tail"])
                angles[j0:j1] += ev.p["angle"] * np.minimum(up, down)
        # -- artifacts --
        for ev in hev:
            if ev.kind != TRUTH_ARTIFACT:
                continue
            p = ev.p
            if p["type"] == "knock":
                i0, i1 = _span(ev.onset, ev.onset + p["emg_s"], fs, n)
                u = (te[i0:i1] - ev.onset) / p["emg_s"]
                wave = np.sin(2 * math.pi * u) * np.sin(np.pi * u) ** 2 / 0.77  # biphasic, peak ~1
                ring = (
                    0.15 * _carrier(rng, _emg_shape(i1 - i0, fs), i1 - i0) * np.sin(np.pi * u)
                    if i1 - i0 > 2
                    else 0.0
                )
                for ch, g in zip(("FLEX", "EXT"), p["uv"], strict=True):
                    emg[ch][i0:i1] += g * (wave + ring)
                j0, j1 = _span(ev.onset - 2 / fi, ev.onset + p["acc_s"] + 2 / fi, fi, m)
                pulse = _pulse(ti[j0:j1], ev.onset, p["acc_s"], fi)
                d = p["acc_dir"] / np.linalg.norm(p["acc_dir"])
                lin[j0:j1] += p["acc_g"] * pulse[:, None] * d[None, :]
                gd = p["gyr_dir"] / np.linalg.norm(p["gyr_dir"])
                rate_extra[j0:j1] += p["gyr_dps"] * pulse[:, None] * gd[None, :]
            elif p["type"] == "cable":
                i0, i1 = _span(ev.onset, ev.end, fs, n)
                u = (te[i0:i1] - ev.onset) / ev.duration
                win = np.minimum(_rc(u / 0.2), _rc((1 - u) / 0.2))
                wave = sum(
                    np.sin(2 * math.pi * f * (te[i0:i1] - ev.onset) + ph)
                    for f, ph in zip(p["freqs"], p["phases"], strict=True)
                )
                wave = wave / max(1e-9, float(np.max(np.abs(wave)))) * win
                for ch, g in zip(("FLEX", "EXT"), p["gains"], strict=True):
                    emg[ch][i0:i1] += p["uv"] * g * wave
                j0, j1 = _span(ev.onset, ev.end, fi, m)
                tt = ti[j0:j1] - ev.onset
                w_i = np.sin(2 * math.pi * p["freqs"][0] * tt + p["phases"][0])
                w_i *= np.minimum(_rc(tt / ev.duration / 0.2), _rc((1 - tt / ev.duration) / 0.2))
                lin[j0:j1, p["axis"]] += p["acc_g"] * w_i
                rate_extra[j0:j1, (p["axis"] + 1) % 3] += p["gyr_dps"] * w_i
            else:
                i0, i1 = _span(ev.onset, ev.end, fs, n)
                tau = ev.duration / 3.0
                i1 = min(n, i0 + math.ceil(10 * tau * fs))
                emg[p["channel"]][i0:i1] += p["uv"] * np.exp(-(te[i0:i1] - ev.onset) / tau)
        # -- IMU assembly --
        r, pt = np.radians(roll), np.radians(pitch)
        acc = np.stack([-np.sin(pt) * np.cos(r), np.sin(r), np.cos(pt) * np.cos(r)], axis=1)
        acc += lin
        tremor_f = _u(rng, TREMOR_HZ)
        acc[:, 2] += TREMOR_G * np.sin(2 * math.pi * tremor_f * ti + rng.uniform(0, 2 * math.pi))
        acc += rng.uniform(-ACC_BIAS_G, ACC_BIAS_G, 3) + ACC_NOISE_G * rng.standard_normal((m, 3))
        gyr = np.zeros((m, 3))
        if m > 1:
            gyr[:, 0] = np.gradient(roll, 1 / fi)
            gyr[:, 1] = np.gradient(pitch, 1 / fi)
        gyr += rate_extra
        gyr += rng.uniform(-GYR_BIAS_DPS, GYR_BIAS_DPS, 3) + GYR_NOISE_DPS * rng.standard_normal((m, 3))
        hands[hand] = HandSignals(emg=emg, acc=acc, gyr=gyr)

    for ev in events:
        annotations.append(Annotation(ev.onset, ev.duration, f"{ev.kind} {ev.hand}"))
    annotations.sort(key=lambda a: (a.onset, a.text))
    return Recording(
        hands=hands,
        emg_rate=fs,
        imu_rate=IMU_RATE_HZ,
        annotations=annotations,
        notes=[],
        name=f"sim-{scenario}-seed{seed}",
    )


# =============================================================================================
# Model 2: fitted to the real recordings (docs/simulator.md, "Model 2"; host/mirrorband/sim/simfit.py)

#: (f0, flp) of every PLUX burst (simfit.fit_spectrum): P(f) = f0^4 f^2 / (f^2 + f0^2)^3 / (1 + (f/flp)^8).
#: Biceps (emg_bursts) first, then adductor pollicis; each patient hand draws one, x lognormal jitter.
V2_SPECTRA = (
    (75, 262), (79, 1576), (86, 3000), (75, 1361), (86, 2817), (87, 224), (83, 295), (86, 239), (84, 275),
    (114, 215), (213, 121), (131, 121), (150, 181), (183, 115), (279, 130),
)
V2_SPECTRUM_JITTER = 0.05
#: fits with flp above this saw no low-pass below 500 Hz (1 kHz data); above 500 Hz the model rolls off here
V2_LOWPASS_CAP_HZ = 500.0  # lognormal sigma of f0 and flp per channel
V2_TONIC_UV = (1.5, 4.0)  # resting tonic EMG at the session's quietest, uV RMS
V2_NOISE_UV = (1.5, 3.0)  # white amplifier + electrode noise (PLUX/BioSPPy quiet RMS 1.5-6 uV)
V2_DRIFT_RANGE = (2.0, 10.0)  # max/min of the tonic level over a session (log-uniform)
V2_DRIFT_KNOT_S = (10.0, 30.0)  # the drift varies over tens of seconds
V2_OVERFLOW = (1.5, 3.0)  # tonic x this in the affected resting hand while the other hand writes
V2_OVERFLOW_OTHER = (1.0, 1.5)  # controls, and the unaffected hand
V2_OVERFLOW_RAMP_S = 2.0
V2_RESIDUAL = (0.05, 0.3)  # residual activity after a burst: RMS fraction of its plateau
V2_RESIDUAL_TAU_S = (0.5, 3.0)  # its exponential decay
V2_PEAK_TO_PLATEAU = 1.35  # 40 ms peak envelope / plateau RMS of a modulated burst (measured, see doc)
V2_EMD_S = (0.03, 0.10)  # electromechanical delay: EMG onset -> movement
V2_FORCE_TAU_S = 0.05  # activation -> force low-pass (twitch-like)
V2_POSTURE_TAU_S = 0.15  # force -> wrist angle low-pass
V2_MOTION_BAND_HZ = (1.0, 15.0)
#: motion artifact RMS / burst plateau RMS (simfit.calibrate_motion_gain on the UCI Sigma lf / Sigma hf)
V2_MOTION_GAIN = (1.23, 1.64)
V2_JITTER = (0.1, 0.3)  # irregular wrist motion during a burst, fraction of its posture angle
V2_LEVER_M = 0.05  # band distance for tangential acceleration
#: peak envelope ratio (40 ms envelope / level just before the burst) of mirror bursts
V2_AMPLITUDE = {"mild": (3.0, 7.0), "moderate": (5.0, 15.0), "severe": (8.0, 40.0)}
V2_BRIEF_SHARE = {"mild": 0.3, "moderate": 0.25, "severe": 0.2}  # of mirror bursts that are brief
V2_BRIEF_S = (0.08, 0.15)
V2_BRIEF_RISE_S = (0.015, 0.03)
V2_BRIEF_FALL_S = (0.03, 0.06)
V2_BRIEF_AMP = (4.0, 30.0)  # peak envelope ratio of brief activations in REST (log-uniform)
V2_BRIEF_DEG = (0.5, 3.0)
V2_BRIEF_REST_PER_MIN = 1.0  # brief partial activations per minute of REST per hand (everyone)
V2_ARTIFACTS_PER_MIN = 1.5
V2_ARTIFACT_TYPES = ("knock", "cable", "pop", "tap", "passive")
V2_OVERLAP_SHARE = 0.15  # of non-brief true bursts that carry an overlapping cable tug or knock
TAP_S = (0.005, 0.02)
TAP_UV = (200.0, 2000.0)
TAP_ACC_G = (0.02, 0.1)
PASSIVE_S = (0.5, 2.0)
PASSIVE_DEG = (5.0, 25.0)
PASSIVE_LF_UV = (5.0, 30.0)  # skin-stretch artifact of a passive movement (no EMG)
V2_START_FREE_S = 2.0  # without REST only the first seconds stay free of events
V2_RATES = (500.0, 1000.0, 2048.0)


def _lowpass1(x: np.ndarray, tau_s: float, fs: float) -> np.ndarray:
    a = 1.0 - math.exp(-1.0 / (tau_s * fs))
    return np.asarray(signal.lfilter([a], [1.0, a - 1.0], x))


def _bandnoise(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Unit-RMS noise in V2_MOTION_BAND_HZ (FFT mask)."""
    if n < 4:
        return np.zeros(n)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / fs)
    spec[(f < V2_MOTION_BAND_HZ[0]) | (f > V2_MOTION_BAND_HZ[1])] = 0.0
    x = np.fft.irfft(spec, n)
    return x / max(1e-12, float(np.sqrt(np.mean(x * x))))


def motion_waveform(rng: np.random.Generator, t: np.ndarray, env: np.ndarray, fs: float, emd_s: float) -> np.ndarray:
    """Movement-related LF waveform of a burst: force envelope (peak 1) x unit-RMS 1-15 Hz noise.

    ``env`` is the activation envelope on ``t`` (rate ``fs``); the force follows
    it after the electromechanical delay ``emd_s`` through a 50 ms low-pass.
    """
    d = int(round(emd_s * fs))
    delayed = np.concatenate([np.zeros(d), env[: len(env) - d]]) if d < len(env) else np.zeros(len(env))
    force = _lowpass1(delayed, V2_FORCE_TAU_S, fs)
    force /= max(1e-12, float(force.max()))
    return force * _bandnoise(rng, len(t), fs)


def _shape_v2(n: int, fs: float, f0: float, flp: float) -> np.ndarray:
    f = np.fft.rfftfreq(n, 1.0 / fs)
    flp = min(flp, V2_LOWPASS_CAP_HZ)
    return np.sqrt(f0**4 * f**2 / (f**2 + f0**2) ** 3 / (1 + (f / flp) ** 8))


def simulated_set_v2(seeds, *, full: bool = False) -> list[dict]:
    """The standard model-2 evaluation set: ``simulate(**spec)`` keyword dicts.

    Per seed: every severity x affected side (L, R) x with/without REST (16
    recordings), the EMG rate (500/1000/2048 Hz) and mains (50/60 Hz) rotating
    over the 6 combinations so that each seed covers all of them; with
    ``full=True`` the whole factorial (96 per seed). Use disjoint seeds for
    tuning and for held-out scoring.
    """
    combos = [(r, m) for r in V2_RATES for m in MAINS_CHOICES]
    out = []
    for seed in seeds:
        k = 0
        for sev in SEVERITIES:
            for side in ("L", "R"):
                for rest in (True, False):
                    pool = combos if full else [combos[(k + int(seed)) % len(combos)]]
                    k += 1
                    for rate, mains in pool:
                        out.append({"scenario": f"{sev}-{side}", "seed": int(seed), "emg_rate": rate,
                                    "mains_hz": mains, "rest": rest, "model": 2})
    return out


def _v2_burst(rng, kind, hand, onset, duration, amp, *, ext, rise, fall, angle, axis, brief, move=False) -> _Event:
    return _Event(kind, hand, onset, duration, {
        "amp": amp, "ext": ext, "rise": min(rise, duration / 3), "fall": min(fall, duration / 3),
        "angle": angle, "axis": axis, "brief": brief, "move": move, "emd": _u(rng, V2_EMD_S),
        "tail": 0.3 if not brief else 0.1,
    })


def _plan_mirror_v2(rng, severity: str, sev: Severity, w: _Write, hand: str, occ: _Occupancy,
                    affected: bool) -> list[_Event]:
    out: list[_Event] = []
    lo, hi = V2_AMPLITUDE[severity]
    centre = _loguniform(rng, lo, hi)
    dlo, dhi = sev.duration_s
    mean_dur = (dhi - dlo) / math.log(dhi / dlo)
    rate = _u(rng, sev.rate_per_min) * (1.0 if affected else sev.unaffected_rate_factor)
    if rate <= 0:
        return out
    mean_extra = max(0.2, 60.0 / rate - mean_dur - MIN_GAP_S)
    start = w.on + (_u(rng, sev.latency_s) if affected else rng.exponential(60.0 / rate))
    t = _writing_time_at(w.episodes, start, rng)
    while t is not None and t <= w.off - 0.2 - dlo:
        brief = bool(rng.random() < V2_BRIEF_SHARE[severity])
        if brief:
            dur = _u(rng, V2_BRIEF_S)
            rise, fall = _u(rng, V2_BRIEF_RISE_S), _u(rng, V2_BRIEF_FALL_S)
            angle = _u(rng, V2_BRIEF_DEG)
        else:
            dur = min(_loguniform(rng, dlo, dhi), w.off - 0.2 - t)
            rise, fall = _u(rng, MIRROR_RISE_S), _u(rng, MIRROR_FALL_S)
            angle = _u(rng, sev.posture_deg)
        amp = float(np.clip(centre * math.exp(rng.normal(0.0, MIRROR_AMP_JITTER)), lo, hi))
        co = bool(rng.random() < sev.cocontraction)
        ev = _v2_burst(rng, TRUTH_MIRROR, hand, _ms(t), _ms(dur), amp, ext=_u(rng, MIRROR_EXT_RATIO) if co else 0.0,
                       rise=rise, fall=fall, angle=angle, axis=1, brief=brief)
        occ.place(ev, out)
        gap = rng.exponential(mean_extra) if affected else rng.exponential(60.0 / rate)
        t = _writing_time_at(w.episodes, ev.tail + MIN_GAP_S + gap, rng)
    return out


def _plan_rest_v2(rng, hand: str, windows: list[tuple[float, float]], occ: _Occupancy) -> list[_Event]:
    """Voluntary bursts (as v1, with movement) and brief partial activations in rest windows."""
    out = []
    for a, b in windows:
        for brief, per_s in ((False, VOLUNTARY_PER_S), (True, V2_BRIEF_REST_PER_MIN / 60.0)):
            for _ in range(int(rng.poisson(per_s * (b - a)))):
                for _try in range(30):
                    dur = _u(rng, V2_BRIEF_S if brief else VOLUNTARY_DURATION_S)
                    if b - a < dur:
                        break
                    t = _ms(_u(rng, (a, b - dur)))
                    if brief:
                        ev = _v2_burst(rng, TRUTH_BURST, hand, t, _ms(dur), _loguniform(rng, *V2_BRIEF_AMP),
                                       ext=_u(rng, VOLUNTARY_EXT_RATIO) if rng.random() < 0.5 else 0.0,
                                       rise=_u(rng, V2_BRIEF_RISE_S), fall=_u(rng, V2_BRIEF_FALL_S),
                                       angle=_u(rng, V2_BRIEF_DEG), axis=1, brief=True)
                    else:
                        ev = _v2_burst(rng, TRUTH_BURST, hand, t, _ms(dur), _loguniform(rng, *VOLUNTARY_AMP),
                                       ext=_u(rng, VOLUNTARY_EXT_RATIO), rise=_u(rng, VOLUNTARY_RISE_S),
                                       fall=_u(rng, VOLUNTARY_FALL_S),
                                       angle=_u(rng, VOLUNTARY_MOVE_DEG) * (1 if rng.random() < 0.5 else -1),
                                       axis=1 if rng.random() < 0.6 else 0, brief=False, move=True)
                    if occ.place(ev, out):
                        break
    return out


def _artifact_params_v2(rng, kind: str) -> tuple[float, dict]:
    if kind == "tap":
        dur = _u(rng, TAP_S)
        return dur, {"type": kind, "uv": _loguniform(rng, *TAP_UV) * rng.choice([-1, 1]),
                     "channel": "FLEX" if rng.random() < 0.5 else "EXT", "acc_g": _u(rng, TAP_ACC_G)}
    if kind == "passive":
        dur = _u(rng, PASSIVE_S)
        return dur, {"type": kind, "angle": _u(rng, PASSIVE_DEG) * rng.choice([-1, 1]),
                     "axis": 1 if rng.random() < 0.6 else 0, "lf_uv": _u(rng, PASSIVE_LF_UV),
                     "gains": [_u(rng, (0.3, 1.0)) * rng.choice([-1, 1]) for _c in range(2)]}
    if kind == "knock":
        emg_s, acc_s = _u(rng, KNOCK_S), _u(rng, KNOCK_ACC_S)
        return max(emg_s, acc_s), {
            "type": kind, "emg_s": emg_s,
            "uv": [_u(rng, KNOCK_UV) * _u(rng, (0.5, 1.0)) * rng.choice([-1, 1]) for _c in range(2)],
            "acc_s": acc_s, "acc_g": _u(rng, KNOCK_ACC_G),
            "acc_dir": rng.normal(0.0, 0.3, 3) + np.array([0.0, 0.0, rng.choice([-1.0, 1.0])]),
            "gyr_dps": _u(rng, KNOCK_GYR_DPS), "gyr_dir": rng.normal(0.0, 1.0, 3)}
    if kind == "cable":
        k = int(rng.integers(2, 4))
        return _u(rng, CABLE_S), {
            "type": kind, "freqs": rng.uniform(*CABLE_HZ, k), "phases": rng.uniform(0, 2 * math.pi, k),
            "uv": _u(rng, CABLE_UV), "gains": [_u(rng, (0.3, 1.0)) * rng.choice([-1, 1]) for _c in range(2)],
            "acc_g": _u(rng, CABLE_ACC_G), "gyr_dps": _u(rng, CABLE_GYR_DPS), "axis": int(rng.integers(3))}
    return _u(rng, POP_RECOVERY_S), {"type": "pop", "uv": _loguniform(rng, *POP_UV) * rng.choice([-1, 1]),
                                     "channel": "FLEX" if rng.random() < 0.5 else "EXT"}


def _plan_artifacts_v2(rng, hand: str, windows, occ: _Occupancy, bursts: list[_Event]) -> list[_Event]:
    out: list[_Event] = []
    total = sum(b - a for a, b in windows)
    if total > 0:
        lengths = np.array([b - a for a, b in windows])
        for _ in range(int(rng.poisson(V2_ARTIFACTS_PER_MIN * total / 60.0))):
            for _try in range(30):
                dur, p = _artifact_params_v2(rng, V2_ARTIFACT_TYPES[int(rng.integers(len(V2_ARTIFACT_TYPES)))])
                a, b = windows[int(rng.choice(len(windows), p=lengths / total))]
                if b - a < dur:
                    continue
                if occ.place(_Event(TRUTH_ARTIFACT, hand, _ms(_u(rng, (a, b - dur))), _ms(dur), p), out):
                    break
    # artifacts that overlap true bursts (not kept apart: that is the point)
    for ev in bursts:
        if ev.p["brief"] or rng.random() >= V2_OVERLAP_SHARE:
            continue
        dur, p = _artifact_params_v2(rng, "cable" if rng.random() < 0.6 else "knock")
        dur = min(dur, ev.duration)
        t = _ms(_u(rng, (ev.onset, max(ev.onset, ev.end - dur))))
        p["overlap"] = True
        out.append(_Event(TRUTH_ARTIFACT, hand, t, _ms(dur), p))
    return out


def _simulate_v2(scenario: str, severity: str, affected: str, fs: float, mains_hz: int,
                 steps: list[tuple[str, float]], rest: bool, seed: int) -> Recording:
    sev = SEVERITY[severity]
    rng = np.random.default_rng([seed, 2])
    fi = float(IMU_RATE_HZ)
    annotations: list[Annotation] = []
    periods: list[tuple[str, str | None, float, float]] = []
    t = 0.0
    for text, secs in steps:
        kind, _, hand = text.partition(" ")
        periods.append((kind, hand or None, t, _ms(t + secs)))
        if rest or kind != "REST":
            annotations.append(Annotation(t, secs, text))
        t = _ms(t + secs)
    total = t
    n = math.ceil(total * fs - 1e-6)
    m = math.ceil(total * fi - 1e-6)
    free0 = CALIBRATION_S if rest and periods[0][0] == "REST" else V2_START_FREE_S

    # ---- plan ----
    writes: list[_Write] = []
    for kind, hand, on, off in periods:
        if kind != "WRITE" or hand is None:
            continue
        cramp = sev is not None and hand == affected
        writes.append(_Write(
            hand=hand, on=on, off=off, episodes=_episodes(rng, on, off), stroke_hz=_u(rng, STROKE_HZ),
            flex_uv=_u(rng, WRITE_FLEX_UV) * (_u(rng, CRAMP_GAIN) if cramp else 1.0),
            ext_ratio=_u(rng, CRAMP_EXT_RATIO if cramp else WRITE_EXT_RATIO), acc_g=_u(rng, WRITE_ACC_G),
            gyr_dps=_u(rng, WRITE_GYR_DPS), roll_deg=_u(rng, WRITE_ROLL_DEG) * (1 if hand == "L" else -1)))
    occ = {h: _Occupancy() for h in HANDS}
    events: list[_Event] = []
    if sev is not None:
        for w in writes:
            rh = "L" if w.hand == "R" else "R"
            if w.episodes:
                events += _plan_mirror_v2(rng, severity, sev, w, rh, occ[rh], rh == affected)
    for hand in HANDS:
        windows = []
        for kind, _h, on, off in periods:
            if kind == "REST":
                a, b = on + (free0 if on == 0.0 else REST_MARGIN_S), off - REST_MARGIN_S
                if b > a:
                    windows.append((a, b))
        events += _plan_rest_v2(rng, hand, windows, occ[hand])
    for hand in HANDS:
        own = [(w.on - 0.5, w.off + 0.5) for w in writes if w.hand == hand]
        windows = _subtract((min(free0, total / 4), total - 0.2), own)
        bursts = sorted((e for e in events if e.hand == hand and e.kind != TRUTH_ARTIFACT), key=lambda e: e.onset)
        events += _plan_artifacts_v2(rng, hand, windows, occ[hand], bursts)

    # ---- render ----
    te = np.arange(n) / fs
    ti = np.arange(m) / fi
    hands: dict[str, HandSignals] = {}
    write_sig = []
    for w in writes:
        j0, j1 = _span(w.on, w.off, fi, m)
        tt = ti[j0:j1]
        f_inst = w.stroke_hz * (1.0 + STROKE_FM * _smooth_noise(rng, tt, 1.0))
        phase = 2 * math.pi * np.cumsum(f_inst) / fi + rng.uniform(0, 2 * math.pi)
        write_sig.append((j0, j1, phase, _gate(ti, w.episodes, EPISODE_RAMP_S, fi)[j0:j1]))

    for hand in HANDS:
        hev = sorted((e for e in events if e.hand == hand), key=lambda e: e.onset)
        f0, flp = V2_SPECTRA[int(rng.integers(len(V2_SPECTRA)))]
        motion_gain = _u(rng, V2_MOTION_GAIN)
        # -- non-stationary tonic level: slow drift x overflow while the other hand writes --
        drift_range = _loguniform(rng, *V2_DRIFT_RANGE)
        z = _smooth_noise(rng, te, 1.0 / _u(rng, V2_DRIFT_KNOT_S))
        z = (z - z.min()) / max(1e-9, float(z.max() - z.min()))
        level = drift_range**z
        other_w = [(w.on, w.off) for w in writes if w.hand != hand]
        over = _u(rng, V2_OVERFLOW if sev is not None and hand == affected else V2_OVERFLOW_OTHER)
        level *= 1.0 + (over - 1.0) * _gate(te, other_w, V2_OVERFLOW_RAMP_S, fs)
        power, noise_uv, shape = {}, {}, {}
        for ch in ("FLEX", "EXT"):
            power[ch] = (_u(rng, V2_TONIC_UV) * level) ** 2
            noise_uv[ch] = _u(rng, V2_NOISE_UV)
            j = np.exp(rng.normal(0.0, V2_SPECTRUM_JITTER, 2))
            shape[ch] = _shape_v2(n, fs, f0 * j[0], flp * j[1])
        del level, z
        for w, (j0, j1, phase, gate_i) in zip(writes, write_sig, strict=True):
            if w.hand != hand:
                continue
            i0, i1 = _span(w.on, w.off, fs, n)
            tt = te[i0:i1]
            ph = np.interp(tt, ti[j0:j1], phase)
            ep = np.interp(tt, ti[j0:j1], gate_i)
            hold = _gate(tt, [(w.on, w.off)], 0.5, fs) if len(tt) else tt
            for ch, lv, shift in (("FLEX", w.flex_uv, 0.0), ("EXT", w.flex_uv * w.ext_ratio, 0.7 * math.pi)):
                mod = 1 - STROKE_DEPTH + STROKE_DEPTH * (0.5 + 0.5 * np.sin(ph + shift))
                power[ch][i0:i1] += (lv * (PEN_HOLD * hold + (1 - PEN_HOLD) * ep * mod)) ** 2
        # -- bursts: amplitude relative to the background level just before; residual activity after --
        # The reference is the burst-free background (tonic, drift, overflow, writing) and not the running
        # power: with the previous bursts' residuals in it, each burst scaled the next one (x amp x residual,
        # up to ~9 for severe), and a dense run of severe mirror bursts grew geometrically to ~1e7 uV.
        background = {ch: power[ch].copy() for ch in power}
        moves = []  # (i0, motion waveform at fs, plateau uV, event)
        for ev in hev:
            if ev.kind == TRUTH_ARTIFACT:
                continue
            i0, env = _burst_envelope(rng, ev, te, fs)
            pre = slice(max(0, i0 - int(0.3 * fs)), max(1, i0))
            plateau = {}
            for ch, rel in (("FLEX", 1.0), ("EXT", ev.p["ext"])):
                if rel <= 0:
                    continue
                bg = math.sqrt(float(np.mean(background[ch][pre])) + noise_uv[ch] ** 2)
                plateau[ch] = ev.p["amp"] / V2_PEAK_TO_PLATEAU * rel * bg
                power[ch][i0 : i0 + len(env)] += (plateau[ch] * env) ** 2
                r, tau = _u(rng, V2_RESIDUAL), _u(rng, V2_RESIDUAL_TAU_S)
                k0, k1 = _span(ev.end, ev.end + 5 * tau, fs, n)
                power[ch][k0:k1] += (r * plateau[ch] * np.exp(-(te[k0:k1] - ev.end) / tau)) ** 2
            k1 = min(n, i0 + len(env) + int(0.6 * fs))
            full_env = np.zeros(k1 - i0)
            full_env[: len(env)] = env
            moves.append((i0, motion_waveform(rng, te[i0:k1], full_env, fs, ev.p["emd"]), plateau["FLEX"], ev))
        emg = {}
        for ch in ("FLEX", "EXT"):
            emg[ch] = _carrier(rng, shape[ch], n) * np.sqrt(power[ch])
        c_fe, c_ef = _u(rng, CROSSTALK), _u(rng, CROSSTALK)
        emg = {"FLEX": emg["FLEX"] + c_fe * emg["EXT"], "EXT": emg["EXT"] + c_ef * emg["FLEX"]}
        del power, background
        # -- movement artifact inside true bursts (electrode-skin motion, 1-15 Hz) --
        ch_gain = {"FLEX": rng.choice([-1.0, 1.0]), "EXT": _u(rng, (0.5, 1.0)) * rng.choice([-1.0, 1.0])}
        for i0, mot, plat, _ev in moves:
            for ch in ("FLEX", "EXT"):
                emg[ch][i0 : i0 + len(mot)] += motion_gain * plat * ch_gain[ch] * mot
        # -- recording chain: amplifier noise, DC offset, wander, mains --
        _recording_chain(rng, emg, noise_uv, te, mains_hz, fs)
        # -- IMU: orientation (deg), linear acceleration (g), extra angular rate (deg/s) --
        roll, pitch, lin, rate_extra = _writing_imu(rng, writes, write_sig, hand, m, ti, fi)
        for i0, mot, _plat, ev in moves:
            angles = pitch if ev.p["axis"] == 1 else roll
            j0, j1 = _span(float(te[i0]), float(te[i0]) + len(mot) / fs + ev.p["tail"], fi, m)
            tt = ti[j0:j1]
            if ev.p["move"]:
                # voluntary: smooth out-and-back over the burst, after the electromechanical delay
                u = np.clip((tt - ev.onset - ev.p["emd"]) / ev.duration, 0.0, 1.0)
                ang = ev.p["angle"] * np.sin(np.pi * u) ** 2
            else:
                # dystonic: the wrist follows the force (posture held while the burst lasts)
                d = max(1, int(round(ev.p["emd"] * fi)))
                act = ((tt >= ev.onset) & (tt <= ev.end)).astype(float)
                act = np.concatenate([np.zeros(d), act[:-d]]) if d < len(act) else np.zeros(len(act))
                pos = _lowpass1(_lowpass1(act, V2_FORCE_TAU_S, fi), V2_POSTURE_TAU_S, fi)
                ang = ev.p["angle"] * pos / max(1e-9, float(pos.max())) if ev.p["brief"] else ev.p["angle"] * pos
            jit = np.interp(tt, te[i0] + np.arange(len(mot)) / fs, mot, left=0.0, right=0.0)
            ang = ang + _u(rng, V2_JITTER) * abs(ev.p["angle"]) * jit
            angles[j0:j1] += ang
            if len(ang) > 2:
                alpha = np.gradient(np.gradient(np.radians(ang), 1 / fi), 1 / fi)
                lin[j0:j1, 2 if ev.p["axis"] == 1 else 1] += V2_LEVER_M * alpha / 9.81
        # -- artifacts --
        for ev in hev:
            if ev.kind != TRUTH_ARTIFACT:
                continue
            p = ev.p
            if p["type"] == "tap":
                i0, i1 = _span(ev.onset, ev.end, fs, n)
                u = (te[i0:i1] - ev.onset) / ev.duration
                emg[p["channel"]][i0:i1] += p["uv"] * np.sin(2 * math.pi * u) * np.sin(np.pi * u) ** 2 / 0.77
                j0, j1 = _span(ev.onset - 2 / fi, ev.onset + 0.03 + 2 / fi, fi, m)
                lin[j0:j1, 2] += p["acc_g"] * _pulse(ti[j0:j1], ev.onset, 0.03, fi)
            elif p["type"] == "passive":
                j0, j1 = _span(ev.onset, ev.end, fi, m)
                ang = p["angle"] * np.sin(np.pi * (ti[j0:j1] - ev.onset) / ev.duration) ** 2
                (pitch if p["axis"] == 1 else roll)[j0:j1] += ang
                i0, i1 = _span(ev.onset, ev.end, fs, n)
                u = (te[i0:i1] - ev.onset) / ev.duration
                wave = np.sin(np.pi * u) * _bandnoise(rng, i1 - i0, fs)
                for ch, g in zip(("FLEX", "EXT"), p["gains"], strict=True):
                    emg[ch][i0:i1] += p["lf_uv"] * g * wave
            elif p["type"] == "knock":
                i0, i1 = _span(ev.onset, ev.onset + p["emg_s"], fs, n)
                u = (te[i0:i1] - ev.onset) / p["emg_s"]
                wave = np.sin(2 * math.pi * u) * np.sin(np.pi * u) ** 2 / 0.77
                ring = (0.15 * _carrier(rng, _emg_shape(i1 - i0, fs), i1 - i0) * np.sin(np.pi * u)
                        if i1 - i0 > 2 else 0.0)
                for ch, g in zip(("FLEX", "EXT"), p["uv"], strict=True):
                    emg[ch][i0:i1] += g * (wave + ring)
                j0, j1 = _span(ev.onset - 2 / fi, ev.onset + p["acc_s"] + 2 / fi, fi, m)
                pulse = _pulse(ti[j0:j1], ev.onset, p["acc_s"], fi)
                lin[j0:j1] += p["acc_g"] * pulse[:, None] * (p["acc_dir"] / np.linalg.norm(p["acc_dir"]))[None, :]
                rate_extra[j0:j1] += (p["gyr_dps"] * pulse[:, None]
                                      * (p["gyr_dir"] / np.linalg.norm(p["gyr_dir"]))[None, :])
            elif p["type"] == "cable":
                i0, i1 = _span(ev.onset, ev.end, fs, n)
                u = (te[i0:i1] - ev.onset) / ev.duration
                win = np.minimum(_rc(u / 0.2), _rc((1 - u) / 0.2))
                wave = sum(np.sin(2 * math.pi * f * (te[i0:i1] - ev.onset) + ph)
                           for f, ph in zip(p["freqs"], p["phases"], strict=True))
                wave = wave / max(1e-9, float(np.max(np.abs(wave)))) * win
                for ch, g in zip(("FLEX", "EXT"), p["gains"], strict=True):
                    emg[ch][i0:i1] += p["uv"] * g * wave
                j0, j1 = _span(ev.onset, ev.end, fi, m)
                tt = ti[j0:j1] - ev.onset
                w_i = np.sin(2 * math.pi * p["freqs"][0] * tt + p["phases"][0])
                w_i *= np.minimum(_rc(tt / ev.duration / 0.2), _rc((1 - tt / ev.duration) / 0.2))
                lin[j0:j1, p["axis"]] += p["acc_g"] * w_i
                rate_extra[j0:j1, (p["axis"] + 1) % 3] += p["gyr_dps"] * w_i
            else:
                i0, _i1 = _span(ev.onset, ev.end, fs, n)
                tau = ev.duration / 3.0
                i1 = min(n, i0 + math.ceil(10 * tau * fs))
                emg[p["channel"]][i0:i1] += p["uv"] * np.exp(-(te[i0:i1] - ev.onset) / tau)
        r, pt = np.radians(roll), np.radians(pitch)
        acc = np.stack([-np.sin(pt) * np.cos(r), np.sin(r), np.cos(pt) * np.cos(r)], axis=1) + lin
        acc[:, 2] += TREMOR_G * np.sin(2 * math.pi * _u(rng, TREMOR_HZ) * ti + rng.uniform(0, 2 * math.pi))
        acc += rng.uniform(-ACC_BIAS_G, ACC_BIAS_G, 3) + ACC_NOISE_G * rng.standard_normal((m, 3))
        gyr = np.zeros((m, 3))
        if m > 1:
            gyr[:, 0] = np.gradient(roll, 1 / fi)
            gyr[:, 1] = np.gradient(pitch, 1 / fi)
        gyr += rate_extra
        gyr += rng.uniform(-GYR_BIAS_DPS, GYR_BIAS_DPS, 3) + GYR_NOISE_DPS * rng.standard_normal((m, 3))
        hands[hand] = HandSignals(emg=emg, acc=acc, gyr=gyr)

    for ev in events:
        annotations.append(Annotation(ev.onset, ev.duration, f"{ev.kind} {ev.hand}"))
    annotations.sort(key=lambda a: (a.onset, a.text))
    notes = ["simulated with model 2 (docs/simulator.md)"] + ([] if rest else ["protocol without REST"])
    return Recording(hands=hands, emg_rate=fs, imu_rate=IMU_RATE_HZ, annotations=annotations, notes=notes,
                     name=f"sim2-{scenario}{'' if rest else '-norest'}-seed{seed}")
