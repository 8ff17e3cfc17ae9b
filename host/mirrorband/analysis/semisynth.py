"""Semi-synthetic recordings built from real data: real bursts injected into real rest at a set SNR.

Real bursts are cut from the real recordings in ``../shared/data`` at their
labelled spans and added, at random seeded places with gaps, into a background
made of real quiet stretches. The cut burst's labelled span is the ground
truth (``BURST R``); nothing else is added, so the truth is exactly where the
energy was added. docs/realdata.md gives the details; in short:

* **Burst sources** (``bursts_from``): ``"plux"`` -- the 30 bursts of our
  PLUX annotations (1 kHz broadband; biceps and adductor pollicis);
  ``"uci"`` -- the cue-labelled gesture segments of one UCI Myo file (FLEX
  electrode; band-limited, ~200 Hz effective rate). The two are never mixed.
* **Rest sources** (``rest_from``): ``"plux"`` (quiet stretches of the PLUX
  recording away from every labelled burst and every span our labels
  exclude), ``"biosppy"`` (quiet stretches of BioSPPy's ``emg.txt``),
  ``"uci"`` (quiet stretches of the same UCI file away from every cued
  gesture: its class-1 runs alone are too few). A quiet stretch is a run of
  0.5 s windows whose band RMS is at most 2x the recording's quiet level
  (:func:`mirrorband.analysis.datasets.quiet_level`), at least 0.5 s from any burst or
  excluded span, and at least 1 s long. UCI bursts go only with UCI
  rest; PLUX bursts only with PLUX or BioSPPy rest.
* **SNR** (:func:`band_snr_db`): ``20 log10(rms_burst / rms_rest)`` where both RMS
  are of the 20-450 Hz zero-phase band-passed signal
  (:func:`mirrorband.analysis.datasets.labelling_envelope`): ``rms_burst`` of the burst
  as cut from its source over its labelled span (before injection),
  ``rms_rest`` of the whole background. Each burst is scaled to give exactly
  the requested SNR.
* The injected burst is the raw cut minus its linear trend (the source's
  offset), with 10 ms raised-cosine edges, so its low-frequency (movement)
  content is kept.

:func:`snr_curve` turns any detector ``detect(rec) -> events`` (FORMATS.md
§2 event dicts) into detection probability and false positives per minute
against SNR, matched by :func:`mirrorband.analysis.evaluate.score_recording`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mirrorband.analysis import datasets
from mirrorband.analysis.evaluate import prf, score_recording
from mirrorband.recording import EMG_RATE_HZ, IMU_RATE_HZ, Annotation, HandSignals, Recording

BURST_SOURCES = ("plux", "uci")
REST_SOURCES = ("plux", "biosppy", "uci")
#: The SNRs of the default curve, in dB.
DEFAULT_SNRS_DB = (0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 20.0, 25.0)
#: Edge taper of an injected burst (raised cosine), in seconds.
TAPER_S = 0.01
#: Crossfade between consecutive rest stretches of a background, in seconds.
CROSSFADE_S = 0.025
#: Quiet-stretch selection: windows, level cap (x the recording's quiet level), distance to any activity.
REST_WINDOW_S = 0.5
REST_MAX_LEVEL = 2.0
REST_MARGIN_S = 0.5
REST_MIN_S = 1.0

Span = tuple[float, float]


@dataclass(frozen=True)
class Piece:
    """A cut of a real recording: raw samples (uV), their 20-450 Hz band RMS, and where they came from."""

    x: np.ndarray
    band_rms: float
    origin: str


def _band(x: np.ndarray, rate: float) -> np.ndarray:
    return datasets.labelling_envelope(x, rate)[0]


def band_snr_db(burst_band: np.ndarray, rest_band: np.ndarray) -> float:
    """``20 log10(rms(burst_band) / rms(rest_band))``: both already 20-450 Hz band-passed."""
    rb = float(np.sqrt(np.mean(np.square(burst_band))))
    rr = float(np.sqrt(np.mean(np.square(rest_band))))
    if rb <= 0 or rr <= 0:
        raise ValueError("SNR needs non-zero burst and rest")
    return 20.0 * float(np.log10(rb / rr))


def _quiet_spans(x: np.ndarray, rate: float, busy: Sequence[Span]) -> list[Span]:
    """Stretches of windows at most REST_MAX_LEVEL x the quiet level, REST_MARGIN_S away from ``busy``."""
    y, env = datasets.labelling_envelope(x, rate)
    q = datasets.quiet_level(env, rate)
    n = int(round(REST_WINDOW_S * rate))
    m = len(y) // n
    w = np.sqrt(np.mean(y[: m * n].reshape(m, n) ** 2, axis=1))
    ok = w <= REST_MAX_LEVEL * q
    ok[0] = ok[-1] = False  # filter edges
    t0 = np.arange(m) * REST_WINDOW_S
    for a, b in busy:
        ok &= ~((t0 < b + REST_MARGIN_S) & (t0 + REST_WINDOW_S > a - REST_MARGIN_S))
    spans = []
    for a, b in datasets._segments(ok):
        if (b - a) * REST_WINDOW_S >= REST_MIN_S:
            spans.append((a * REST_WINDOW_S, b * REST_WINDOW_S))
    return spans


def _cut(x: np.ndarray, band: np.ndarray, rate: float, a: float, b: float, origin: str) -> Piece:
    i, j = int(round(a * rate)), int(round(b * rate))
    return Piece(np.array(x[i:j], dtype=float), float(np.sqrt(np.mean(band[i:j] ** 2))), f"{origin}@{a:.3f}-{b:.3f}s")


def _plux_excluded(name: str) -> list[Span]:
    lab = datasets.load_labels(f"{name}.h5") or {}
    return [tuple(e["span"]) for e in lab.get("excluded", [])]


@functools.lru_cache(maxsize=8)
def _library(kind: str, root: str | None, uci_index: int = 0) -> tuple[tuple[Piece, ...], tuple[tuple[Piece, ...], ...]]:
    """``(bursts, rest pools)`` for a source; each rest pool is the quiet stretches of one recording."""
    rate = float(EMG_RATE_HZ)
    bursts: list[Piece] = []
    pools: list[tuple[Piece, ...]] = []
    if kind == "plux":
        for name in datasets.PLUX_NAMES:
            rec = datasets.load_plux(name, root)
            if rec.emg_rate != rate:
                raise ValueError(f"{rec.name}: expected {rate:g} Hz")
            x = rec.hands[datasets.PLUX_HAND].emg["FLEX"]
            band = _band(x, rate)
            spans = [(a.onset, a.end) for a in rec.truth("BURST", datasets.PLUX_HAND)]
            if not spans:
                raise FileNotFoundError(f"no label file for {rec.name}")
            bursts += [_cut(x, band, rate, a, b, rec.name) for a, b in spans]
            quiet = _quiet_spans(x, rate, spans + _plux_excluded(name))
            pools.append(tuple(_cut(x, band, rate, a, b, rec.name) for a, b in quiet))
    elif kind == "biosppy":
        rec = datasets.load_biosppy_emg(root)
        x = rec.hands["R"].emg["FLEX"]
        band = _band(x, rec.emg_rate)
        pools.append(tuple(_cut(x, band, rec.emg_rate, a, b, rec.name) for a, b in _quiet_spans(x, rec.emg_rate, [])))
    elif kind == "uci":
        files = datasets.uci_files(root)
        path = files[uci_index % len(files)]
        rec = datasets.load_uci(path)
        x = rec.hands[datasets.UCI_HAND].emg["FLEX"]
        band = _band(x, rate)
        spans = [(a.onset, a.end) for a in rec.truth("BURST", datasets.UCI_HAND)]
        bursts += [_cut(x, band, rate, a, b, rec.name) for a, b in spans]
        pools.append(tuple(_cut(x, band, rate, a, b, rec.name) for a, b in _quiet_spans(x, rate, spans)))
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(kind)
    pools = [p for p in pools if p]
    return tuple(bursts), tuple(pools)


def _background(pool: Sequence[Piece], n: int, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` samples of rest: randomly chosen stretches of ``pool`` joined by raised-cosine crossfades."""
    nf = int(round(CROSSFADE_S * rate))
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(nf) + 0.5) / nf)
    out = np.zeros(0)
    used: list[str] = []
    while len(out) < n:
        p = pool[int(rng.integers(len(pool)))]
        seg = p.x - np.mean(p.x)
        used.append(p.origin)
        if len(out) == 0:
            out = seg.copy()
        else:
            head = out[-nf:] * ramp[::-1] + seg[:nf] * ramp
            out = np.concatenate([out[:-nf], head, seg[nf:]])
    return out[:n], used


