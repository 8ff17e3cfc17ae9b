"""Each artifact rule on a documented model of the artifact it targets, and on a
real-like burst that carries movement (which the rules must keep).

Models (one band, FLEX + EXT at 1000 Hz, IMU at 104 Hz, 20 s, REST throughout):

* rest: 3 uV white noise per channel, gravity on Z, IMU noise;
* EMG burst: band-limited noise (40-180 Hz, 4th-order Butterworth) at 60 uV RMS
  on both channels, 30 ms raised-cosine edges;
* movement inside a burst: after an electromechanical delay of 60 ms, a 3 Hz
  half-sine electrode-skin displacement of 1500 uV on both channels and a wrist
  rotation of 40 deg/s, with its acceleration change spread over 150 ms;
* knock: a 60 ms broadband transient (300 uV) on both channels with a 1.5 g
  acceleration step of one IMU sample at its onset;
* knock during a burst: the same knock 0.3 s into a 1.2 s burst;
* cable tug: 1.5 s of random lead motion, 1-15 Hz band-limited noise of 800 uV
  RMS on both channels (no muscle), with a small acceleration (0.01 g);
* electrode pop (tap or lift): a 1500 uV step on FLEX only, decaying with a
  150 ms time constant;
* passive wrist movement: the IMU rotates (60 deg/s for 1 s), no EMG change.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from mirrorband.detect.replay import replay
from mirrorband.recording import Annotation, HandSignals, Recording

FS = 1000
IMU = 104
DUR = 20.0


def _base(seed: int):
    rng = np.random.default_rng(seed)
    n, m = int(DUR * FS), int(DUR * IMU)
    emg = {c: rng.normal(0, 3.0, n) for c in ("FLEX", "EXT")}
    acc = np.zeros((m, 3)) + rng.normal(0, 0.002, (m, 3))
    acc[:, 2] += 1.0
    gyr = rng.normal(0, 0.1, (m, 3))
    return rng, emg, acc, gyr


def _burst(rng, emg, t0: float, dur: float, uv: float = 60.0) -> None:
    n = int(dur * FS)
    sos = butter(4, [40, 180], btype="band", fs=FS, output="sos")
    edge = int(0.03 * FS)
    win = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, edge))
    win[:edge], win[-edge:] = ramp, ramp[::-1]
    i = int(t0 * FS)
    for c in emg:
        x = sosfilt(sos, rng.normal(0, 1, n + 500))[500:]
        emg[c][i:i + n] += uv * x / x.std() * win


def _movement(emg, acc, gyr, t0: float, dur: float) -> None:
    # starts one electromechanical delay after the EMG onset
    t0 += 0.06
    n = int(dur * FS)
    i = int(t0 * FS)
    disp = 1500.0 * np.sin(np.pi * np.minimum(np.arange(n) / FS * 3.0, 1.0))
    for c in emg:
        emg[c][i:i + n] += disp
    j, mm = int(t0 * IMU), int(dur * IMU)
    gyr[j:j + mm, 1] += 40.0
    ramp = np.clip(np.arange(mm) / (0.15 * IMU), 0, 1)
    acc[j:j + mm, 0] += 0.2 * ramp


def _knock(rng, emg, acc, t0: float) -> None:
    i, n = int(t0 * FS), int(0.06 * FS)
    for c in emg:
        emg[c][i:i + n] += rng.normal(0, 300.0, n) * np.hanning(n)
    acc[int(t0 * IMU), 2] += 1.5


def _recording(emg, acc, gyr, truth: list[tuple[float, float, str]]) -> Recording:
    ann = [Annotation(0.0, DUR, "REST")] + [Annotation(a, b - a, f"{k} R") for a, b, k in truth]
    return Recording(hands={"R": HandSignals(emg=emg, acc=acc, gyr=gyr)}, emg_rate=float(FS),
                     imu_rate=float(IMU), annotations=ann, name="model")


def _events(rec: Recording, t0: float, t1: float, runtime: str = "numpy") -> list[dict]:
    evs = replay(rec, runtime, overrides={"mains_hz": 50})["events"]
    return [e for e in evs if e["offset_s"] > t0 and e["onset_s"] < t1]


RUNTIMES = ["numpy", "cpython"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_burst_that_moves_the_wrist_is_kept_and_flagged(runtime):
    rng, emg, acc, gyr = _base(1)
    _burst(rng, emg, 10.0, 1.0)
    _movement(emg, acc, gyr, 10.0, 0.9)
    evs = _events(_recording(emg, acc, gyr, [(10.0, 11.0, "BURST")]), 9.5, 11.5, runtime)
    assert [e["kind"] for e in evs] == ["burst"]
    assert evs[0].get("movement") is True
    assert evs[0]["imu_deg"] > 10


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_knock_is_rejected(runtime):
    rng, emg, acc, gyr = _base(2)
    _knock(rng, emg, acc, 10.0)
    evs = _events(_recording(emg, acc, gyr, [(10.0, 10.06, "ARTIFACT")]), 9.5, 10.8, runtime)
    assert [(e["kind"], e.get("artifact")) for e in evs] == [("artifact", "knock")]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_burst_overlapped_by_a_knock_is_kept(runtime):
    rng, emg, acc, gyr = _base(3)
    _burst(rng, emg, 10.0, 1.2)
    _knock(rng, emg, acc, 10.0)  # the jolt lands at the burst's onset
    evs = _events(_recording(emg, acc, gyr, [(10.0, 11.2, "BURST"), (10.0, 10.06, "ARTIFACT")]),
                  9.5, 11.7, runtime)
    assert [e["kind"] for e in evs] == ["burst"]
    assert evs[0].get("jolt") is True


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_cable_tug_is_rejected_as_motion(runtime):
    rng, emg, acc, gyr = _base(4)
    sos = butter(4, [1, 15], btype="band", fs=FS, output="sos")
    x = sosfilt(sos, rng.normal(0, 1, 3 * FS))[int(1.5 * FS):]
    for c in emg:
        emg[c][10 * FS:10 * FS + len(x)] += 800.0 * x / x.std()
    acc[10 * IMU:int(11.5 * IMU), 0] += 0.01
    evs = _events(_recording(emg, acc, gyr, [(10.0, 11.5, "ARTIFACT")]), 9.5, 12.0, runtime)
    assert evs and all(e["kind"] == "artifact" and e["artifact"] == "motion" for e in evs)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_electrode_pop_is_rejected_as_pop(runtime):
    rng, emg, acc, gyr = _base(5)
    n = 3 * FS
    emg["FLEX"][10 * FS:10 * FS + n] += 1500.0 * np.exp(-np.arange(n) / (0.15 * FS))
    evs = _events(_recording(emg, acc, gyr, [(10.0, 10.5, "ARTIFACT")]), 9.5, 11.0, runtime)
    assert evs and all(e["kind"] == "artifact" and e["artifact"] == "pop" for e in evs)


def test_passive_wrist_movement_gives_no_event():
    rng, emg, acc, gyr = _base(6)
    gyr[10 * IMU:11 * IMU, 1] += 60.0
    acc[10 * IMU:11 * IMU, 0] += 0.3
    assert _events(_recording(emg, acc, gyr, [(10.0, 11.0, "ARTIFACT")]), 9.0, 12.0) == []


def test_the_movement_rule_is_what_keeps_the_moving_burst():
    # the same moving burst, judged on its whole event alone (as the former rule
    # did), would be rejected: the onset test is what keeps it
    from mbfw import detector

    rng, emg, acc, gyr = _base(1)
    _burst(rng, emg, 10.0, 1.0)
    _movement(emg, acc, gyr, 10.0, 0.9)
    rec = _recording(emg, acc, gyr, [(10.0, 11.0, "BURST")])
    seen = []
    orig = detector._lf_rich

    def spy(lf, hf, lfk):
        r = orig(lf, hf, lfk)
        seen.append(r)
        return r

    detector._lf_rich = spy
    try:
        evs = _events(rec, 9.5, 11.5, "cpython")
    finally:
        detector._lf_rich = orig
    assert [e["kind"] for e in evs] == ["burst"]
    assert True in seen and False in seen  # whole event LF-rich, onset clean
