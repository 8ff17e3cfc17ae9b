"""EDF+/BDF+ reading and writing of two-hand recordings (FORMATS.md §1).

:func:`read_edf` accepts EDF, EDF+C, BDF and BDF+C files, picks the signals of
FORMATS.md §1 by their exact labels, converts physical dimensions to uV, g and
deg/s, and resamples EMG to :data:`~mirrorband.recording.EMG_RATE_HZ` and the
IMU to :data:`~mirrorband.recording.IMU_RATE_HZ` (saying so in
``Recording.notes``). Every problem is a :class:`RecordingError` with one line
naming the file.

:func:`write_edf` writes EDF+C (16-bit) atomically: a temporary file in the
target directory is renamed over the target only once it is complete.

Writing conventions (documented here because readers of our files rely on them):

* signal order: for hand L then R: ``EMG H FLEX``, ``EMG H EXT``,
  ``ACC H X/Y/Z``, ``GYR H X/Y/Z`` (only those present);
* physical min/max per signal = data min/max widened by 1 % of the span
  (at least 1 unit when the signal is constant), rounded outwards to what the
  8-character header field holds; digital range -32768..32767; samples are
  rounded to the nearest step (error <= half a step);
* record duration 1 s when all rates are integers, otherwise the duration
  closest to 1 s (0.001..60 s) that makes every samples-per-record an integer;
* the last record is padded by repeating each signal's last sample, so a read
  back recording may be up to one record longer than what was written (the
  duration is rounded up to whole records, never trimmed);
* annotations are EDF+ TALs with 100 us resolution; a zero duration is written
  without a duration field (read back as 0.0). edflib stores at most 40 bytes
  of text per annotation: longer texts are refused rather than truncated;
* the start date/time is the EDF+ anonymised ``01.01.85 00:00:00`` unless
  ``start_time`` is given (the recording model has no start time).
"""

from __future__ import annotations

import math
import os
import re
import secrets
import warnings
from datetime import datetime
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np

from mirrorband.detect.bandio import Channel, HandChannels, Signals
from mirrorband.recording import (
    EMG_CHANNELS,
    EMG_RATE_HZ,
    HANDS,
    IMU_RATE_HZ,
    MIN_EMG_RATE_HZ,
    Annotation,
    HandSignals,
    Recording,
    RecordingError,
)

#: Lowest IMU rate FORMATS.md §1 allows, in Hz.
MIN_IMU_RATE_HZ = 50
#: Longest annotation text edflib writes (bytes of UTF-8).
MAX_ANNOTATION_BYTES = 40
#: Most annotation signals edflib allows per file.
_MAX_ANNOTATION_SIGNALS = 64
_AXES = ("X", "Y", "Z")
_DIG_MIN, _DIG_MAX = -32768, 32767
_ANON_START = datetime(1985, 1, 1, 0, 0, 0)

_LABEL_RE = re.compile(r"^(?:(EMG) ([LR]) (FLEX|EXT)|(ACC|GYR) ([LR]) ([XYZ]))$")