def _prepared(p: Piece, rate: float) -> np.ndarray:
    """The raw cut minus its linear trend, with raised-cosine edges."""
    x = p.x
    t = np.arange(len(x))
    x = x - np.polyval(np.polyfit(t, x, 1), t)
    nt = min(int(round(TAPER_S * rate)), len(x) // 4)
    if nt > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(nt) + 0.5) / nt)
        x[:nt] *= ramp
        x[-nt:] *= ramp[::-1]
    return x


def semisynth_recording(snr_db: float, seed: int, *, duration_s: float = 60.0, bursts_from: str = "plux",
                        rest_from: str | None = None, channels: Sequence[str] = ("FLEX",), rest: bool = True,
                        lead_s: float = 6.0, gap_s: tuple[float, float] = (2.0, 6.0), ext_gain_db: float = -12.0,
                        root: Path | str | None = None) -> Recording:
    """A one-hand (``R``) 1000 Hz recording of real bursts in real rest at ``snr_db``, with ``BURST R`` truth.

    * Background: one rest pool of ``rest_from`` (default: the same source as
      ``bursts_from``) picked with ``seed``, its quiet stretches in random order.
    * Bursts: drawn at random (with replacement) from ``bursts_from``; the first
      starts after ``lead_s``, each next one after a gap uniform in ``gap_s``;
      the last ends at least ``gap_s[0]`` before the end. Each is scaled so its
      SNR (:func:`band_snr_db`) is ``snr_db``; its labelled span is the truth.
    * ``channels=("FLEX", "EXT")`` adds an EXT channel of independent rest (other
      stretches of the same pool) carrying each burst at ``ext_gain_db``
      relative to FLEX (a crosstalk model; EXT truth is the FLEX truth).
    * ``rest=True`` annotates ``REST`` over ``[0.5, lead_s - 0.5]`` s (the task
      protocol's calibration step); ``rest=False`` gives a session without REST.

    With ``bursts_from="uci"`` the UCI file is chosen with ``seed`` and its own
    quiet stretches are the background. Deterministic for given arguments.
    """
    if bursts_from not in BURST_SOURCES:
        raise ValueError(f"bursts_from must be one of {BURST_SOURCES}, not {bursts_from!r}")
    rest_from = bursts_from if rest_from is None else rest_from
    if rest_from not in REST_SOURCES:
        raise ValueError(f"rest_from must be one of {REST_SOURCES}, not {rest_from!r}")
    if (bursts_from == "uci") != (rest_from == "uci"):
        raise ValueError("UCI (band-limited Myo) bursts go only with UCI rest, and PLUX bursts only with 1 kHz rest")
    if not set(channels) <= {"FLEX", "EXT"} or "FLEX" not in channels:
        raise ValueError(f"channels must be ('FLEX',) or ('FLEX', 'EXT'), not {tuple(channels)!r}")
    if not (np.isfinite(snr_db) and duration_s > lead_s + gap_s[0] and 0 < gap_s[0] <= gap_s[1] and lead_s > 1.0):
        raise ValueError("need a finite SNR, 1 < lead_s, 0 < gap_min <= gap_max and duration_s > lead_s + gap_min")
    rate = float(EMG_RATE_HZ)
    n = int(round(duration_s * rate))
    rng = np.random.default_rng([int(seed), 12])
    root_s = None if root is None else str(root)
    uci_index = int(rng.integers(1 << 16))
    bursts, _ = _library(bursts_from, root_s, uci_index if bursts_from == "uci" else 0)
    pools = _library(rest_from, root_s,
                     uci_index if rest_from == "uci" else 0)[1]
    if not bursts or not pools:
        raise FileNotFoundError(f"no bursts or rest found for {bursts_from}/{rest_from}")
    pool = pools[int(rng.integers(len(pools)))]
    flex, used = _background(pool, n, rate, rng)
    rms_rest = float(np.sqrt(np.mean(_band(flex, rate) ** 2)))
    ext = _background(pool, n, rate, rng)[0] if "EXT" in channels else None
    gain = 10.0 ** (snr_db / 20.0)
    ann = [Annotation(0.5, lead_s - 1.0, "REST")] if rest else []
    t = lead_s + float(rng.uniform(0.0, gap_s[1] - gap_s[0]))
    origins = []
    while True:
        p = bursts[int(rng.integers(len(bursts)))]
        i = int(round(t * rate))
        if i + len(p.x) > n - int(gap_s[0] * rate):
            break
        add = _prepared(p, rate) * (gain * rms_rest / p.band_rms)
        flex[i:i + len(add)] += add
        if ext is not None:
            ext[i:i + len(add)] += add * 10.0 ** (ext_gain_db / 20.0)
        ann.append(Annotation(i / rate, len(add) / rate, f"BURST {datasets.PLUX_HAND}"))
        origins.append(p.origin)
        t = (i + len(add)) / rate + float(rng.uniform(*gap_s))
    emg = {"FLEX": flex} if ext is None else {"FLEX": flex, "EXT": ext}
    notes = [
        f"semi-synthetic: {len(origins)} real {bursts_from} bursts at SNR {snr_db:g} dB (band RMS burst/rest) "
        f"in real {rest_from} rest ({pool[0].origin.split('@')[0]}), seed {seed}",
        "bursts: " + ", ".join(origins),
    ]
    name = f"semisynth-{bursts_from}-{rest_from}-snr{snr_db:g}-seed{seed}{'' if rest else '-norest'}"
    return Recording(hands={datasets.PLUX_HAND: HandSignals(emg=emg)}, emg_rate=rate, imu_rate=float(IMU_RATE_HZ),
                     annotations=ann, notes=notes, name=name)


