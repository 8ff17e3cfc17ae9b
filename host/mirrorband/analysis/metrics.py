"""Clinical measures of a session (definitions and tolerances: docs/metrics.md).

Everything is computed from a session's steps and events (docs/formats.md §2
objects), except the mirror EMG ratio, which needs the resting hand's EMG
envelope: from the signals when the session has them (imported recordings,
:func:`emg_ratio_from_recording`), otherwise estimated from the events' features
(:func:`emg_ratio_from_events`).

Per writing step ``WRITE W`` the *resting hand* is the other one, H. Per
session, the measures of each resting hand pool all steps in which the other
hand writes. The session's ``grade`` is the larger of the two hands' grades.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mirrorband.recording import Recording

HANDS = ("L", "R")
#: Grade thresholds on the fraction of writing time with mirror activity (docs/metrics.md).
GRADE_FRACTION = (0.02, 0.08, 0.25)
#: Fewer mirror bursts per minute of writing than this is grade 0.
GRADE_MIN_RATE = 0.5
#: A median mirror-burst peak ratio at least this high adds one grade (amplitude, Woods & Teuber).
GRADE_MARKED_PEAK = 20.0
#: Envelope used for the signal-based mirror EMG ratio and the report's plots.
ENVELOPE_BAND_HZ = (20.0, 450.0)


def _other(hand: str) -> str:
    return "R" if hand == "L" else "L"


def _union_within(spans: Sequence[tuple[float, float]], lo: float, hi: float) -> float:
    """Total length of the union of ``spans`` clipped to [lo, hi]."""
    clipped = sorted((max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo))
    tot, cur_a, cur_b = 0.0, None, None
    for a, b in clipped:
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                tot += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None and cur_a is not None:
        tot += cur_b - cur_a
    return tot


def _mean(xs: Sequence[float]) -> float | None:
    return float(np.mean(xs)) if len(xs) else None


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def grade(mirror_per_min: float, fraction: float, median_peak: float | None) -> int:
    """The 0-4 mirror grade of docs/metrics.md."""
    if mirror_per_min < GRADE_MIN_RATE:
        return 0
    g = 1 + sum(fraction >= t for t in GRADE_FRACTION)
    if median_peak is not None and median_peak >= GRADE_MARKED_PEAK:
        g += 1
    return min(4, g)


def _hand_measures(hand: str, writing: Sequence[tuple[float, float]], mirrors: Sequence[dict[str, Any]]
                   ) -> dict[str, Any]:
    """Measures of resting hand ``hand`` over the writing spans of the other hand."""
    write_s = sum(b - a for a, b in writing)
    inside = [e for e in mirrors if any(a <= e["onset_s"] < b for a, b in writing)]
    spans = [(e["onset_s"], e["offset_s"]) for e in inside]
    active = sum(_union_within(spans, a, b) for a, b in writing)
    durations = [e["offset_s"] - e["onset_s"] for e in inside]
    latencies = []
    for a, b in writing:
        first = [e["onset_s"] for e in inside if a <= e["onset_s"] < b]
        if first:
            latencies.append(min(first) - a)
    cci = [e["cci"] for e in inside if e.get("cci") is not None]
    rot = [e["imu_deg"] for e in inside if e.get("imu_deg") is not None]
    peaks = [e["peak_ratio"] for e in inside if e.get("peak_ratio") is not None]
    rate = len(inside) / (write_s / 60.0) if write_s > 0 else 0.0
    frac = active / write_s if write_s > 0 else 0.0
    med_peak = float(np.median(peaks)) if peaks else None
    return {
        "hand": hand,
        "writing_s": _r(write_s),
        "mirror_count": len(inside),
        "mirror_per_min": _r(rate),
        "latency_s": _r(latencies[0]) if latencies else None,
        "mirror_fraction": _r(frac, 4),
        "mean_duration_s": _r(_mean(durations)),
        "max_duration_s": _r(max(durations)) if durations else None,
        "cci": _r(_mean(cci)),
        "imu_deg": _r(_mean(rot), 2),
        "median_peak_ratio": _r(med_peak, 2),
        "grade": grade(rate, frac, med_peak) if write_s > 0 else None,
    }


def session_metrics(steps: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]],
                    emg_ratio: dict[str, float | None] | None = None,
                    emg_ratio_method: str = "events") -> dict[str, Any]:
    """Per-session and per-step measures (JSON-ready; see docs/metrics.md).

    ``emg_ratio`` maps a resting hand to its mirror EMG ratio; when None it is
    estimated from the events (``emg_ratio_method`` then reads ``events``).
    """
    mirrors = [e for e in events if e.get("kind") == "mirror"]
    if emg_ratio is None:
        emg_ratio = emg_ratio_from_events(steps, events)
        emg_ratio_method = "events"
    per_step = []
    for i, s in enumerate(steps):
        kind = s["kind"]
        if not kind.startswith("WRITE "):
            continue
        rest_hand = _other(kind[-1])
        m = _hand_measures(rest_hand, [(s["onset_s"], s["offset_s"])],
                           [e for e in mirrors if e["hand"] == rest_hand])
        m.update(step=i, kind=kind, onset_s=s["onset_s"], offset_s=s["offset_s"])
        per_step.append(m)
    by_hand = {}
    for hand in HANDS:
        writing = [(s["onset_s"], s["offset_s"]) for s in steps if s["kind"] == f"WRITE {_other(hand)}"]
        if not writing:
            continue
        m = _hand_measures(hand, writing, [e for e in mirrors if e["hand"] == hand])
        m["emg_ratio"] = _r(emg_ratio.get(hand))
        by_hand[hand] = m
    graded = [m for m in by_hand.values() if m["grade"] is not None]
    worst = max(graded, key=lambda m: (m["grade"], m["mirror_fraction"]), default=None)
    counts: dict[str, int] = {}
    for e in events:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    return {
        "grade": worst["grade"] if worst else None,
        "grade_hand": worst["hand"] if worst else None,
        "emg_ratio_method": emg_ratio_method,
        "event_counts": counts,
        "peer_unknown": sum(1 for e in events if e.get("peer_unknown")),
        "by_hand": by_hand,
        "steps": per_step,
    }


# --- mirror EMG ratio ---------------------------------------------------------------------

def _spans(steps: Sequence[dict[str, Any]], kind: str) -> list[tuple[float, float]]:
    return [(s["onset_s"], s["offset_s"]) for s in steps if s["kind"] == kind]


def emg_ratio_from_events(steps: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]]
                          ) -> dict[str, float | None]:
    """Estimate from event features: mean baseline-normalised envelope of a hand while the
    other hand writes, relative to its quiet resting level.

    The band's baseline is the quiet resting level, so the reference is 1. Outside
    bursts the envelope is at baseline (ratio 1); a mirror or other burst adds its
    ``area`` (ratio x seconds) in place of its duration. Artifacts are left out.
    """
    out: dict[str, float | None] = {}
    for hand in HANDS:
        spans = _spans(steps, f"WRITE {_other(hand)}")
        total = sum(b - a for a, b in spans)
        if total <= 0 or not _spans(steps, "REST"):
            out[hand] = None
            continue
        extra = 0.0
        for e in events:
            if e["hand"] == hand and e["kind"] in ("mirror", "burst") and e.get("area") is not None \
                    and any(a <= e["onset_s"] < b for a, b in spans):
                extra += e["area"] - (e["offset_s"] - e["onset_s"])
        out[hand] = max(1e-3, (total + extra) / total)
    return out


def envelope(x: np.ndarray, rate: float, mains_hz: int | None, out_rate: float = 20.0) -> np.ndarray:
    """RMS envelope of EMG (uV) per 1/out_rate s, after zero-phase FFT filtering: only
    20-450 Hz kept, and +-1 Hz around the mains frequency and its harmonics removed."""
    x = np.asarray(x, dtype=np.float64)
    spec = np.fft.rfft(x - x.mean())
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    keep = (f >= ENVELOPE_BAND_HZ[0]) & (f <= min(ENVELOPE_BAND_HZ[1], 0.45 * rate))
    if mains_hz:
        keep &= np.abs(f - np.rint(f / mains_hz) * mains_hz) > 1.0
    y = np.fft.irfft(np.where(keep, spec, 0), n=len(x))
    step = max(1, int(round(rate / out_rate)))
    n = len(y) // step
    return np.sqrt(np.mean(y[: n * step].reshape(n, step) ** 2, axis=1))


def _mask(n: int, spans: Sequence[tuple[float, float]], out_rate: float) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for a, b in spans:
        m[max(0, int(a * out_rate)): max(0, int(np.ceil(b * out_rate)))] = True
    return m


def emg_ratio_from_recording(rec: Recording | None, steps: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]],
                             mains_hz: int | None, envelopes: dict[str, np.ndarray] | None = None,
                             out_rate: float = 20.0) -> dict[str, float | None]:
    """Mean FLEX envelope of each hand while the other writes / during quiet ``REST`` (from the signals).

    Quiet rest leaves out every detected event of that hand (and 0.2 s around
    it); the writing periods leave out only artifacts.
    """
    out: dict[str, float | None] = {}
    hands = list(rec.hands) if rec is not None else list(envelopes or {})
    for hand in hands:
        env = envelopes[hand] if envelopes and hand in envelopes else envelope(
            rec.hands[hand].emg["FLEX"], rec.emg_rate, mains_hz, out_rate)  # type: ignore[union-attr]
        n = len(env)
        mine = [e for e in events if e["hand"] == hand]
        arts = _mask(n, [(e["onset_s"] - 0.2, e["offset_s"] + 0.2) for e in mine if e["kind"] == "artifact"], out_rate)
        any_ev = _mask(n, [(e["onset_s"] - 0.2, e["offset_s"] + 0.2) for e in mine], out_rate)
        task = _mask(n, _spans(steps, f"WRITE {_other(hand)}"), out_rate) & ~arts
        rest = _mask(n, _spans(steps, "REST"), out_rate) & ~any_ev
        if task.sum() == 0 or rest.sum() == 0:
            out[hand] = None
            continue
        r = float(env[rest].mean())
        out[hand] = float(env[task].mean()) / r if r > 0 else None
    return out


def truth_events(rec: Recording) -> list[dict[str, Any]]:
    """The simulator's ground truth as event objects (``MIRROR`` -> mirror, ``BURST`` -> burst)."""
    out = []
    for kind, name in (("MIRROR", "mirror"), ("BURST", "burst"), ("ARTIFACT", "artifact")):
        for a in rec.truth(kind):
            hand = a.split()[1]
            if hand:
                out.append({"hand": hand, "kind": name, "onset_s": a.onset, "offset_s": a.end})
    return sorted(out, key=lambda e: (e["onset_s"], e["hand"]))


