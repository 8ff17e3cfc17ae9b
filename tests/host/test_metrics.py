"""Clinical measures: exact values on hand-made sessions, agreement with the simulator's
ground truth within the tolerances of docs/metrics.md, and trends."""

from __future__ import annotations

import pytest

from mirrorband.analysis.metrics import (
    emg_ratio_from_events,
    emg_ratio_from_recording,
    grade,
    session_metrics,
    truth_events,
)
from mirrorband.sessions.session import analyse_recording, steps_from_recording
from mirrorband.sim.simulate import simulate

STEPS = [
    {"kind": "REST", "onset_s": 0.0, "offset_s": 10.0},
    {"kind": "WRITE L", "onset_s": 10.0, "offset_s": 70.0},
    {"kind": "REST", "onset_s": 70.0, "offset_s": 80.0},
    {"kind": "WRITE R", "onset_s": 80.0, "offset_s": 110.0},
]


def _e(hand, kind, a, b, **kw):
    return {"hand": hand, "kind": kind, "onset_s": a, "offset_s": b, **kw}


def test_measures_on_a_hand_made_session():
    events = [
        _e("R", "burst", 2.0, 3.0, area=5.0),  # REST: not a mirror measure
        _e("R", "mirror", 14.0, 16.0, cci=0.5, imu_deg=10.0, peak_ratio=8.0, area=6.0),
        _e("R", "mirror", 15.0, 18.0, cci=0.7, imu_deg=20.0, peak_ratio=12.0, area=9.0),  # overlaps: union
        _e("R", "mirror", 40.0, 41.0, peak_ratio=30.0, area=4.0),
        _e("R", "artifact", 50.0, 50.2, artifact="knock"),
        _e("L", "mirror", 95.0, 95.5, peak_ratio=6.0, area=1.0),
    ]
    m = session_metrics(STEPS, events)
    r = m["by_hand"]["R"]
    assert r["writing_s"] == 60.0
    assert r["mirror_count"] == 3
    assert r["mirror_per_min"] == 3.0
    assert r["latency_s"] == 4.0
    assert r["mirror_fraction"] == pytest.approx(5.0 / 60.0, abs=1e-4)  # 14-18 and 40-41
    assert r["mean_duration_s"] == 2.0 and r["max_duration_s"] == 3.0
    assert r["cci"] == 0.6 and r["imu_deg"] == 15.0
    assert r["median_peak_ratio"] == 12.0
    assert r["grade"] == 3  # fraction 8.3 % >= 8 %
    # EMG ratio from events: (60 + (6-2) + (9-3) + (4-1)) / 60
    assert r["emg_ratio"] == pytest.approx(73 / 60, abs=1e-3)
    lh = m["by_hand"]["L"]
    assert lh["writing_s"] == 30.0 and lh["mirror_per_min"] == 2.0 and lh["latency_s"] == 15.0
    assert lh["grade"] == 1
    assert m["grade"] == 3 and m["grade_hand"] == "R"
    assert [(s["kind"], s["hand"], s["mirror_count"]) for s in m["steps"]] == [("WRITE L", "R", 3),
                                                                            ("WRITE R", "L", 1)]
    assert m["event_counts"] == {"burst": 1, "mirror": 4, "artifact": 1}


def test_no_writing_no_mirror_measures():
    m = session_metrics([{"kind": "REST", "onset_s": 0.0, "offset_s": 30.0}], [_e("L", "burst", 1, 2)])
    assert m["by_hand"] == {} and m["steps"] == [] and m["grade"] is None


def test_grade_rule():
    assert grade(0.4, 0.5, 50.0) == 0  # too few bursts, whatever their size
    assert grade(1.0, 0.01, 5.0) == 1
    assert grade(3.0, 0.02, None) == 2
    assert grade(6.0, 0.08, 10.0) == 3
    assert grade(15.0, 0.25, 10.0) == 4
    assert grade(2.0, 0.01, 20.0) == 2  # marked amplitude adds one
    assert grade(20.0, 0.5, 40.0) == 4  # capped


def test_emg_ratio_from_events_without_rest_is_unknown():
    steps = [{"kind": "WRITE L", "onset_s": 0.0, "offset_s": 60.0}]
    assert emg_ratio_from_events(steps, []) == {"L": None, "R": None}


# --- agreement with the simulator's ground truth (tolerances: docs/metrics.md) ----------------

CASES = [(sc, seed) for sc in ("control", "mild-R", "moderate-L", "severe-R") for seed in (1, 2, 3)]


