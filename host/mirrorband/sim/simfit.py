"""Fit the simulated-patient model v2 (``simulate(..., model=2)``) to the real recordings.

The numbers of model 2 in :mod:`mirrorband.sim.simulate` come from this module,
run over the real recordings in ``../shared/data`` (see the PROVENANCE.md of
each folder and docs/simulator.md, "Model 2", which lists the fitted values)::

    .venv/bin/python -m mirrorband.sim.simfit            # prints the fit as JSON

What is fitted, and from which source:

* **burst spectra** (:func:`fit_spectrum`): a Shwedyk-type power spectrum
  ``P(f) = f0^4 f^2 / (f^2 + f0^2)^3 / (1 + (f/flp)^8)`` fitted per burst (its
  median frequency and power fraction above 150 Hz matched) to the two PLUX
  recordings (1 kHz, broadband: biceps ``emg_bursts``, adductor pollicis
  ``emg_1000_hz_16_bits_solo``). The UCI Myo files are 200 Hz band-limited
  and are not used for spectra.
* **spectral statistics of bursts** (:func:`spectral_stats`): median frequency
  and the fraction of power above 150 Hz (20 Hz high-passed signal).
* **noise floor** (:func:`noise_floor`): RMS and spectral median of the quiet
  parts of the PLUX recordings and of BioSPPy's low-SNR example.
* **movement low-frequency content** (:func:`lfhf_ratio`): Σlf/Σhf of each
  burst, computed the way the band's front end does it (comb ``x[n] - x[n-20]``,
  32-sample box high-pass, 10 ms windows, ``hf = Σ|h| >> 4``,
  ``lf = |box sum| >> 7``), on the UCI gestures (wrist movements; corrected for
  the Myo's sample-and-hold by :func:`bandlimit_hf_factor`, estimated on PLUX;
  the PLUX sensor's analogue high-pass removes motion content, so PLUX bursts
  are not used here); :func:`calibrate_motion_gain` turns that into the gain
  of the model's motion artifact.
* **non-stationary rest** (:func:`uci_rest_levels`): the EMG level of every
  rest period between gestures relative to the first rest period, in the UCI
  Myo files (amplitude ratios are valid despite the band limit).

Nothing here looks at a detector's results.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from scipy import optimize, signal

FIT_BAND_HZ = (20.0, 450.0)
HF_EDGE_HZ = 150.0
#: statistics use 20-500 Hz: what a 1 kHz recording shows, whatever the rate
STATS_TOP_HZ = 500.0
#: Burst segmentation used for fitting: 50 ms RMS envelope, hysteresis on the 10th percentile.
SEG_ENV_S = 0.05
SEG_ON = 8.0  # x the envelope's 10th percentile
SEG_OFF = 4.0
SEG_MIN_S = 0.25
SEG_MERGE_S = 0.15


def shwedyk_psd(f: np.ndarray, fl: float, fh: float) -> np.ndarray:
    """Shwedyk-type sEMG power spectrum shape (peak value ~ 1 for fl ~ fh)."""
    f = np.asarray(f, dtype=float)
    return fh**4 * f**2 / ((f**2 + fl**2) * (f**2 + fh**2) ** 2)


def highpass(x: np.ndarray, fs: float, hz: float = 20.0) -> np.ndarray:
    """4th-order zero-phase Butterworth high-pass."""
    return signal.sosfiltfilt(signal.butter(4, hz, "highpass", fs=fs, output="sos"), np.asarray(x, float))


def segment_bursts(x: np.ndarray, fs: float) -> list[tuple[int, int]]:
    """Bursts of a single-channel recording as ``(start, stop)`` sample indices (for fitting only)."""
    y = highpass(x, fs)
    w = max(1, int(SEG_ENV_S * fs))
    env = np.sqrt(np.convolve(y**2, np.ones(w) / w, "same"))
    base = float(np.percentile(env, 10))
    on = env > SEG_ON * base
    out: list[tuple[int, int]] = []
    i, n = 0, len(env)
    while i < n:
        if not on[i]:
            i += 1
            continue
        a = i
        while a > 0 and env[a - 1] > SEG_OFF * base:
            a -= 1
        b = i
        while b < n and env[b] > SEG_OFF * base:
            b += 1
        if out and a - out[-1][1] < SEG_MERGE_S * fs:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
        i = b + 1
    return [(a, b) for a, b in out if b - a >= SEG_MIN_S * fs]


def spectral_stats(seg: np.ndarray, fs: float) -> tuple[float, float]:
    """(median frequency in Hz, fraction of 20-500 Hz power above 150 Hz) of a 20 Hz high-passed segment."""
    y = highpass(seg, fs)
    f, p = signal.welch(y, fs=fs, nperseg=min(256, len(y)))
    keep = (f >= FIT_BAND_HZ[0]) & (f <= STATS_TOP_HZ)
    f, p = f[keep], p[keep]
    c = np.cumsum(p) / np.sum(p)
    return float(f[np.searchsorted(c, 0.5)]), float(1.0 - c[np.searchsorted(f, HF_EDGE_HZ) - 1])


def model_psd(f: np.ndarray, f0: float, flp: float) -> np.ndarray:
    """Model-2 burst spectrum: Shwedyk-type with fl = fh = ``f0``, times an 8th-order low-pass at ``flp``."""
    f = np.asarray(f, dtype=float)
    return shwedyk_psd(f, f0, f0) / (1.0 + (f / flp) ** 8)


def model_stats(f0: float, flp: float, fs: float = 1000.0) -> tuple[float, float]:
    """(median frequency, fraction above 150 Hz) of :func:`model_psd` over 20 Hz - Nyquist."""
    f = np.linspace(FIT_BAND_HZ[0], fs / 2, 4000)
    p = model_psd(f, f0, flp)
    c = np.cumsum(p) / np.sum(p)
    return float(f[np.searchsorted(c, 0.5)]), float(1.0 - c[np.searchsorted(f, HF_EDGE_HZ)])


def fit_spectrum(seg: np.ndarray, fs: float) -> tuple[float, float]:
    """``(f0, flp)`` of :func:`model_psd` with the burst's median frequency and HF fraction (moment fit).

    A free log-power least-squares fit of the two-corner Shwedyk spectrum to
    these short bursts (0.25-1.4 s) gives spectra with up to 3x the measured
    power above 150 Hz (its f^-4 tail is too heavy for the adductor bursts),
    so the two statistics that matter here are matched instead.
    """
    med, hf = spectral_stats(seg, fs)

    def res(q):
        m, h = model_stats(*np.exp(q))
        return [(m - med) / med, (h - hf) / max(hf, 0.02)]

    best = None
    for start in ((60.0, 300.0), (90.0, 200.0), (120.0, 160.0), (50.0, 1000.0)):
        r = optimize.least_squares(res, np.log(start), bounds=(np.log([10.0, 100.0]), np.log([400.0, 3000.0])),
                                   diff_step=1e-3)
        if best is None or r.cost < best.cost:
            best = r
    f0, flp = np.exp(best.x)
    return float(f0), float(flp)


def lfhf_ratio(uv: np.ndarray, fs: float, spans: list[tuple[float, float]], mains_hz: int = 50) -> list[float]:
    """Σlf/Σhf over each ``(onset_s, offset_s)`` span, as the band's front end measures it.

    The signal (uV) is resampled to 1 kHz and quantised as the band's ADC
    (:func:`mirrorband.detect.bandio.emg_counts`), then run through the band's own
    front end (:func:`mirrorband.detect.fastpath.emg_condition`: comb notch, box
    high-pass, 10 ms windows); per window ``hf = raw >> 4`` as the detector
    sums it. Only the front end: no detector decision is used.
    """
    from mirrorband.detect.bandio import WINDOW, emg_counts
    from mirrorband.detect.fastpath import emg_condition

    x = np.asarray(uv, float)
    if fs != 1000.0:
        up, down = _ratio(fs)
        x = signal.resample_poly(x, up, down)
    x = x[: len(x) // WINDOW * WINDOW]
    raw, lf = emg_condition(emg_counts(x), mains_hz)
    hf = raw >> 4
    out = []
    for a, b in spans:
        i0, i1 = int(a * 100), max(int(a * 100) + 1, int(b * 100))
        out.append(float(lf[i0:i1].sum()) / max(1.0, float(hf[i0:i1].sum())))
    return out


def _ratio(fs: float) -> tuple[int, int]:
    from fractions import Fraction

    fr = Fraction(1000, 1) / Fraction(fs).limit_denominator(1000)
    return fr.numerator, fr.denominator


def noise_floor(x: np.ndarray, fs: float) -> tuple[float, float]:
    """(RMS in uV, median frequency) of the quietest 20 % of 0.5 s blocks of the 20 Hz high-passed signal."""
    y = highpass(x, fs)
    w = int(0.5 * fs)
    blocks = y[: len(y) // w * w].reshape(-1, w)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    quiet = blocks[rms <= np.percentile(rms, 20)].ravel()
    f, p = signal.welch(quiet, fs=fs, nperseg=256)
    keep = f >= 20
    c = np.cumsum(p[keep]) / np.sum(p[keep])
    return float(np.sqrt(np.mean(quiet**2))), float(f[keep][np.searchsorted(c, 0.5)])


def uci_rest_levels(root=None) -> list[float]:
    """RMS of every later rest run / RMS of the first rest run (FLEX electrode), over all UCI files."""
    from mirrorband.analysis.datasets import load_uci, uci_files

    ratios = []
    for path in uci_files(root):
        rec = load_uci(path)
        x = rec.hands["R"].emg["FLEX"]
        x = x - np.mean(x)
        rests = [a for a in rec.annotations if a.text == "REST" and a.duration >= 1.0]
        lv = []
        for a in rests:
            s = x[int((a.onset + 0.3) * 1000) : int((a.end - 0.3) * 1000)]
            lv.append(float(np.sqrt(np.mean((s - s.mean()) ** 2))))
        ratios += [v / lv[0] for v in lv[1:]]
    return ratios


def uci_burst_lfhf(root=None) -> list[float]:
    """Σlf/Σhf of every UCI gesture (cue interval, FLEX electrode): bursts that move the wrist."""
    from mirrorband.analysis.datasets import load_uci, uci_files

    out: list[float] = []
    for path in uci_files(root):
        rec = load_uci(path)
        x = rec.hands["R"].emg["FLEX"]
        out += lfhf_ratio(x - np.mean(x), rec.emg_rate, [(a.onset, a.end) for a in rec.truth("BURST")])
    return out


def bandlimit_hf_factor(x: np.ndarray, spans: list[tuple[float, float]]) -> float:
    """Median Σhf(Myo-like 200 Hz sample-and-hold copy) / Σhf(original) over bursts of a 1 kHz signal.

    The UCI Myo files lack the EMG above ~100 Hz, which lowers Σhf; this factor
    corrects their Σlf/Σhf to what a broadband recording would have shown.
    """
    z = np.repeat(signal.resample_poly(x, 1, 5), 5)[: len(x)]
    full = lfhf_ratio(x, 1000.0, spans)
    held = lfhf_ratio(z, 1000.0, spans)
    return float(np.median(np.array(full) / np.array(held)))


def calibrate_motion_gain(targets: list[float], f0: float, flp: float, seed: int = 0) -> list[float]:
    """Motion-artifact gains of model 2 (``simulate.motion_waveform``) that give each Σlf/Σhf target.

    A 1 s burst of 50 uV RMS with the (f0, flp) spectrum plus 2 uV noise, the
    model's motion waveform at ``gain`` x the burst RMS added, measured with
    :func:`lfhf_ratio`; the gain of each target is interpolated over a grid
    (median over 12 bursts).
    """
    from mirrorband.sim import simulate as sim

    rng = np.random.default_rng(seed)
    fs, n = 1000.0, 1000
    t = np.arange(3 * n) / fs
    grid = np.linspace(0.0, 3.0, 61)
    ratios = np.zeros((12, len(grid)))
    shape = np.sqrt(model_psd(np.fft.rfftfreq(3 * n, 1 / fs), f0, flp))
    for k in range(12):
        car = sim._carrier(rng, shape, 3 * n)
        env = np.zeros(3 * n)
        env[n : 2 * n] = 1.0
        rms = 50.0
        emg = car * env * rms + 2.0 * rng.standard_normal(3 * n)
        mot = sim.motion_waveform(rng, t, env, fs, emd_s=0.05)
        for j, g in enumerate(grid):
            ratios[k, j] = lfhf_ratio(emg + g * rms * mot, fs, [(1.0, 2.0)])[0]
    med = np.median(ratios, axis=0)
    return [float(np.interp(v, med, grid)) for v in targets]


def fit_all(root=None) -> dict:
    """Run every fit over the shared data; a JSON-able summary (docs/simulator.md, Model 2)."""
    from mirrorband.analysis.datasets import PLUX_NAMES, load_biosppy_emg, load_plux

    out: dict = {"plux": {}, "noise_floor": {}}
    pairs, plux_lfhf, factors = [], [], []
    for name in PLUX_NAMES:
        rec = load_plux(name, root)
        x = rec.hands["R"].emg["FLEX"]
        x = x - np.mean(x)
        fs = rec.emg_rate
        segs = segment_bursts(x, fs)
        spans = [(a / fs, b / fs) for a, b in segs]
        per = []
        for a, b in segs:
            med, hf = spectral_stats(x[a:b], fs)
            f0, flp = fit_spectrum(x[a:b], fs)
            per.append((med, hf, f0, flp, *model_stats(f0, flp, fs)))
            pairs.append((round(f0), round(flp)))
        lfhf = lfhf_ratio(x, fs, spans)
        plux_lfhf += lfhf
        factors.append(bandlimit_hf_factor(x, spans))
        arr = np.array(per)
        out["plux"][name] = {
            "bursts": len(segs),
            "duration_s": _q(np.array([(b - a) / fs for a, b in segs])),
            "median_hz": _q(arr[:, 0]),
            "hf_fraction": _q(arr[:, 1]),
            "f0_hz": _q(arr[:, 2]),
            "flp_hz": _q(arr[:, 3]),
            "fit_median_hz_error": _q(arr[:, 4] - arr[:, 0]),
            "fit_hf_fraction_error": _q(arr[:, 5] - arr[:, 1]),
            "lfhf": _q(np.array(lfhf)),
        }
        out["noise_floor"][name] = dict(zip(("rms_uv", "median_hz"), noise_floor(x, fs), strict=True))
    out["spectra_f0_flp"] = pairs
    bs = load_biosppy_emg(root)
    out["noise_floor"]["biosppy"] = dict(
        zip(("rms_uv", "median_hz"), noise_floor(bs.hands["R"].emg["FLEX"], bs.emg_rate), strict=True)
    )
    factor = float(np.median(factors))
    out["bandlimit_hf_factor"] = factor
    uci = np.array(uci_burst_lfhf(root)) / factor
    out["uci_lfhf_corrected"] = _q(uci)
    lo, hi = float(np.percentile(uci, 10)), float(np.percentile(uci, 90))
    f0_m = float(np.median([p[0] for p in pairs]))
    flp_m = float(np.median([p[1] for p in pairs]))
    out["motion_gain_range"] = tuple(round(g, 3) for g in calibrate_motion_gain([lo, hi], f0_m, flp_m))
    out["uci_rest_ratio"] = _q(np.array(uci_rest_levels(root)))
    out["uci_transition_ratio"] = _q(np.array(uci_transition_levels(root)))
    return out


def uci_transition_levels(root=None) -> list[float]:
    """RMS of the unmarked (class 0) runs between gestures / RMS of the first rest run (10 Hz high-passed)."""
    from mirrorband.analysis.datasets import (
        _segments,
        hold_on_grid,
        read_uci_table,
        uci_electrodes,
        uci_files,
    )

    out: list[float] = []
    for path in uci_files(root):
        t, ch, cls = read_uci_table(path)
        flex, _ext = uci_electrodes(ch, cls)
        g = hold_on_grid(t, np.column_stack([ch[:, flex], cls]))
        y = highpass(g[:, 0] * 1e6, 1000.0, 10.0)
        c = g[:, 1].astype(np.int64)
        first = _segments(c == 1)[0]
        ref = float(np.sqrt(np.mean(y[first[0] : first[1]] ** 2)))
        for a, b in _segments(c == 0):
            if b - a >= 1000 and a > first[1]:
                out.append(float(np.sqrt(np.mean(y[a:b] ** 2))) / ref)
    return out


def _q(a: np.ndarray) -> dict:
    a = np.asarray(a, float)
    return {k: round(float(np.percentile(a, p)), 4) for k, p in (("p10", 10), ("median", 50), ("p90", 90))} | {
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
    }


def main(argv: list[str] | None = None) -> int:
    try:
        res = fit_all()
    except FileNotFoundError as e:
        print(f"simfit: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
