"""Loaders turning the real recordings in ``../shared/data`` into :class:`Recording`\\ s.

The folder defaults to ``<repo>/../shared/data`` and is overridden by the
environment variable ``MIRRORBAND_SHARED_DATA``. Each folder's PROVENANCE.md
gives source, licence and format; docs/evaluation.md explains the conversion
choices made here (electrode choice, ground truth, scales). Every loader raises
:class:`FileNotFoundError` when its files are absent; the data are never copied
into the repository.

* :func:`load_uci` -- UCI "EMG data for gestures" (Myo armband), one right hand,
  ``FLEX`` + ``EXT`` chosen among the 8 electrodes, ``BURST R`` ground truth from
  the cue classes.
* :func:`load_plux` -- PLUX OpenSignals HDF5 samples, one channel, ``BURST R``
  truth from our own annotations in ``mirrorband/labels/`` (docs/realdata.md).
* :func:`load_biosppy_emg` -- BioSPPy's low-SNR example, one channel, no truth
  (docs/realdata.md says why it stays unscored).
* :func:`real_sources` -- every real source that has ground truth, by source name.
* :func:`rule_bursts` -- the envelope rule that drafted those annotations before
  they were checked by eye (never the Mirrorband detector).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np

from mirrorband.recording import EMG_RATE_HZ, IMU_RATE_HZ, Annotation, HandSignals, Recording

UCI_DIR = "uci_emg_gestures_myo"
PLUX_DIR = "plux_biosignalsnotebooks"
BIOSPPY_DIR = "biosppy_examples"
PLUX_NAMES = ("emg_bursts", "emg_1000_hz_16_bits_solo")

#: UCI classes (PROVENANCE.md): 0 unmarked/transition, 1 rest, 2..7 gestures.
UCI_REST = 1
UCI_FIRST_GESTURE = 2
UCI_WRIST_FLEXION = 3
UCI_WRIST_EXTENSION = 4
#: The hand the Myo was worn on in the UCI data set.
UCI_HAND = "R"
#: Placeholder hand of the one-channel PLUX and BioSPPy recordings.
PLUX_HAND = "R"

#: PLUX EMG sensor transfer function (PROVENANCE.md): VCC and gain.
PLUX_VCC = 3.0
PLUX_GAIN = 1000.0
#: Assumed scale of the BioSPPy example: one 12-bit count taken as one microvolt.
BIOSPPY_UV_PER_COUNT = 1.0

#: Our burst annotations of unlabelled recordings (JSON, one file per recording).
LABELS_DIR = Path(__file__).resolve().parent / "labels"


def shared_data_dir() -> Path:
    """``$MIRRORBAND_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("MIRRORBAND_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _folder(name: str, root: Path | str | None) -> Path:
    p = (Path(root) if root is not None else shared_data_dir()) / name
    if not p.is_dir():
        raise FileNotFoundError(f"shared data folder not found: {p}")
    return p


# --------------------------------------------------------------------------- UCI (Myo)


def uci_files(root: Path | str | None = None) -> list[Path]:
    """The UCI gesture recordings (``*.txt.gz``), sorted by name."""
    folder = _folder(UCI_DIR, root)
    files = sorted(folder.glob("*.txt.gz"))
    if not files:
        raise FileNotFoundError(f"no UCI recordings (*.txt.gz) in {folder}")
    return files


def read_uci_table(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(time_ms, channels (n, 8) in volts-like units, class)`` as stored in the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"UCI recording not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        header = f.readline().split()
        data = np.loadtxt(f, ndmin=2)
    if header[:1] != ["time"] or header[-1:] != ["class"] or data.shape[1] != 10:
        raise ValueError(f"{path.name}: not a UCI gesture file (header {header})")
    return data[:, 0], data[:, 1:9], data[:, 9].astype(np.int64)


def hold_on_grid(time_ms: np.ndarray, values: np.ndarray, rate: float = EMG_RATE_HZ) -> np.ndarray:
    """Zero-order hold of irregular rows onto a uniform grid starting at t = 0.

    Grid sample ``k`` is at ``k / rate`` s and takes the last row whose time is
    <= that instant (the first row before the first time stamp). The grid ends
    at the last time stamp.
    """
    t = np.asarray(time_ms, dtype=float) / 1000.0
    if len(t) == 0 or np.any(np.diff(t) < 0):
        raise ValueError("time stamps must be non-empty and non-decreasing")
    n = int(np.floor(t[-1] * rate + 1e-9)) + 1
    grid = np.arange(n) / rate
    idx = np.searchsorted(t, grid + 1e-9, side="right") - 1
    return np.asarray(values)[np.clip(idx, 0, len(t) - 1)]


def uci_electrodes(channels: np.ndarray, cls: np.ndarray) -> tuple[int, int]:
    """The electrodes (0-based) used as FLEX and EXT, chosen with the labels.

    FLEX: the electrode with the largest RMS during wrist flexion (class 3);
    EXT: the one with the largest RMS during wrist extension (class 4), or the
    next largest when that is the FLEX electrode. Like a clinician placing
    electrodes over the muscle that moves the wrist, but it reads the labels.
    """
    x = np.asarray(channels, dtype=float)

    def rms(k: int) -> np.ndarray:
        sel = cls == k
        if not np.any(sel):
            raise ValueError(f"no class-{k} rows to choose electrodes from")
        return np.sqrt(np.mean(x[sel] ** 2, axis=0))

    flex = int(np.argmax(rms(UCI_WRIST_FLEXION)))
    ext_order = np.argsort(-rms(UCI_WRIST_EXTENSION), kind="stable")
    ext = int(ext_order[0] if ext_order[0] != flex else ext_order[1])
    return flex, ext


def _segments(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def load_uci(path: Path | str, *, rest: bool = True, electrodes: tuple[int, int] | None = None) -> Recording:
    """A UCI Myo gesture file as a one-hand (``R``) recording at 1000 Hz.

    * rows are held onto a uniform 1000 Hz grid by their time column;
    * ``FLEX``/``EXT`` are the electrodes of :func:`uci_electrodes` (or
      ``electrodes=(flex, ext)``, 0-based), scaled x1e6 to microvolts;
    * each contiguous run of class >= 2 becomes a ``BURST R`` annotation
      (cue-based, see docs/evaluation.md: muscle activity starts before and
      ends after these intervals);
    * with ``rest=True`` each class-1 run (the prompt told the subject to rest)
      becomes a ``REST`` task annotation; no ``WRITE`` is added.
    """
    path = Path(path)
    time_ms, channels, cls = read_uci_table(path)
    flex, ext = electrodes if electrodes is not None else uci_electrodes(channels, cls)
    grid = hold_on_grid(time_ms, np.column_stack([channels[:, [flex, ext]], cls]))
    emg = {"FLEX": grid[:, 0] * 1e6, "EXT": grid[:, 1] * 1e6}
    gcls = grid[:, 2].astype(np.int64)
    rate = float(EMG_RATE_HZ)
    ann = [Annotation(a / rate, (b - a) / rate, f"BURST {UCI_HAND}") for a, b in _segments(gcls >= UCI_FIRST_GESTURE)]
    if rest:
        ann += [Annotation(a / rate, (b - a) / rate, "REST") for a, b in _segments(gcls == UCI_REST)]
    ann.sort(key=lambda a: (a.onset, a.text))
    changes = int(np.count_nonzero(np.any(np.diff(channels, axis=0) != 0, axis=1)))
    span_s = (time_ms[-1] - time_ms[0]) / 1000.0
    notes = [
        f"UCI Myo file {path.name}: {len(time_ms)} irregular rows held onto a 1000 Hz grid by the time column",
        f"Myo armband: nominal 200 Hz sampling, values change {changes / span_s:.0f} times/s here (sample-and-hold): "
        "~200 Hz effective rate at best, no EMG content above ~50-100 Hz (steps add spurious harmonics)",
        f"FLEX = channel{flex + 1}, EXT = channel{ext + 1} "
        + ("(given)" if electrodes is not None else "(most active in wrist flexion / extension, chosen with labels)"),
        "BURST R truth = cue classes >= 2 (activity starts before and ends after them)",
    ]
    return Recording(hands={UCI_HAND: HandSignals(emg=emg)}, emg_rate=rate, imu_rate=float(IMU_RATE_HZ),
                     annotations=ann, notes=notes, name=path.name)


# --------------------------------------------------------------------------- PLUX


def plux_adc_to_uv(adc: np.ndarray, resolution: int) -> np.ndarray:
    """PLUX EMG sensor: ``(ADC / 2**res - 0.5) * VCC / gain`` volts, in microvolts."""
    return (np.asarray(adc, dtype=float) / 2.0 ** resolution - 0.5) * PLUX_VCC / PLUX_GAIN * 1e6


def load_plux(name: str, root: Path | str | None = None, *, labels: bool = True) -> Recording:
    """A PLUX sample (``emg_bursts`` or ``emg_1000_hz_16_bits_solo``) as a one-channel ``R`` FLEX recording.

    With ``labels=True`` (default) and a label file in ``mirrorband/labels/``
    (:func:`load_labels`), each labelled burst becomes a ``BURST R``
    annotation; these are our own annotations (docs/realdata.md), not the
    data set's. ``labels=False`` loads the signal alone. No ``REST`` is
    added. The hand is unknown (biceps / adductor pollicis, not the forearm);
    ``R`` is a placeholder.
    """
    import h5py

    stem = name[:-3] if name.endswith(".h5") else name
    folder = _folder(PLUX_DIR, root)
    path = folder / f"{stem}.h5"
    if not path.exists():
        raise FileNotFoundError(f"PLUX recording not found: {path}")
    with h5py.File(path, "r") as f:
        dev = next(iter(f.values()))
        rate = float(np.ravel(dev.attrs["sampling rate"])[0])
        res = int(np.ravel(dev.attrs["resolution"])[0])
        raw = dev["raw"]
        chans = sorted(k for k in raw if k.startswith("channel_"))
        emg_chans = [k for k in chans if str(raw[k].attrs.get("sensor", "")) == "EMG"] or chans
        if not emg_chans:
            raise ValueError(f"{path.name}: no raw channel")
        ch = emg_chans[0]
        adc = raw[ch][:, 0]
    uv = plux_adc_to_uv(adc, res)
    lab = load_labels(path.name) if labels else None
    truth = ("no ground truth" if lab is None else
             f"BURST R truth = our {len(lab['bursts'])} annotated bursts ({label_path(path.name).name}, docs/realdata.md)")
    notes = [f"PLUX {path.name}: {ch}, {res}-bit ADC -> uV with VCC {PLUX_VCC} V, gain {PLUX_GAIN:g}; {truth}"]
    ann = [] if lab is None else [Annotation(a, b - a, f"BURST {PLUX_HAND}") for a, b in lab["bursts"]]
    info = folder / f"{stem}_info.json"
    if info.exists():
        obs = json.loads(info.read_text()).get("Observations")
        if obs:
            notes.append(f"muscle/protocol: {obs}")
    lo, hi = plux_adc_to_uv(np.array([0, 2**res - 1]), res)
    clipped = int(np.count_nonzero((uv <= lo + 50) | (uv >= hi - 50)))
    if clipped:
        notes.append(f"{clipped} samples within 50 uV of the ADC range ({lo:.0f}..{hi:.0f} uV)")
    if ann and ann[-1].end > len(uv) / rate + 1e-6:
        raise ValueError(f"{label_path(path.name).name}: a burst ends after the recording ({len(uv) / rate:.3f} s)")
    return Recording(hands={PLUX_HAND: HandSignals(emg={"FLEX": uv})}, emg_rate=rate, imu_rate=float(IMU_RATE_HZ),
                     annotations=ann, notes=notes, name=path.name)


# --------------------------------------------------------------------------- BioSPPy


def load_biosppy_emg(root: Path | str | None = None) -> Recording:
    """BioSPPy's ``emg.txt`` (1000 Hz, 12-bit counts) as a one-channel ``R`` FLEX recording.

    The mean is removed and one count is taken as one microvolt
    (:data:`BIOSPPY_UV_PER_COUNT`, an assumption: the file gives no
    transfer function). No ground truth; muscle and hand unknown.
    """
    folder = _folder(BIOSPPY_DIR, root)
    path = folder / "emg.txt"
    if not path.exists():
        raise FileNotFoundError(f"BioSPPy EMG not found: {path}")
    rate = float(EMG_RATE_HZ)
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            if "Sampling Rate" in line:
                rate = float(line.split("=")[-1])
    x = np.loadtxt(path, comments="#", ndmin=1).astype(float)
    uv = (x - x.mean()) * BIOSPPY_UV_PER_COUNT
    notes = [f"BioSPPy emg.txt: 12-bit counts minus their mean, 1 count taken as {BIOSPPY_UV_PER_COUNT:g} uV "
             "(assumed; no transfer function given); low SNR; no ground truth"]
    return Recording(hands={"R": HandSignals(emg={"FLEX": uv})}, emg_rate=rate, imu_rate=float(IMU_RATE_HZ),
                     notes=notes, name=path.name)


# --------------------------------------------------------------------------- annotation rule and labels


def labelling_envelope(x: np.ndarray, rate: float, band: tuple[float, float] = (20.0, 450.0),
                       window_s: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(band-passed signal, RMS envelope)`` used to draft burst annotations.

    Zero-phase (forward-backward) 4th-order Butterworth band-pass ``band`` Hz
    after removing the mean, then a centred moving RMS over ``window_s``.
    Detector-independent: nothing here comes from the Mirrorband pipeline.
    """
    from scipy import signal

    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or len(x) < 3 * int(rate):
        raise ValueError("labelling needs a 1-D signal of at least 3 s")
    hi = min(band[1], 0.45 * rate)
    sos = signal.butter(4, [band[0], hi], btype="bandpass", fs=rate, output="sos")
    y = signal.sosfiltfilt(sos, x - np.mean(x))
    n = max(1, int(round(window_s * rate)))
    env = np.sqrt(np.maximum(np.convolve(y * y, np.ones(n) / n, mode="same"), 0.0))
    return y, env


def quiet_level(env: np.ndarray, rate: float, window_s: float = 1.0, quantile: float = 0.1) -> float:
    """The rest level: the ``quantile`` of the RMS of ``env`` over consecutive ``window_s`` windows."""
    n = int(round(window_s * rate))
    m = len(env) // n
    if m < 2:
        raise ValueError("quiet_level needs at least two windows")
    w = np.sqrt(np.mean(np.asarray(env[: m * n], dtype=float).reshape(m, n) ** 2, axis=1))
    return float(np.quantile(w, quantile))


def rule_bursts(x: np.ndarray, rate: float, *, k_on: float = 10.0, k_off: float = 3.0, merge_s: float = 0.25,
                min_s: float = 0.1) -> list[tuple[float, float]]:
    """Draft burst annotations ``[(onset_s, offset_s), ...]`` by a documented envelope rule.

    Envelope of :func:`labelling_envelope`; level ``q`` of :func:`quiet_level`.
    Runs of ``env > k_off * q`` separated by less than ``merge_s`` are joined;
    a joined run is a burst when it reaches ``k_on * q`` and lasts at least
    ``min_s``. This only drafts the labels: every burst is then checked
    on plots and corrected by hand (docs/realdata.md).
    """
    if not 1.0 < k_off <= k_on:
        raise ValueError("need 1 < k_off <= k_on")
    _y, env = labelling_envelope(x, rate)
    q = quiet_level(env, rate)
    hi = env > k_on * q
    merged: list[list[int]] = []
    for a, b in _segments(env > k_off * q):
        if merged and a - merged[-1][1] < merge_s * rate:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    return [(a / rate, b / rate) for a, b in merged if b - a >= min_s * rate and hi[a:b].any()]


def label_path(recording: str) -> Path:
    """The label file of ``recording`` (``emg_bursts.h5`` -> ``labels/emg_bursts.json``)."""
    stem = Path(recording).name
    for ext in (".h5", ".txt", ".edf"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    return LABELS_DIR / f"{stem}.json"


def load_labels(recording: str) -> dict | None:
    """Our annotation of ``recording`` (dict with ``bursts`` as ``[[on, off], ...]``), or ``None``.

    Raises :class:`ValueError` on a malformed label file.
    """
    p = label_path(recording)
    if not p.exists():
        return None
    try:
        d = json.loads(p.read_text())
        bursts = [(float(a), float(b)) for a, b in d["bursts"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{p.name}: malformed label file ({e})") from e
    for k in ("recording", "method", "annotator"):
        if not isinstance(d.get(k), str):
            raise ValueError(f"{p.name}: label file needs a string {k!r}")
    ends_before_next = all(bursts[i][1] <= bursts[i + 1][0] for i in range(len(bursts) - 1))
    if any(not 0 <= a < b for a, b in bursts) or not ends_before_next:
        raise ValueError(f"{p.name}: bursts must be increasing, non-overlapping [onset, offset] pairs")
    d["bursts"] = bursts
    return d


def real_sources(root: Path | str | None = None) -> dict[str, list[Recording]]:
    """Every real source in the shared folder that has ground truth, keyed by source name.

    * ``"uci"``: the UCI files (:func:`load_uci`, with their ``REST``
      annotations and cue-based ``BURST R`` truth);
    * ``"plux"``: the PLUX recordings that have a label file (:func:`load_plux`).

    BioSPPy's ``emg.txt`` has no label file (docs/realdata.md: its bursts are
    not unambiguous) and is therefore not a source here. A source whose folder
    or files are absent is left out.
    """
    out: dict[str, list[Recording]] = {}
    try:
        files = uci_files(root)
    except FileNotFoundError:
        files = []
    if files:
        out["uci"] = [load_uci(p) for p in files]
    plux = []
    for name in PLUX_NAMES:
        if load_labels(f"{name}.h5") is None:
            continue
        try:
            plux.append(load_plux(name, root))
        except FileNotFoundError:
            continue
    if plux:
        out["plux"] = plux
    return out
