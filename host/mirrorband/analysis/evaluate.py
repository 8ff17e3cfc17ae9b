"""Score detected events (FORMATS.md §2) against a recording's ground truth (§1).

The matching rule and every metric are defined in docs/evaluation.md; this
module is the reference implementation. In short:

* :func:`match` pairs detected and true intervals one-to-one, greedily by
  largest overlap (intersection > 0 required).
* :func:`score_recording` matches per hand at two levels: *burst* (truth
  ``MIRROR`` + ``BURST``, detected kinds ``mirror`` + ``burst``) and *mirror*
  (truth ``MIRROR``, detected kind ``mirror``), and collects onset/offset
  errors, mirror rates per minute of writing and artifact handling.
* :func:`summarize` pools the per-recording counts (sums of TP/FP/FN, pooled
  error lists) and derives precision, recall, F1 and error statistics.
* :func:`format_table` renders a summary for the terminal.

Everything returned is plain JSON (dicts, lists, floats, ints, bools, None).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mirrorband.recording import (
    HANDS,
    TASK_WRITE,
    TRUTH_ARTIFACT,
    TRUTH_BURST,
    TRUTH_MIRROR,
    Recording,
)

#: Detected kinds that count as EMG bursts (FORMATS.md §2); other kinds are ignored.
BURST_KINDS = ("mirror", "burst")
#: The detected kind some detectors use to flag disturbances (informational only).
ARTIFACT_KIND = "artifact"

Interval = tuple[float, float]


# --------------------------------------------------------------------------- matching


def match(detected: Sequence[Interval], truth: Sequence[Interval]) -> list[tuple[int, int]]:
    """One-to-one matching of detected to true intervals.

    Candidate pairs are those whose intersection is longer than zero (touching
    intervals do not match). Pairs are taken greedily by largest overlap; ties
    go to the pair with the earlier onset (the earlier of its two onsets, then
    the later of them), then likewise the earlier offsets; remaining ties are
    between intervals with identical values, broken by input order. Each
    detected and each true interval is used at most once. The rule is symmetric:
    ``match(truth, detected)`` gives the same pairs, swapped.

    Returns ``(detected_index, truth_index)`` pairs sorted by detected index.
    """
    if not detected or not truth:
        return []
    d = np.asarray(detected, dtype=float).reshape(-1, 2)
    t = np.asarray(truth, dtype=float).reshape(-1, 2)
    # overlap[i, j] = min(end_i, end_j) - max(start_i, start_j)
    ov = np.minimum(d[:, 1:2], t[None, :, 1]) - np.maximum(d[:, 0:1], t[None, :, 0])
    ii, jj = np.nonzero(ov > 0)  # NaN compares False: malformed intervals never match
    if len(ii) == 0:
        return []
    o = ov[ii, jj]
    # np.lexsort sorts by the last key first
    don, ton, doff, toff = d[ii, 0], t[jj, 0], d[ii, 1], t[jj, 1]
    order = np.lexsort((jj, ii, np.maximum(doff, toff), np.minimum(doff, toff),
                        np.maximum(don, ton), np.minimum(don, ton), -o))
    used_d = np.zeros(len(d), dtype=bool)
    used_t = np.zeros(len(t), dtype=bool)
    pairs = []
    for k in order:
        i, j = int(ii[k]), int(jj[k])
        if used_d[i] or used_t[j]:
            continue
        used_d[i] = used_t[j] = True
        pairs.append((i, j))
    pairs.sort()
    return pairs


# --------------------------------------------------------------------------- helpers


def _ratio(num: int, den: int, fp: int, fn: int) -> float:
    """num/den; for den == 0: 1.0 when there was no error at all (fp == fn == 0), else 0.0."""
    if den > 0:
        return num / den
    return 1.0 if fp == 0 and fn == 0 else 0.0


def prf(tp: int, fp: int, fn: int) -> dict:
    """Counts plus precision, recall and F1 (see docs/evaluation.md for empty cases)."""
    p = _ratio(tp, tp + fp, fp, fn)
    r = _ratio(tp, tp + fn, fp, fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn, fp, fn)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4), "recall": round(r, 4), "f1": round(f1, 4)}


def error_stats(errors_ms: Iterable[float]) -> dict:
    """median |e|, 90th percentile |e| (linear interpolation), bias = median e, n; None when n == 0."""
    e = np.asarray(list(errors_ms), dtype=float)
    if len(e) == 0:
        return {"median_abs": None, "p90_abs": None, "bias": None, "n": 0}
    a = np.abs(e)
    return {
        "median_abs": round(float(np.median(a)), 1),
        "p90_abs": round(float(np.percentile(a, 90)), 1),
        "bias": round(float(np.median(e)), 1),
        "n": int(len(e)),
    }


def _per_min(n: int, minutes: float) -> float | None:
    return round(n / minutes, 3) if minutes > 0 else None


def _union_length(intervals: Iterable[Interval], lo: float, hi: float) -> float:
    """Total length of the union of intervals clipped to [lo, hi]."""
    spans = sorted((max(a, lo), min(b, hi)) for a, b in intervals)
    spans = [(a, b) for a, b in spans if b > a]
    total = 0.0
    if not spans:
        return total
    cur_a, cur_b = spans[0]
    for a, b in spans[1:]:
        if a > cur_b:
            total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    return total + (cur_b - cur_a)


def _overlaps_any(iv: Interval, others: Sequence[Interval]) -> bool:
    return any(min(iv[1], o[1]) - max(iv[0], o[0]) > 0 for o in others)


def _check_event(ev: dict) -> tuple[str, str, float, float]:
    try:
        hand, kind = ev["hand"], ev["kind"]
        on, off = float(ev["onset_s"]), float(ev["offset_s"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"malformed event {ev!r}: needs hand, kind, onset_s, offset_s") from e
    return hand, kind, on, off


def write_minutes(rec: Recording) -> float:
    """Minutes covered by ``WRITE L``/``WRITE R`` annotations (union, clipped to the recording)."""
    spans = [(a.onset, a.end) for a in rec.task_annotations() if a.split()[0] == TASK_WRITE]
    return _union_length(spans, 0.0, rec.duration) / 60.0


def is_control(rec: Recording) -> bool:
    """A control recording: WRITE steps but no MIRROR annotation for either hand."""
    has_write = any(a.split()[0] == TASK_WRITE for a in rec.task_annotations())
    return has_write and not rec.truth(TRUTH_MIRROR)


# --------------------------------------------------------------------------- scoring


def score_recording(rec: Recording, events: list[dict]) -> dict:
    """Score one recording's detected events against its annotations.

    Returns a JSON-serialisable dict of counts (and raw error lists) that
    :func:`summarize` pools; ``burst``/``mirror`` already carry this
    recording's precision/recall/F1, ``onset_ms``/``offset_ms`` its statistics.
    Events of kinds other than ``mirror``/``burst`` are ignored (``artifact``
    events are only used for the informational ``artifact.flagged`` count).
    """
    det: dict[str, dict[str, list[Interval]]] = {h: {"mirror": [], "burst": [], ARTIFACT_KIND: []} for h in HANDS}
    for ev in events:
        hand, kind, on, off = _check_event(ev)
        if kind not in det.get(hand, {}):
            if hand not in HANDS and kind in BURST_KINDS:
                raise ValueError(f"event with unknown hand {hand!r}")
            continue
        det[hand][kind].append((on, off))

    totals = {"burst": [0, 0, 0], "mirror": [0, 0, 0]}
    onset_err: list[float] = []
    offset_err: list[float] = []
    hands_out = {}
    n_mirror_det = n_mirror_unmatched = 0
    art_n = art_reported = art_flagged = 0
    for h in HANDS:
        d_all = sorted(det[h]["mirror"] + det[h]["burst"])
        t_all = sorted((a.onset, a.end) for a in rec.truth(TRUTH_MIRROR, h) + rec.truth(TRUTH_BURST, h))
        pairs = match(d_all, t_all)
        b = (len(pairs), len(d_all) - len(pairs), len(t_all) - len(pairs))
        for i, j in pairs:
            onset_err.append(round((d_all[i][0] - t_all[j][0]) * 1000.0, 3))
            offset_err.append(round((d_all[i][1] - t_all[j][1]) * 1000.0, 3))
        matched_d = {i for i, _ in pairs}
        unmatched_bursts = [d_all[i] for i in range(len(d_all)) if i not in matched_d]

        d_m = sorted(det[h]["mirror"])
        t_m = [(a.onset, a.end) for a in rec.truth(TRUTH_MIRROR, h)]
        mp = match(d_m, t_m)
        m = (len(mp), len(d_m) - len(mp), len(t_m) - len(mp))
        n_mirror_det += len(d_m)
        n_mirror_unmatched += len(d_m) - len(mp)

        arts = [(a.onset, a.end) for a in rec.truth(TRUTH_ARTIFACT, h)]
        art_n += len(arts)
        art_reported += sum(_overlaps_any(a, unmatched_bursts) for a in arts)
        art_flagged += sum(_overlaps_any(a, det[h][ARTIFACT_KIND]) for a in arts)

        for key, c in (("burst", b), ("mirror", m)):
            for k in range(3):
                totals[key][k] += c[k]
        if d_all or t_all or arts:
            hands_out[h] = {"burst": prf(*b), "mirror": prf(*m)}

    wmin = write_minutes(rec)
    control = is_control(rec)
    return {
        "recording": rec.name,
        "duration_s": round(rec.duration, 3),
        "write_min": round(wmin, 4),
        "control": control,
        "burst": prf(*totals["burst"]),
        "mirror": prf(*totals["mirror"]),
        "hands": hands_out,
        "onset_ms": error_stats(onset_err),
        "offset_ms": error_stats(offset_err),
        "onset_errors_ms": onset_err,
        "offset_errors_ms": offset_err,
        "mirror_detected": n_mirror_det,
        "mirror_unmatched": n_mirror_unmatched,
        "mirror_unmatched_per_min_write": _per_min(n_mirror_unmatched, wmin),
        "false_mirror_per_min_write": _per_min(n_mirror_det, wmin) if control else None,
        "artifact": {"n": art_n, "reported": art_reported, "flagged": art_flagged},
    }


def summarize(per_recording: list[dict]) -> dict:
    """Pool per-recording scores (from :func:`score_recording`) into one summary."""
    tot = {"burst": [0, 0, 0], "mirror": [0, 0, 0]}
    on: list[float] = []
    off: list[float] = []
    ctrl_n = ctrl_events = 0
    ctrl_min = all_min = 0.0
    unmatched = 0
    art = {"n": 0, "reported": 0, "flagged": 0}
    for s in per_recording:
        for key in tot:
            for k, c in enumerate(("tp", "fp", "fn")):
                tot[key][k] += int(s[key][c])
        on.extend(s["onset_errors_ms"])
        off.extend(s["offset_errors_ms"])
        all_min += s["write_min"]
        unmatched += s["mirror_unmatched"]
        if s["control"]:
            ctrl_n += 1
            ctrl_events += s["mirror_detected"]
            ctrl_min += s["write_min"]
        for k in art:
            art[k] += s["artifact"][k]
    burst, mirror = prf(*tot["burst"]), prf(*tot["mirror"])
    onset, offset = error_stats(on), error_stats(off)
    ctrl_rate, unmatched_rate = _per_min(ctrl_events, ctrl_min), _per_min(unmatched, all_min)
    return {
        "n_recordings": len(per_recording),
        # headline numbers, flat (the same values as in the detailed blocks below)
        **{f"{lvl}_{m}": blk[m] for lvl, blk in (("burst", burst), ("mirror", mirror))
           for m in ("precision", "recall", "f1")},
        **{f"{name}_{m}_ms": blk[m] for name, blk in (("onset", onset), ("offset", offset))
           for m in ("median_abs", "p90_abs", "bias")},
        "onset_n": onset["n"],
        "control_false_mirror_per_min": ctrl_rate,
        "unmatched_mirror_per_min": unmatched_rate,
        # details
        "burst": burst,
        "mirror": mirror,
        "onset_ms": onset,
        "offset_ms": offset,
        "false_mirror_control": {
            "n_recordings": ctrl_n,
            "n_events": ctrl_events,
            "write_min": round(ctrl_min, 4),
            "per_min": ctrl_rate,
        },
        "mirror_unmatched": {
            "n_events": unmatched,
            "write_min": round(all_min, 4),
            "per_min": unmatched_rate,
        },
        "artifact": art,
    }


# --------------------------------------------------------------------------- display


def _f(x, fmt: str = "{:.3f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def format_table(summary: dict) -> str:
    """A short human-readable table of a :func:`summarize` result."""
    lines = [f"recordings: {summary['n_recordings']}", ""]
    lines.append(f"{'level':<8}{'TP':>6}{'FP':>6}{'FN':>6}{'precision':>11}{'recall':>8}{'F1':>7}")
    for key in ("burst", "mirror"):
        s = summary[key]
        lines.append(f"{key:<8}{s['tp']:>6}{s['fp']:>6}{s['fn']:>6}{s['precision']:>11.3f}"
                     f"{s['recall']:>8.3f}{s['f1']:>7.3f}")
    lines.append("")
    for key, label in (("onset_ms", "onset error "), ("offset_ms", "offset error")):
        e = summary[key]
        lines.append(f"{label} (ms): median |e| {_f(e['median_abs'], '{:.1f}')}, "
                     f"p90 |e| {_f(e['p90_abs'], '{:.1f}')}, bias {_f(e['bias'], '{:+.1f}')}  (n={e['n']})")
    c = summary["false_mirror_control"]
    lines.append(f"false mirror bursts / min writing (controls): {_f(c['per_min'])}  "
                 f"({c['n_events']} in {c['write_min']:.2f} min, {c['n_recordings']} control recordings)")
    u = summary["mirror_unmatched"]
    lines.append(f"unmatched mirror bursts / min writing (all):  {_f(u['per_min'])}  "
                 f"({u['n_events']} in {u['write_min']:.2f} min)")
    a = summary["artifact"]
    lines.append(f"artifacts reported as bursts: {a['reported']} of {a['n']}  (flagged as artifact: {a['flagged']})")
    return "\n".join(lines)
