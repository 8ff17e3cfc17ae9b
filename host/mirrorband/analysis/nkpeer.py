"""NeuroKit2 as a peer detector, with the band's task rule (for ``mirrorband bench``).

For each hand, ``neurokit2.emg_process`` runs on ``FLEX`` and, when present,
``EXT`` with its defaults (0.2.13: 4th-order 100 Hz Butterworth high-pass,
zero-phase, and constant detrend; TKEO; 10-400 Hz band-pass, rectification
and 8 Hz low-pass envelope; activity where the envelope exceeds one tenth of
its standard deviation over the *whole* signal; activations shorter than 50
ms, or not preceded by at least 50 ms of inactivity, are dropped). Runs of
``EMG_Activity == 1`` are the channel's bursts; overlapping (or touching)
bursts of the two channels are united into hand bursts.

Each hand burst is classified from the task protocol alone, as the band does
when it has no peer (activity beacon) information:

* onset inside the hand's own ``WRITE`` step: the task, not reported;
* onset inside a ``WRITE`` step of the other hand: ``mirror``;
* otherwise: ``burst``.

Ground-truth annotations are never read. NeuroKit2 is imported on first use
(it takes ~2 s to import); it is an optional dependency (``mirrorband[bench]``).
Timing is left to the caller.
"""

from __future__ import annotations

import warnings

import numpy as np

from mirrorband.recording import EMG_CHANNELS, TASK_WRITE, Recording

#: Channels shorter than this (samples) are not processed: NeuroKit2's filters and
#: its 50 ms rest-before-activation rule cannot work on them.
MIN_SAMPLES = 200


def _neurokit():
    try:
        import neurokit2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the NeuroKit2 peer needs neurokit2 (pip install 'mirrorband[bench]')") from e
    return neurokit2


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Runs of true values as ``(start, stop)`` sample indices (stop exclusive)."""
    a = np.asarray(active, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate(([0], a, [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def channel_activity(signal: np.ndarray, rate: float) -> np.ndarray:
    """NeuroKit2's ``EMG_Activity`` (0/1 per sample) for one channel, warnings silenced."""
    x = np.asarray(signal, dtype=float)
    if len(x) < MIN_SAMPLES or not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return np.zeros(len(x), dtype=bool)
    nk = _neurokit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            signals, _info = nk.emg_process(x, sampling_rate=int(round(rate)))
    return signals["EMG_Activity"].to_numpy() == 1


def union_bursts(per_channel: dict[str, list[tuple[int, int]]]) -> list[tuple[int, int, list[str]]]:
    """Unite overlapping or touching channel bursts: ``(start, stop, channels)`` in start order."""
    items = sorted((a, b, ch) for ch, bursts in per_channel.items() for a, b in bursts)
    out: list[tuple[int, int, list[str]]] = []
    for a, b, ch in items:
        if out and a <= out[-1][1]:
            s, e, chans = out[-1]
            if ch not in chans:
                chans.append(ch)
            out[-1] = (s, max(e, b), chans)
        else:
            out.append((a, b, [ch]))
    order = {c: i for i, c in enumerate(EMG_CHANNELS)}
    return [(a, b, sorted(chans, key=lambda c: order.get(c, len(order)))) for a, b, chans in out]


def classify(rec: Recording, hand: str, onset_s: float) -> str | None:
    """The task rule: ``None`` (own WRITE: task), ``"mirror"`` (other hand's WRITE) or ``"burst"``."""
    own = other = False
    for a in rec.task_annotations():
        kind, h = a.split()
        if kind != TASK_WRITE or not (a.onset <= onset_s < a.end):
            continue
        if h == hand:
            own = True
        else:
            other = True
    if own:
        return None
    return "mirror" if other else "burst"


def nk_events(rec: Recording) -> list[dict]:
    """NeuroKit2 bursts of every hand as FORMATS.md §2 events, in onset order."""
    events = []
    for hand, sig in rec.hands.items():
        per_channel = {}
        for ch in EMG_CHANNELS:
            if ch in sig.emg:
                per_channel[ch] = runs(channel_activity(sig.emg[ch], rec.emg_rate))
        for a, b, chans in union_bursts(per_channel):
            onset, offset = a / rec.emg_rate, b / rec.emg_rate
            kind = classify(rec, hand, onset)
            if kind is None:
                continue
            events.append({"hand": hand, "kind": kind, "onset_s": round(onset, 4),
                           "offset_s": round(offset, 4), "channels": chans})
    events.sort(key=lambda e: (e["onset_s"], e["hand"]))
    return events
