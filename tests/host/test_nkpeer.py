"""The NeuroKit2 peer detector with the band's task rule (mirrorband.analysis.nkpeer)."""

from __future__ import annotations

import numpy as np
import pytest

from mirrorband.analysis.evaluate import score_recording
from mirrorband.analysis.nkpeer import classify, nk_events, runs, union_bursts
from mirrorband.recording import Annotation, HandSignals, Recording

pytest.importorskip("neurokit2")

RATE = 1000
DUR = 24.0
TASK = [(0, 5, "REST"), (5, 7, "WRITE L"), (12, 6, "WRITE R")]
# (hand, channels, onset, offset, expected kind: None = the writing hand's task)
BURSTS = [
    ("R", ("FLEX", "EXT"), 2.0, 2.6, "burst"),
    ("R", ("FLEX", "EXT"), 7.0, 7.8, "mirror"),
    ("R", ("EXT",), 10.0, 10.5, "mirror"),
    ("R", ("FLEX", "EXT"), 13.0, 17.0, None),
    ("R", ("FLEX",), 20.0, 20.6, "burst"),
    ("L", ("FLEX", "EXT"), 5.5, 11.5, None),
    ("L", ("FLEX",), 14.0, 14.6, "mirror"),
    ("L", ("FLEX", "EXT"), 21.5, 22.0, "burst"),
]


def synth(seed: int = 0) -> Recording:
    """Gaussian noise (4 uV) with amplitude-modulated noise bursts (60 uV, 30 ms ramps)."""
    rng = np.random.default_rng(seed)
    n = int(DUR * RATE)
    t = np.arange(n) / RATE
    hands = {}
    for h in ("L", "R"):
        emg = {}
        for ch in ("FLEX", "EXT"):
            x = rng.normal(0, 4.0, n)
            for hh, chans, on, off, _ in BURSTS:
                if hh == h and ch in chans:
                    sel = (t >= on) & (t < off)
                    ramp = np.minimum(1, np.minimum(t[sel] - on, off - t[sel]) / 0.03)
                    x[sel] += rng.normal(0, 60.0, sel.sum()) * ramp
            emg[ch] = x
        hands[h] = HandSignals(emg=emg)
    ann = [Annotation(*a) for a in TASK]
    # ground truth, which the detector must not read
    ann += [Annotation(on, off - on, f"{'MIRROR' if k == 'mirror' else 'BURST'} {h}")
            for h, _, on, off, k in BURSTS if k]
    return Recording(hands=hands, emg_rate=RATE, imu_rate=104, annotations=ann, name="synth")


@pytest.fixture(scope="module")
def synth_events():
    rec = synth()
    return rec, nk_events(rec)


def test_bursts_found_and_classified(synth_events):
    rec, events = synth_events
    expected = sorted((on, h, k, chans) for h, chans, on, off, k in BURSTS if k)
    assert len(events) == len(expected)
    for e, (on, h, k, chans) in zip(events, expected, strict=True):
        assert e["hand"] == h and e["kind"] == k
        assert abs(e["onset_s"] - on) < 0.1
        assert e["offset_s"] > e["onset_s"]
        assert e["channels"] == list(chans)
        assert set(e) == {"hand", "kind", "onset_s", "offset_s", "channels"}
    assert [e["onset_s"] for e in events] == sorted(e["onset_s"] for e in events)
    s = score_recording(rec, events)
    assert s["burst"]["f1"] == 1.0 and s["mirror"]["f1"] == 1.0
    assert s["onset_ms"]["median_abs"] < 100


def test_flat_and_short_channels_have_no_events():
    rec = Recording(hands={"R": HandSignals(emg={"FLEX": np.zeros(5000)})}, emg_rate=RATE, imu_rate=104,
                    annotations=[Annotation(0, 5, "WRITE L")])
    assert nk_events(rec) == []
    rec = Recording(hands={"L": HandSignals(emg={"FLEX": np.ones(50)})}, emg_rate=RATE, imu_rate=104)
    assert nk_events(rec) == []


def test_runs():
    assert runs(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]
    assert runs(np.array([1, 1])) == [(0, 2)]
    assert runs(np.zeros(3)) == []


def test_union_bursts():
    out = union_bursts({"FLEX": [(0, 10), (30, 40)], "EXT": [(5, 20), (20, 25), (50, 60)]})
    assert out == [(0, 25, ["FLEX", "EXT"]), (30, 40, ["FLEX"]), (50, 60, ["EXT"])]


def test_classify_uses_task_steps_only():
    rec = Recording(hands={"R": HandSignals(emg={"FLEX": np.zeros(100)})}, emg_rate=RATE, imu_rate=104,
                    annotations=[Annotation(0, 5, "REST"), Annotation(5, 5, "WRITE L"),
                                 Annotation(10, 5, "WRITE R"), Annotation(1, 2, "MIRROR R")])
    assert classify(rec, "R", 1.5) == "burst"
    assert classify(rec, "R", 5.0) == "mirror"
    assert classify(rec, "L", 5.0) is None
    assert classify(rec, "R", 10.0) is None
    assert classify(rec, "L", 14.99) == "mirror"
    assert classify(rec, "L", 15.0) == "burst"