def for_session(store: Any, session: Any, envelopes: bool = False
                ) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """Measures of a stored :class:`~mirrorband.sessions.session.Session` and, for sessions with
    signals and ``envelopes=True``, each hand's FLEX envelope (uV RMS at 20 Hz).

    Sessions with signals get the signal-based mirror EMG ratio; band sessions the
    estimate from event features.
    """
    from mirrorband.sessions.session import recording_of

    if not session.raw_path:
        return session_metrics(session.steps, session.events), None
    if session.duration_s > LONG_S:
        envs = long_envelopes(store, session)
        ratio = emg_ratio_from_recording(None, session.steps, session.events, session.mains_hz, envs)
        return session_metrics(session.steps, session.events, ratio, "signal"), (envs if envelopes else None)
    rec = recording_of(store, session)
    envs = {h: envelope(sig.emg["FLEX"], rec.emg_rate, session.mains_hz) for h, sig in rec.hands.items()}
    ratio = emg_ratio_from_recording(rec, session.steps, session.events, session.mains_hz, envs)
    return session_metrics(session.steps, session.events, ratio, "signal"), (envs if envelopes else None)


#: Sessions longer than this (s) get their envelopes chunk by chunk, kept beside the recording.
LONG_S = 1800.0
#: Chunk and margin (s) of the chunked envelope; the margin absorbs the filter's edge effects.
ENV_CHUNK_S, ENV_MARGIN_S = 300.0, 20.0


