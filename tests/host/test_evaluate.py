"""Scoring detected events against ground truth (mirrorband.analysis.evaluate)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirrorband.analysis.evaluate import format_table, match, prf, score_recording, summarize
from mirrorband.recording import Annotation, HandSignals, Recording


def rec(annotations, hands=("L", "R"), duration=120.0, rate=100.0, name="t") -> Recording:
    n = int(duration * rate)
    return Recording(hands={h: HandSignals(emg={"FLEX": np.zeros(n)}) for h in hands}, emg_rate=rate,
                     imu_rate=104.0, annotations=[Annotation(*a) for a in annotations], name=name)


def ev(hand, kind, on, off):
    return {"hand": hand, "kind": kind, "onset_s": on, "offset_s": off}


# --------------------------------------------------------------------------- match


def test_match_basic():
    assert match([], [(0, 1)]) == []
    assert match([(0, 1)], []) == []
    assert match([(0, 1)], [(0.5, 2)]) == [(0, 0)]
    # touching is not overlapping
    assert match([(0, 1)], [(1, 2)]) == []
    # largest overlap wins, the other detection stays unmatched
    assert match([(0, 1.2), (0.9, 3)], [(1, 3)]) == [(1, 0)]
    # one detection spanning two truths matches only one (the larger overlap)
    assert match([(0, 10)], [(1, 2), (3, 6)]) == [(0, 1)]


def test_match_greedy_then_remaining():
    # d0 overlaps t0 by 2, t1 by 0.5; d1 overlaps t0 by 0.5, t1 by 1. Greedy: (d0,t0), then (d1,t1).
    assert match([(0, 3), (2.5, 3.5)], [(1, 3), (2.5, 4)]) == [(0, 0), (1, 1)]


def test_match_tie_earlier_onset():
    # equal overlaps (1 s): the pair with the earlier onset wins
    assert match([(1, 3)], [(0, 2), (2, 4)]) == [(0, 0)]
    assert match([(0, 2), (2, 4)], [(1, 3)]) == [(0, 0)]


interval = st.tuples(st.integers(0, 40), st.integers(1, 8)).map(lambda t: (t[0] / 4, t[0] / 4 + t[1] / 4))
intervals = st.lists(interval, max_size=8)


def overlap(a, b):
    return min(a[1], b[1]) - max(a[0], b[0])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(intervals, intervals, st.randoms(use_true_random=False))
def test_match_properties(det, tru, rnd):
    pairs = match(det, tru)
    di = [i for i, _ in pairs]
    ti = [j for _, j in pairs]
    # one-to-one
    assert len(set(di)) == len(di) and len(set(ti)) == len(ti)
    # only overlapping pairs
    assert all(overlap(det[i], tru[j]) > 0 for i, j in pairs)
    # counts: TP + FP = detections, TP + FN = truths
    assert len(pairs) <= min(len(det), len(tru))
    # symmetric: swapping the roles gives the same pairs
    swapped = match(tru, det)
    assert sorted((det[i], tru[j]) for i, j in pairs) == sorted((det[i], tru[j]) for j, i in swapped)
    # invariant to the order of the inputs (as interval values)
    pd_, pt = det[:], tru[:]
    rnd.shuffle(pd_)
    rnd.shuffle(pt)
    again = match(pd_, pt)
    assert sorted((det[i], tru[j]) for i, j in pairs) == sorted((pd_[i], pt[j]) for i, j in again)
    # maximal: no unmatched detection overlaps an unmatched truth
    free_d = set(range(len(det))) - set(di)
    free_t = set(range(len(tru))) - set(ti)
    assert not any(overlap(det[i], tru[j]) > 0 for i in free_d for j in free_t)


def test_match_many_is_fast():
    r = random.Random(1)
    det = [(t, t + r.uniform(0.1, 2)) for t in sorted(r.uniform(0, 3000) for _ in range(800))]
    tru = [(t, t + r.uniform(0.1, 2)) for t in sorted(r.uniform(0, 3000) for _ in range(800))]
    pairs = match(det, tru)
    assert 0 < len(pairs) <= 800


# --------------------------------------------------------------------------- prf edge cases


def test_prf_edge_cases():
    assert prf(0, 0, 0) == {"tp": 0, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    p = prf(0, 0, 3)  # nothing detected, something expected
    assert (p["precision"], p["recall"], p["f1"]) == (0.0, 0.0, 0.0)
    p = prf(0, 2, 0)  # something detected, nothing expected
    assert (p["precision"], p["recall"], p["f1"]) == (0.0, 0.0, 0.0)
    p = prf(3, 1, 2)
    assert p["precision"] == 0.75 and p["recall"] == 0.6 and p["f1"] == round(6 / 9, 4)


# --------------------------------------------------------------------------- score_recording

PATIENT = [
    (0, 10, "REST"),
    (10, 50, "WRITE L"),
    (60, 50, "WRITE R"),
    (20, 2, "MIRROR R"),
    (30, 2, "MIRROR R"),
    (40, 1, "BURST R"),
    (70, 2, "MIRROR L"),
    (90, 0.5, "ARTIFACT L"),
    (95, 0.5, "ARTIFACT L"),
]


def test_score_perfect_both_hands():
    r = rec(PATIENT)
    events = [ev("R", "mirror", 20.05, 22.1), ev("R", "mirror", 29.9, 32), ev("R", "burst", 40.1, 41),
              ev("L", "mirror", 70.2, 72), ev("L", "artifact", 95.0, 95.3)]
    s = score_recording(r, events)
    json.dumps(s)
    assert s["burst"] == prf(4, 0, 0)
    assert s["mirror"] == prf(3, 0, 0)
    assert s["hands"]["L"]["mirror"]["tp"] == 1 and s["hands"]["R"]["mirror"]["tp"] == 2
    assert sorted(s["onset_errors_ms"]) == pytest.approx(sorted([50, -100, 100, 200]))
    assert s["onset_ms"]["n"] == 4 and s["onset_ms"]["median_abs"] == 100.0 and s["onset_ms"]["bias"] == 75.0
    assert s["write_min"] == pytest.approx(100 / 60, abs=1e-4)
    assert not s["control"] and s["false_mirror_per_min_write"] is None
    assert s["mirror_unmatched"] == 0 and s["mirror_unmatched_per_min_write"] == 0.0
    assert s["artifact"] == {"n": 2, "reported": 0, "flagged": 1}


def test_score_errors_and_kinds():
    r = rec(PATIENT)
    events = [
        ev("R", "burst", 20.0, 22.0),   # burst-level TP, mirror-level FN (wrong kind)
        ev("R", "mirror", 40.2, 40.8),  # burst-level TP, mirror-level FP
        ev("L", "mirror", 90.1, 90.4),  # on an artifact: FP at both levels, artifact reported
        ev("L", "cramp", 70, 72),       # unknown kind: ignored
        ev("R", "mirror", 30.5, 31),    # TP both levels
    ]
    s = score_recording(r, events)
    assert s["burst"] == prf(3, 1, 1)
    assert s["mirror"] == prf(1, 2, 2)
    assert s["mirror_detected"] == 3 and s["mirror_unmatched"] == 2
    assert s["mirror_unmatched_per_min_write"] == round(2 / (100 / 60), 3)
    assert s["artifact"] == {"n": 2, "reported": 1, "flagged": 0}


def test_wrong_hand_does_not_match():
    r = rec([(10, 60, "WRITE L"), (20, 2, "MIRROR R")])
    s = score_recording(r, [ev("L", "mirror", 20, 22)])
    assert s["burst"] == prf(0, 1, 1)


def test_score_no_events_and_no_truth():
    r = rec(PATIENT)
    s = score_recording(r, [])
    assert s["burst"] == prf(0, 0, 4) and s["mirror"] == prf(0, 0, 3)
    assert s["onset_ms"] == {"median_abs": None, "p90_abs": None, "bias": None, "n": 0}
    empty = rec([])
    s = score_recording(empty, [])
    assert s["burst"]["f1"] == 1.0 and s["mirror"]["precision"] == 1.0
    assert s["write_min"] == 0 and not s["control"]
    assert s["mirror_unmatched_per_min_write"] is None
    s = score_recording(empty, [ev("R", "burst", 1, 2)])
    assert s["burst"] == prf(0, 1, 0)


def test_control_recording():
    r = rec([(0, 10, "REST"), (10, 30, "WRITE L"), (40, 30, "WRITE R"), (15, 1, "BURST R")])
    s = score_recording(r, [ev("R", "mirror", 15, 16), ev("L", "mirror", 50, 51), ev("R", "burst", 80, 81)])
    assert s["control"]
    assert s["write_min"] == 1.0
    assert s["mirror_detected"] == 2 and s["false_mirror_per_min_write"] == 2.0
    assert s["mirror"] == prf(0, 2, 0)
    assert s["burst"] == prf(1, 2, 0)


def test_malformed_event():
    with pytest.raises(ValueError):
        score_recording(rec([]), [{"hand": "R", "kind": "burst", "onset_s": 1}])
    with pytest.raises(ValueError):
        score_recording(rec([]), [ev("X", "burst", 1, 2)])


def test_write_minutes_clipped_and_union():
    r = rec([(10, 60, "WRITE L"), (40, 60, "WRITE R"), (100, 100, "WRITE L")], duration=120)
    assert score_recording(r, [])["write_min"] == pytest.approx(110 / 60, abs=1e-4)


# --------------------------------------------------------------------------- summarize


def test_summarize_pools_counts_and_errors():
    patient = score_recording(rec(PATIENT, name="p"), [ev("R", "mirror", 20.1, 22), ev("L", "mirror", 90.1, 90.3)])
    control = score_recording(rec([(0, 60, "WRITE L"), (60, 60, "WRITE R")], name="c"),
                              [ev("R", "mirror", 5, 6), ev("R", "mirror", 7, 8), ev("L", "burst", 100, 101)])
    empty = score_recording(rec([], name="e"), [])
    sm = summarize([patient, control, empty])
    json.dumps(sm)
    assert sm["n_recordings"] == 3
    assert sm["burst"] == prf(1, 4, 3)
    assert sm["mirror"] == prf(1, 3, 2)
    assert sm["onset_ms"]["n"] == 1 and sm["onset_ms"]["bias"] == 100.0
    fm = sm["false_mirror_control"]
    assert fm == {"n_recordings": 1, "n_events": 2, "write_min": 2.0, "per_min": 1.0}
    um = sm["mirror_unmatched"]
    assert um["n_events"] == 3 and um["write_min"] == pytest.approx(2 + 100 / 60, abs=1e-3)
    assert sm["artifact"] == {"n": 2, "reported": 1, "flagged": 0}
    # flat headline keys mirror the detailed blocks
    assert sm["burst_f1"] == sm["burst"]["f1"] and sm["mirror_recall"] == sm["mirror"]["recall"]
    assert sm["onset_bias_ms"] == 100.0 and sm["onset_n"] == 1 and sm["offset_p90_abs_ms"] == sm["offset_ms"]["p90_abs"]
    assert sm["control_false_mirror_per_min"] == 1.0 and sm["unmatched_mirror_per_min"] == um["per_min"]
    table = format_table(sm)
    assert "burst" in table and "mirror" in table and "1.000" in table
    assert len(table.splitlines()) < 15


def test_summarize_empty():
    sm = summarize([])
    assert sm["n_recordings"] == 0 and sm["burst"]["f1"] == 1.0
    assert sm["false_mirror_control"]["per_min"] is None
    assert "n/a" in format_table(sm)