def snr_curve(detect: Callable[[Recording], list[dict]], snrs_db: Iterable[float] = DEFAULT_SNRS_DB,
              seeds: Iterable[int] = (0, 1, 2), **kwargs) -> list[dict]:
    """Detection probability and false positives per minute against SNR.

    For each SNR, ``detect`` runs on :func:`semisynth_recording` ``(snr, seed,
    **kwargs)`` for every seed; detected ``burst``/``mirror`` events are matched
    to the truth by :func:`mirrorband.analysis.evaluate.score_recording` (one-to-one,
    overlap). Returns one dict per SNR: ``snr_db``, ``n_recordings``,
    ``n_true``, ``n_detected_true``, ``p_detect`` (= n_detected_true / n_true),
    ``n_false``, ``minutes``, ``fp_per_min`` and ``f1``.
    """
    seeds = list(seeds)
    out = []
    for snr in snrs_db:
        tp = fp = fn = 0
        minutes = 0.0
        for seed in seeds:
            rec = semisynth_recording(float(snr), seed, **kwargs)
            s = score_recording(rec, detect(rec))["burst"]
            tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
            minutes += rec.duration / 60.0
        n_true = tp + fn
        out.append({"snr_db": float(snr), "n_recordings": len(seeds), "n_true": n_true, "n_detected_true": tp,
                    "p_detect": tp / n_true if n_true else None, "n_false": fp, "minutes": minutes,
                    "fp_per_min": fp / minutes if minutes else None, "f1": prf(tp, fp, fn)["f1"]})
    return out