def long_envelopes(store: Any, session: Any, out_rate: float = 20.0) -> dict[str, np.ndarray]:
    """Each hand's FLEX envelope of a long session (as :func:`envelope`, computed over
    overlapping chunks), read from the copy kept beside the recording when there is one.

    The envelope is what the plots show (20 values a second), a few MB for 8 hours:
    opening the session again reads that, not the recording.
    """
    from mirrorband.recording import RecordingError
    from mirrorband.sessions.edf import open_edf
    from mirrorband.sessions.store import StoreError

    raw = store.raw_abspath(session.raw_path)
    cache = raw.with_name(f"{raw.name}.env{int(out_rate)}-{session.mains_hz or 0}.npz")
    if cache.exists():
        with np.load(cache) as z:
            return {h: z[h] for h in z.files}
    try:
        sig = open_edf(raw)
    except RecordingError as e:
        raise StoreError(f"session {session.id}: kept recording unusable ({e})") from None
    out: dict[str, np.ndarray] = {}
    with sig:
        rate = sig.emg_rate
        step = max(1, int(round(rate / out_rate)))
        chunk = int(ENV_CHUNK_S * out_rate) * step
        margin = int(ENV_MARGIN_S * out_rate) * step
        for h, hc in sig.hands.items():
            ch = hc.emg["FLEX"]
            parts = []
            for a in range(0, (len(ch) // step) * step, chunk):
                lo, hi = max(0, a - margin), min(len(ch), a + chunk + margin)
                env = envelope(ch.read(lo, hi), rate, session.mains_hz, out_rate)
                k0 = (a - lo) // step
                parts.append(env[k0:k0 + chunk // step])
            out[h] = np.concatenate(parts)[: len(ch) // step]
    try:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        savez: Any = np.savez
        savez(tmp, **out)
        tmp.replace(cache)
    except OSError:
        pass  # a read-only store: computed again next time
    return out