@pytest.fixture(scope="module")
def simulated():
    out = []
    for sc, seed in CASES:
        rec = simulate(sc, seed=seed)
        events, info = analyse_recording(rec)
        steps = steps_from_recording(rec)
        truth = truth_events(rec)
        det = session_metrics(steps, events, emg_ratio_from_recording(rec, steps, events, info["mains_hz"]), "signal")
        ref = session_metrics(steps, truth, emg_ratio_from_recording(rec, steps, truth, info["mains_hz"]), "signal")
        out.append((sc, seed, det, ref))
    return out


def test_metrics_agree_with_ground_truth(simulated):
    latency_checked = latency_off = 0
    for sc, seed, det, ref in simulated:
        for hand in ("L", "R"):
            d, t = det["by_hand"][hand], ref["by_hand"][hand]
            where = f"{sc} seed {seed} hand {hand}"
            assert abs(d["mirror_count"] - t["mirror_count"]) <= max(1, 0.1 * t["mirror_count"]), where
            assert abs(d["mirror_fraction"] - t["mirror_fraction"]) <= 0.015, where
            if t["mean_duration_s"] is not None and d["mean_duration_s"] is not None:
                # weak (mild) bursts end sooner under the offset threshold (issue 12: 2.5x
                # over a minimum-statistics baseline): docs/metrics.md
                tol = 0.15 if sc.startswith("mild") else 0.1
                assert abs(d["mean_duration_s"] - t["mean_duration_s"]) <= tol, where
                assert abs(d["max_duration_s"] - t["max_duration_s"]) <= 0.15, where
            assert abs(d["grade"] - t["grade"]) <= 1, where
            assert d["emg_ratio"] == pytest.approx(t["emg_ratio"], rel=0.15), where
            if t["latency_s"] is not None:
                latency_checked += 1
                assert d["latency_s"] is not None, where
                latency_off += abs(d["latency_s"] - t["latency_s"]) > 0.1
        assert abs(det["grade"] - ref["grade"]) <= 1, f"{sc} seed {seed}"
    assert latency_checked >= 9
    assert latency_off <= 0.1 * latency_checked


def test_severity_ordering(simulated):
    by = {}
    for sc, _seed, det, _ in simulated:
        by.setdefault(sc.split("-")[0], []).append(det)
    assert all(m["grade"] == 0 for m in by["control"])
    for m in by["control"]:
        for h in ("L", "R"):
            assert 0.8 <= m["by_hand"][h]["emg_ratio"] <= 1.25
    assert all(m["grade"] == 4 and m["grade_hand"] == "R" for m in by["severe"])
    assert all(m["grade_hand"] == "L" and m["grade"] >= 2 for m in by["moderate"])
    for m in by["severe"]:
        assert m["by_hand"]["R"]["emg_ratio"] > 2.0
        assert m["by_hand"]["R"]["imu_deg"] > 5.0  # wrist flexes during bursts (simulator posture)


# --- trends ------------------------------------------------------------------------------------

def test_trend_follows_the_affected_hand_against_a_baseline(tmp_path):
    from mirrorband.analysis.trends import format_trend, patient_trend
    from mirrorband.sessions.store import Store, StoreError

    def sess(st, day, n_mirror, patient="P1"):
        ev = [_e("R", "mirror", 12.0 + 5 * i, 13.0 + 5 * i, area=3.0) for i in range(n_mirror)]
        return st.insert_session({"started": f"{day}T10:00:00", "source": "bands", "duration_s": 110.0,
                                  "patient_id": patient}, STEPS, ev)

    with Store(tmp_path) as st:
        a = sess(st, "2025-01-10", 10)
        b = sess(st, "2025-02-10", 4)
        c = sess(st, "2025-03-10", 8)
        sess(st, "2025-03-11", 1, patient="P2")
        st.add_treatment("P1", "2025-01-20", "botox", "FCR 25 U")
        t = patient_trend(st, "P1")
        assert t["hand"] == "R" and t["baseline"] == a
        assert [s["id"] for s in t["sessions"]] == [a, b, c]
        assert [s["metrics"]["mirror_per_min"] for s in t["sessions"]] == [10.0, 4.0, 8.0]
        ch = t["sessions"][1]["change"]["mirror_per_min"]
        assert ch == {"delta": -6.0, "relative": -0.6}
        t2 = patient_trend(st, "P1", baseline=b)
        assert t2["sessions"][2]["change"]["mirror_per_min"] == {"delta": 4.0, "relative": 1.0}
        text = format_trend(t)
        assert text.index("2025-01-10") < text.index("botox") < text.index("2025-02-10")
        with pytest.raises(StoreError, match="baseline session"):
            patient_trend(st, "P1", baseline=999)
        with pytest.raises(StoreError, match="no sessions"):
            patient_trend(st, "P3")