# Physical dimension (normalised: lower case, no spaces, micro sign -> u) -> factor to our unit.
_EMG_UNITS = {"uv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}
_ACC_UNITS = {
    "g": 1.0,
    "mg": 1e-3,
    "m/s^2": 1 / 9.80665,
    "m/s2": 1 / 9.80665,
    "m/s**2": 1 / 9.80665,
    "m/s\u00b2": 1 / 9.80665,
    "ms^-2": 1 / 9.80665,
    "ms-2": 1 / 9.80665,
}
_GYR_UNITS = {
    "deg/s": 1.0,
    "dps": 1.0,
    "degree/s": 1.0,
    "degrees/s": 1.0,
    "\u00b0/s": 1.0,
    "mdps": 1e-3,
    "rad/s": 180.0 / math.pi,
}
_UNITS = {"EMG": (_EMG_UNITS, "uV"), "ACC": (_ACC_UNITS, "g"), "GYR": (_GYR_UNITS, "deg/s")}


# ---------------------------------------------------------------------------
# reading


def _norm_unit(dim: str) -> str:
    d = dim.strip().replace(" ", "").lower()
    for micro in ("\u00b5", "\u03bc"):  # micro sign, Greek mu
        d = d.replace(micro, "u")
    # edflib transliterates header bytes as Latin-1: a Latin-1 micro sign arrives as "u", a UTF-8
    # one (bytes C2 B5) as "Au".
    if d == "auv":
        d = "uv"
    return d


def _fmt_rate(rate: float) -> str:
    return f"{rate:.6g}"


def _check_header(p: str) -> None:
    """Refuse, before edflib sees it, what is not a complete EDF/BDF file.

    edflib prints a file-size mismatch on the process's C stdout (which would
    corrupt ``replay --json``), so the size is checked here first.
    """
    try:
        size = os.path.getsize(p)
        with open(p, "rb") as f:
            head = f.read(256)
            if len(head) < 256:
                raise RecordingError(f"{p}: not an EDF/BDF file (only {size} bytes)")
            if head[:8] == b"0       ":
                sample_bytes = 2
            elif head[:8] == b"\xffBIOSEMI":
                sample_bytes = 3
            else:
                raise RecordingError(f"{p}: not an EDF/BDF file (no EDF header)")
            try:
                header_bytes = int(head[184:192].decode("ascii"))
                n_records = int(head[236:244].decode("ascii"))
                n_signals = int(head[252:256].decode("ascii"))
            except ValueError:
                raise RecordingError(
                    f"{p}: corrupt EDF header (bad header size, record or signal count)"
                ) from None
            reserved = head[192:236].decode("ascii", "replace").strip()
            if reserved.startswith(("EDF+D", "BDF+D")):
                raise RecordingError(
                    f"{p}: discontinuous {reserved[:5]} recordings are not supported (need EDF+C)"
                )
            if n_signals < 1 or header_bytes != 256 * (n_signals + 1):
                raise RecordingError(
                    f"{p}: corrupt EDF header (header size does not match {n_signals} signals)"
                )
            if n_records < 1:
                raise RecordingError(
                    f"{p}: EDF header gives {n_records} data records (unfinished or corrupt file)"
                )
            rest = f.read(header_bytes - 256)
            if len(rest) < header_bytes - 256:
                raise RecordingError(f"{p}: truncated EDF file (header incomplete)")
        dims = rest[96 * n_signals : 104 * n_signals]
        for i in range(n_signals):
            field = dims[8 * i : 8 * i + 8]
            if any(b < 32 or b > 126 for b in field):
                label = rest[16 * i : 16 * i + 16].decode("ascii", "replace").strip()
                raise RecordingError(
                    f"{p}: physical dimension of {label!r} is not ASCII ({field.decode('latin-1').strip()!r}); "
                    f"EDF headers must be ASCII, e.g. 'uV'"
                )
        off = 216 * n_signals
        try:
            spr = [int(rest[off + 8 * i : off + 8 * i + 8].decode("ascii")) for i in range(n_signals)]
        except ValueError:
            raise RecordingError(f"{p}: corrupt EDF header (bad samples-per-record field)") from None
        expected = header_bytes + n_records * sum(spr) * sample_bytes
        if size < expected:
            raise RecordingError(f"{p}: truncated EDF file ({size} bytes, header announces {expected})")
        if size > expected:
            raise RecordingError(f"{p}: corrupt EDF file ({size} bytes, header announces {expected})")
    except FileNotFoundError:
        raise RecordingError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise RecordingError(f"{p}: is a directory, not an EDF file") from None
    except PermissionError:
        raise RecordingError(f"{p}: permission denied") from None
    except OSError as e:
        raise RecordingError(f"{p}: cannot read ({e.strerror or e})") from None


def _ratio(from_rate: float, to_rate: float) -> tuple[int, int]:
    """(up, down) with up/down ~= to_rate/from_rate, small enough for resample_poly."""
    r = Fraction(to_rate).limit_denominator(1000) / Fraction(from_rate).limit_denominator(1000)
    if max(r.numerator, r.denominator) > 10000:
        r = r.limit_denominator(2000)
    return r.numerator, r.denominator


def _resample(x: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Resample along axis 0 (polyphase, linear end extension against edge ringing)."""
    if math.isclose(from_rate, to_rate, rel_tol=1e-9):
        return x
    from scipy.signal import resample_poly

    up, down = _ratio(from_rate, to_rate)
    return resample_poly(x, up, down, axis=0, padtype="line")


def _rate_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6)


def read_edf(path: str | os.PathLike) -> Recording:
    """Read a two-hand EDF+/BDF+ recording (FORMATS.md §1) at the band's native rates."""
    reader, p = _open(path)
    try:
        rec = _read(reader, p)
        assert isinstance(rec, Recording)
        return rec
    finally:
        reader.close()


def open_edf(path: str | os.PathLike) -> Signals:
    """Open a recording to be read chunk by chunk (the same checks and values as :func:`read_edf`).

    Signals at the band's native rates are read on demand, a range of samples at
    a time; signals that need resampling are read and resampled whole (a
    resampler's output near a chunk boundary would differ). Close the result
    (it is a context manager) when done.
    """
    reader, p = _open(path)
    try:
        sig = _read(reader, p, lazy=True)
        assert isinstance(sig, Signals)
        return sig
    except BaseException:
        reader.close()
        raise


def _open(path: str | os.PathLike):
    p = os.fspath(path)
    _check_header(p)
    import pyedflib

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = pyedflib.EdfReader(p)
    except OSError as e:
        msg = str(e)
        if msg.startswith(p + ": "):
            msg = msg[len(p) + 2 :]
        raise RecordingError(f"{p}: not a readable EDF+/BDF+ file ({msg})") from None
    return reader, p


def _read(reader, p: str, lazy: bool = False):
    """The recording in ``reader``: a :class:`Recording`, or with ``lazy`` :class:`Signals`."""
    notes: list[str] = []

    def note(msg: str) -> None:
        if msg not in notes:
            notes.append(msg)

    # label -> signal index, for the labels of FORMATS.md; everything else is ignored
    found: dict[tuple[str, str, str], int] = {}
    for i in range(reader.signals_in_file):
        label = reader.getLabel(i).rstrip()
        m = _LABEL_RE.match(label)
        if not m:
            continue
        key = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        if key in found:
            raise RecordingError(f"{p}: signal {label!r} occurs twice")
        found[key] = i

    def fetch(kind: str, hand: str, name: str, native: float | None = None) -> tuple[np.ndarray | Channel, float]:
        i = found[(kind, hand, name)]
        label = f"{kind} {hand} {name}"
        units, ours = _UNITS[kind]
        dim = reader.getPhysicalDimension(i)
        factor = units.get(_norm_unit(dim))
        if factor is None:
            raise RecordingError(
                f"{p}: {label} has physical dimension {dim.strip()!r}; expected {ours} "
                f"(or one of {', '.join(sorted(units))})"
            )
        if factor != 1.0:
            note(f"{kind} converted from {dim.strip()} to {ours}")
        rate = float(reader.getSampleFrequency(i))
        if lazy and native is not None and _rate_close(rate, native):
            return Channel(read=partial(reader.readSignal, i), length=int(reader.getNSamples()[i]),
                           factor=factor), rate
        x = reader.readSignal(i).astype(np.float64)
        if factor != 1.0:
            x *= factor
        return x, rate

    hands: dict[str, Any] = {}  # HandSignals, or HandChannels when lazy
    for hand in HANDS:
        mine = [k for k in found if k[1] == hand]
        if not mine:
            continue
        if ("EMG", hand, "FLEX") not in found:
            note(f"hand {hand} has no EMG {hand} FLEX: its other signals are ignored")
            continue
        emg: dict[str, Any] = {}
        flex_rate = 0.0
        for ch in EMG_CHANNELS:
            if ("EMG", hand, ch) not in found:
                continue
            x, rate = fetch("EMG", hand, ch, EMG_RATE_HZ)
            if ch == "FLEX":
                flex_rate = rate
                if rate < MIN_EMG_RATE_HZ - 1e-9:
                    raise RecordingError(
                        f"{p}: EMG {hand} FLEX is sampled at {_fmt_rate(rate)} Hz, below the minimum of "
                        f"{MIN_EMG_RATE_HZ} Hz"
                    )
            elif not _rate_close(rate, flex_rate):
                raise RecordingError(
                    f"{p}: EMG {hand} EXT is sampled at {_fmt_rate(rate)} Hz but EMG {hand} FLEX at "
                    f"{_fmt_rate(flex_rate)} Hz (must be equal)"
                )
            emg[ch] = x
        if not _rate_close(flex_rate, EMG_RATE_HZ):
            for ch in emg:
                emg[ch] = _resample(emg[ch], flex_rate, EMG_RATE_HZ)
            note(f"EMG resampled {_fmt_rate(flex_rate)} Hz -> {EMG_RATE_HZ} Hz")
        if lazy:
            emg = {ch: x if isinstance(x, Channel) else Channel(x) for ch, x in emg.items()}
        imu: dict[str, Any] = {}
        for kind in ("ACC", "GYR"):
            present = [a for a in _AXES if (kind, hand, a) in found]
            if not present:
                imu[kind] = None
                continue
            if len(present) < 3:
                missing = [a for a in _AXES if a not in present]
                raise RecordingError(
                    f"{p}: {kind} {hand} has axes {', '.join(present)} but not {', '.join(missing)} "
                    f"(all three or none)"
                )
            cols, rates = zip(*(fetch(kind, hand, a, IMU_RATE_HZ) for a in _AXES), strict=True)
            if not all(_rate_close(r, rates[0]) for r in rates):
                raise RecordingError(f"{p}: {kind} {hand} X, Y, Z have different sample rates")
            rate = rates[0]
            if rate < MIN_IMU_RATE_HZ - 1e-9:
                raise RecordingError(
                    f"{p}: {kind} {hand} is sampled at {_fmt_rate(rate)} Hz, below the minimum of "
                    f"{MIN_IMU_RATE_HZ} Hz"
                )
            if lazy and all(isinstance(c, Channel) for c in cols):
                imu[kind] = list(cols)
                continue
            arr = np.stack(cols, axis=1)
            if not _rate_close(rate, IMU_RATE_HZ):
                arr = _resample(arr, rate, IMU_RATE_HZ)
                note(f"{kind} resampled {_fmt_rate(rate)} Hz -> {IMU_RATE_HZ} Hz")
            imu[kind] = np.ascontiguousarray(arr)
            if lazy:
                imu[kind] = [Channel(imu[kind][:, j]) for j in range(3)]
        if lazy:
            hands[hand] = HandChannels(emg, imu["ACC"], imu["GYR"])
        else:
            hands[hand] = HandSignals(emg=emg, acc=imu["ACC"], gyr=imu["GYR"])

    if not hands:
        raise RecordingError(f"{p}: no EMG L FLEX or EMG R FLEX signal (not a Mirrorband recording)")

    annotations: list[Annotation] = []
    onsets, durations, texts = reader.readAnnotations()
    for onset, duration, text in zip(onsets, durations, texts, strict=True):
        d = float(duration)
        annotations.append(Annotation(float(onset), d if d > 0 else 0.0, str(text)))
    annotations.sort(key=lambda a: a.onset)

    if lazy:
        return Signals(hands, annotations, EMG_RATE_HZ, IMU_RATE_HZ, os.path.basename(p), notes,
                       closer=reader.close)
    return Recording(
        hands=hands,
        emg_rate=EMG_RATE_HZ,
        imu_rate=IMU_RATE_HZ,
        annotations=annotations,
        notes=notes,
        name=os.path.basename(p),
    )


# ---------------------------------------------------------------------------
# writing


def _header_number(x: float, up: bool) -> float:
    """``x`` rounded outwards (up or down) to a number whose decimal form fits 8 characters."""
    if not math.isfinite(x) or abs(x) >= 1e7:
        raise RecordingError(f"value {x:g} does not fit an EDF header (8 characters)")
    for decimals in range(6, -1, -1):
        q = 10**decimals
        v = (math.ceil(x * q) if up else math.floor(x * q)) / q
        s = f"{v:.{decimals}f}"
        if decimals:
            s = s.rstrip("0").rstrip(".")
        if s == "-0":
            s = "0"
        if len(s) <= 8:
            return float(s)
    raise RecordingError(f"value {x:g} does not fit an EDF header (8 characters)")  # pragma: no cover


def _physical_range(x: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.min(x)), float(np.max(x))
    span = hi - lo
    margin = 0.01 * span if span > 0 else max(1.0, 0.01 * abs(lo))
    return _header_number(lo - margin, up=False), _header_number(hi + margin, up=True)


def _record_duration(rates: list[float]) -> Fraction:
    """Record duration (s) near 1 s that makes ``rate * duration`` an integer for every rate."""
    fracs = []
    for r in rates:
        f = Fraction(r).limit_denominator(1000)
        if not math.isclose(float(f), r, rel_tol=1e-9):
            raise RecordingError(f"sample rate {r!r} Hz cannot be stored in EDF")
        fracs.append(f)
    a = 1
    for f in fracs:
        a = a * f.denominator // math.gcd(a, f.denominator)
    b = 0
    for f in fracs:
        b = math.gcd(b, f.numerator * (a // f.denominator))
    base = Fraction(a, b)  # smallest duration giving integer samples per record

    def fits(d: Fraction) -> bool:
        if not Fraction(1, 1000) <= d <= 60:
            return False
        scaled = d * 10**6
        if scaled.denominator != 1:
            return False
        s = f"{float(d):.6f}".rstrip("0").rstrip(".")
        return len(s) <= 8

    m0 = max(1, round(1 / base))
    for k in range(0, 100000):
        for m in (m0 + k, m0 - k):
            if m >= 1 and fits(m * base):
                return m * base
    raise RecordingError(f"no EDF record duration fits the sample rates {rates}")


def _signal_list(rec: Recording, emg_rate: float, imu_rate: float):
    """[(label, dimension, rate, data)] in the file's signal order."""
    sigs = []
    for hand in HANDS:
        hs = rec.hands.get(hand)
        if hs is None:
            continue
        for ch in EMG_CHANNELS:
            if ch in hs.emg:
                x = _resample(np.asarray(hs.emg[ch], dtype=np.float64), rec.emg_rate, emg_rate)
                sigs.append((f"EMG {hand} {ch}", "uV", emg_rate, x))
        for kind, arr, dim in (("ACC", hs.acc, "g"), ("GYR", hs.gyr, "deg/s")):
            if arr is None:
                continue
            a = _resample(np.asarray(arr, dtype=np.float64), rec.imu_rate, imu_rate)
            for j, axis in enumerate(_AXES):
                sigs.append((f"{kind} {hand} {axis}", dim, imu_rate, np.ascontiguousarray(a[:, j])))
    return sigs


def write_edf(
    rec: Recording,
    path: str | os.PathLike,
    *,
    emg_rate: float | None = None,
    imu_rate: float | None = None,
    start_time: datetime | None = None,
) -> None:
    """Write ``rec`` as EDF+C (FORMATS.md §1), atomically.

    ``emg_rate``/``imu_rate`` resample before writing (default: the recording's
    own rates). ``start_time`` goes into the header (default: the EDF+
    anonymised 1 Jan 1985). Raises :class:`RecordingError` (one line) on any
    failure; the target is then untouched and no temporary file is left.
    """
    p = os.fspath(path)
    emg_rate = float(rec.emg_rate if emg_rate is None else emg_rate)
    imu_rate = float(rec.imu_rate if imu_rate is None else imu_rate)
    if not emg_rate >= MIN_EMG_RATE_HZ:
        raise RecordingError(f"{p}: EMG rate {emg_rate:g} Hz is below the minimum of {MIN_EMG_RATE_HZ} Hz")
    if not imu_rate > 0:
        raise RecordingError(f"{p}: IMU rate must be positive")
    try:
        sigs = _signal_list(rec, emg_rate, imu_rate)
        for label, _, _, x in sigs:
            if len(x) == 0:
                raise RecordingError(f"{p}: {label} has no samples")
            if not np.all(np.isfinite(x)):
                raise RecordingError(f"{p}: {label} contains NaN or infinite values")
        duration = _record_duration(sorted({s[2] for s in sigs}))
    except RecordingError as e:
        msg = str(e)
        raise RecordingError(msg if msg.startswith(p) else f"{p}: {msg}") from None
    spr = [int(Fraction(rate).limit_denominator(1000) * duration) for _, _, rate, _ in sigs]
    n_records = max(math.ceil(len(x) / s) for (_, _, _, x), s in zip(sigs, spr, strict=True))

    annotations = sorted(rec.annotations, key=lambda a: a.onset)
    for a in annotations:
        if len(a.text.encode("utf-8")) > MAX_ANNOTATION_BYTES:
            raise RecordingError(
                f"{p}: annotation text {a.text[:20]!r}... is longer than {MAX_ANNOTATION_BYTES} bytes"
            )
    n_annot_signals = max(1, math.ceil(len(annotations) / n_records))
    if n_annot_signals > _MAX_ANNOTATION_SIGNALS:
        raise RecordingError(f"{p}: too many annotations ({len(annotations)}) for {n_records} data records")

    headers = []
    digital = []
    for (label, dim, rate, x), s in zip(sigs, spr, strict=True):
        lo, hi = _physical_range(x)
        headers.append(
            {
                "label": label,
                "dimension": dim,
                "sample_frequency": rate,
                "physical_min": lo,
                "physical_max": hi,
                "digital_min": _DIG_MIN,
                "digital_max": _DIG_MAX,
                "transducer": "",
                "prefilter": "",
            }
        )
        total = n_records * s
        d = np.rint((x - lo) * ((_DIG_MAX - _DIG_MIN) / (hi - lo)) + _DIG_MIN)
        d = np.clip(d, _DIG_MIN, _DIG_MAX).astype(np.int32)
        if len(d) < total:
            d = np.concatenate([d, np.full(total - len(d), d[-1], dtype=np.int32)])
        digital.append(d.reshape(n_records, s))
    records = np.ascontiguousarray(np.concatenate(digital, axis=1))

    directory = os.path.dirname(os.path.abspath(p))
    tmp = os.path.join(directory, f".{os.path.basename(p)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    import pyedflib

    writer = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer = pyedflib.EdfWriter(tmp, len(sigs), file_type=pyedflib.FILETYPE_EDFPLUS)
            writer.setSignalHeaders(headers)
            writer.setDatarecordDuration(float(duration))
            writer.set_number_of_annotation_signals(n_annot_signals)
            writer.setStartdatetime(start_time or _ANON_START)
            writer.setEquipment("Mirrorband")
            for a in annotations:
                dur = a.duration if a.duration > 0 else -1
                if writer.writeAnnotation(a.onset, dur, a.text) != 0:
                    raise OSError(f"cannot write annotation {a.text!r}")
            for r in range(n_records):
                if writer.blockWriteDigitalSamples(records[r]) < 0:
                    raise OSError("write error (disk full?)")
            writer.close()
            writer = None
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except Exception as e:
        if writer is not None:
            try:
                writer.close()
            except Exception:  # pragma: no cover - already failing
                pass
        try:
            os.remove(tmp)
        except OSError:
            pass
        reason = str(e).replace(tmp, os.path.basename(p)).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, OSError) and e.strerror:
            reason = e.strerror
        raise RecordingError(f"{p}: cannot write ({reason})") from None
