"""The synthetic patient simulator: determinism, protocol, ground truth, physiology."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import signal

from mirrorband.recording import HANDS, IMU_RATE_HZ, RecordingError
from mirrorband.simulate import MIN_GAP_S, SCENARIOS, default_protocol, parse_scenario, simulate

SHORT = [("REST", 4.0), ("WRITE L", 8.0), ("REST", 2.0), ("WRITE R", 8.0)]
TRUTH = ("MIRROR", "BURST", "ARTIFACT")


def other(h):
    return "L" if h == "R" else "R"


def clean(x, fs, mains=50):
    """High-pass 20 Hz and notch the mains and its harmonics (what any EMG front end does)."""
    y = signal.sosfiltfilt(signal.butter(4, 20, "highpass", fs=fs, output="sos"), x)
    for k in range(1, 6):
        if k * mains < fs / 2 - 5:
            b, a = signal.iirnotch(k * mains, 30, fs=fs)
            y = signal.filtfilt(b, a, y)
    return y


def rest_rms(rec, hand, y):
    """RMS of cleaned EMG in REST, away from ground-truth events."""
    fs = rec.emg_rate
    mask = np.zeros(len(y), bool)
    for a in rec.annotations:
        if a.text == "REST":
            mask[int(a.onset * fs) : int(a.end * fs)] = True
    for a in rec.truth("BURST", hand) + rec.truth("ARTIFACT", hand):
        mask[max(0, int((a.onset - 0.5) * fs)) : int((a.end + 1.0) * fs)] = False
    return float(np.sqrt(np.mean(y[mask] ** 2)))


def seg_rms(rec, y, a):
    fs = rec.emg_rate
    s = y[int(a.onset * fs) : int(a.end * fs)]
    return float(np.sqrt(np.mean(s**2)))


# ---------------------------------------------------------------------------------------------
# API and validation


def test_scenarios_grammar():
    assert set(SCENARIOS) == {
        f"{s}{x}" for s in ("control", "mild", "moderate", "severe") for x in ("", "-L", "-R")
    }
    assert parse_scenario("severe") == ("severe", "R")
    assert parse_scenario("mild-L") == ("mild", "L")
    assert parse_scenario("control-L") == ("control", "L")


@pytest.mark.parametrize("bad", ["", "Severe", "severe-X", "severe-", "hard", "mild-l", None, 3])
def test_unknown_scenario(bad):
    with pytest.raises(RecordingError) as ei:
        simulate(bad)
    msg = str(ei.value)
    assert "moderate-L" in msg and "control" in msg and "\n" not in msg


@pytest.mark.parametrize("rate", [499, 499.99, 2048.5, 4000, 0, -1000, float("nan"), "fast", None])
def test_bad_emg_rate(rate):
    with pytest.raises(RecordingError):
        simulate("mild", emg_rate=rate, protocol=SHORT)


@pytest.mark.parametrize("mains", [0, 55, 100, "50"])
def test_bad_mains(mains):
    with pytest.raises(RecordingError):
        simulate("mild", mains_hz=mains, protocol=SHORT)


@pytest.mark.parametrize(
    "protocol",
    [
        [],
        [("WRITE", 5.0)],
        [("REST", 0.0)],
        [("REST", -1)],
        [("REST", float("inf"))],
        [("write L", 5)],
        [("REST",)],
        [("REST", 5000.0)],
        "REST",
    ],
)
def test_bad_protocol(protocol):
    with pytest.raises(RecordingError):
        simulate("mild", protocol=protocol)


def test_deterministic_per_seed():
    a = simulate("moderate-L", seed=11, protocol=SHORT)
    b = simulate("moderate-L", seed=11, protocol=SHORT)
    c = simulate("moderate-L", seed=12, protocol=SHORT)
    assert a.annotations == b.annotations
    for h in HANDS:
        for ch in ("FLEX", "EXT"):
            assert np.array_equal(a.hands[h].emg[ch], b.hands[h].emg[ch])
        assert np.array_equal(a.hands[h].acc, b.hands[h].acc)
        assert np.array_equal(a.hands[h].gyr, b.hands[h].gyr)
    assert not np.array_equal(a.hands["L"].emg["FLEX"], c.hands["L"].emg["FLEX"])


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("rate", [500, 777.7, 1000, 2000, 2048])
def test_every_scenario_and_rate(scenario, rate):
    rec = simulate(scenario, seed=5, emg_rate=rate, protocol=SHORT, mains_hz=60 if rate == 777.7 else 50)
    total = sum(s for _, s in SHORT)
    assert rec.emg_rate == rate and rec.imu_rate == IMU_RATE_HZ
    assert rec.duration == pytest.approx(total, abs=1 / rate)
    assert set(rec.hands) == {"L", "R"}
    n, m = math.ceil(total * rate - 1e-6), math.ceil(total * IMU_RATE_HZ - 1e-6)
    for h in HANDS:
        hs = rec.hands[h]
        assert set(hs.emg) == {"FLEX", "EXT"}
        for x in hs.emg.values():
            assert x.shape == (n,) and np.all(np.isfinite(x))
        assert hs.acc is not None and hs.acc.shape == (m, 3) and np.all(np.isfinite(hs.acc))
        assert hs.gyr is not None and hs.gyr.shape == (m, 3) and np.all(np.isfinite(hs.gyr))
    assert_well_formed(rec)


def test_default_protocol():
    rec = simulate("mild", seed=0, emg_rate=500)
    assert [(a.onset, a.duration, a.text) for a in rec.task_annotations()] == [
        (0.0, 15.0, "REST"),
        (15.0, 60.0, "WRITE L"),
        (75.0, 10.0, "REST"),
        (85.0, 60.0, "WRITE R"),
        (145.0, 10.0, "REST"),
    ]
    assert rec.duration == pytest.approx(155.0)
    assert default_protocol("L")[1] == ("WRITE R", 60.0) and default_protocol("L")[3] == ("WRITE L", 60.0)
    assert rec.name == "sim-mild-seed0"


# ---------------------------------------------------------------------------------------------
# ground truth


def assert_well_formed(rec):
    allowed = {"REST", "WRITE L", "WRITE R"} | {f"{k} {h}" for k in TRUTH for h in HANDS}
    writes = {h: [a for a in rec.annotations if a.text == f"WRITE {h}"] for h in HANDS}
    rests = [a for a in rec.annotations if a.text == "REST"]
    for a in rec.annotations:
        assert a.text in allowed
        assert a.onset >= 0 and a.duration > 0 and a.end <= rec.duration + 1e-9
        assert a.onset == round(a.onset, 3) and a.duration == round(a.duration, 3)
    for h in HANDS:
        events = sorted((a for k in TRUTH for a in rec.truth(k, h)), key=lambda a: a.onset)
        for prev, nxt in zip(events, events[1:], strict=False):
            # all ground truth of one hand is separated (MIN_GAP_S between envelopes at least)
            assert nxt.onset >= prev.end + MIN_GAP_S - 1e-9, (prev, nxt)
        for a in rec.truth("MIRROR", h):
            # inside a WRITE of the other hand
            assert any(w.onset <= a.onset and a.end <= w.end for w in writes[other(h)]), a
        for a in rec.truth("BURST", h):
            assert any(r.onset <= a.onset and a.end <= r.end for r in rests), a
        for a in rec.truth("ARTIFACT", h) + rec.truth("BURST", h):
            # never in the writing hand during its own WRITE
            assert not any(a.onset < w.end and a.end > w.onset for w in writes[h]), a


@pytest.mark.parametrize("scenario", ["control", "mild", "moderate-L", "severe", "severe-L"])
def test_ground_truth_default_protocol(scenario):
    for seed in range(3):
        rec = simulate(scenario, seed=seed, emg_rate=500)
        assert_well_formed(rec)
        if scenario == "control":
            assert rec.truth("MIRROR") == []
        else:
            affected = parse_scenario(scenario)[1]
            assert len(rec.truth("MIRROR", affected)) >= 1
            # the unaffected hand: none or very rare
            assert len(rec.truth("MIRROR", other(affected))) <= 3


def test_controls_have_no_mirror_but_bursts_and_artifacts():
    bursts = artifacts = 0
    for seed in range(6):
        rec = simulate("control", seed=seed, emg_rate=500)
        assert rec.truth("MIRROR") == []
        bursts += len(rec.truth("BURST"))
        artifacts += len(rec.truth("ARTIFACT"))
    assert bursts >= 6 and artifacts >= 6


def test_artifacts_also_during_other_hands_writing():
    found = False
    for seed in range(10):
        rec = simulate("moderate", seed=seed, emg_rate=500)
        for h in HANDS:
            writes = [a for a in rec.annotations if a.text == f"WRITE {other(h)}"]
            if any(w.onset <= a.onset and a.end <= w.end for a in rec.truth("ARTIFACT", h) for w in writes):
                found = True
    assert found


def test_severity_ordering():
    stats = {}
    for sev in ("mild", "moderate", "severe"):
        counts, ratios, latencies, durations = [], [], [], []
        for seed in range(5):
            rec = simulate(sev, seed=seed, emg_rate=500)
            mir = rec.truth("MIRROR", "R")
            counts.append(len(mir))
            y = clean(rec.hands["R"].emg["FLEX"], rec.emg_rate)
            rest = rest_rms(rec, "R", y)
            ratios += [seg_rms(rec, y, a) / rest for a in mir]
            durations += [a.duration for a in mir]
            write_l = next(a for a in rec.annotations if a.text == "WRITE L")
            latencies.append(mir[0].onset - write_l.onset)
        stats[sev] = (np.mean(counts), np.mean(ratios), np.mean(latencies), np.mean(durations))
    m, mo, s = stats["mild"], stats["moderate"], stats["severe"]
    assert m[0] < mo[0] < s[0], stats  # more bursts
    assert m[1] < mo[1] < s[1], stats  # larger
    assert m[2] > mo[2] > s[2], stats  # sooner
    assert m[3] < mo[3] < s[3], stats  # longer
    # the rates stay in the documented bands (per minute of the other hand's WRITE)
    assert 1.5 <= m[0] <= 5 and 5 <= mo[0] <= 12 and 11 <= s[0] <= 25, stats
    assert 1 <= s[2] <= 3.5 and 5 <= m[2] <= 16, stats


@pytest.mark.parametrize("scenario", ["mild", "moderate-L", "severe"])
def test_mirror_bursts_stand_out_of_rest(scenario):
    for seed in range(2):
        rec = simulate(scenario, seed=seed)
        for h in HANDS:
            mir = rec.truth("MIRROR", h)
            if not mir:
                continue
            y = clean(rec.hands[h].emg["FLEX"], rec.emg_rate)
            rest = rest_rms(rec, h, y)
            assert 1.5 < rest < 6  # a few uV of tonic activity and amplifier noise
            ratios = [seg_rms(rec, y, a) / rest for a in mir]
            assert min(ratios) > 2.5, ratios
            assert np.mean(ratios) > 3.5, ratios


def test_mirror_only_while_other_hand_writes():
    """At every mirror onset the writing hand's EMG is active (not in a pause)."""
    for seed in range(3):
        rec = simulate("severe", seed=seed, emg_rate=500)
        fs = rec.emg_rate
        y = clean(rec.hands["L"].emg["FLEX"], fs)
        rest = rest_rms(rec, "L", y)
        for a in rec.truth("MIRROR", "R"):
            i = int(a.onset * fs)
            writer = float(np.sqrt(np.mean(y[i - 25 : i + 25] ** 2)))
            assert writer > 5 * rest, (a, writer, rest)


def test_cocontraction_by_severity():
    def ext_share(sev):
        shares = []
        for seed in range(3):
            rec = simulate(sev, seed=seed, emg_rate=500)
            yf = clean(rec.hands["R"].emg["FLEX"], 500)
            ye = clean(rec.hands["R"].emg["EXT"], 500)
            re_ = rest_rms(rec, "R", ye)
            shares += [seg_rms(rec, ye, a) / re_ > 3 for a in rec.truth("MIRROR", "R")]
            assert yf.shape == ye.shape
        return np.mean(shares)

    assert ext_share("mild") < ext_share("severe")


def test_emg_spectrum_of_bursts():
    rec = simulate("severe", seed=4, emg_rate=2048)
    fs = rec.emg_rate
    y = clean(rec.hands["R"].emg["FLEX"], fs)
    seg = np.concatenate([y[int(a.onset * fs) : int(a.end * fs)] for a in rec.truth("MIRROR", "R")])
    f, p = signal.welch(seg, fs=fs, nperseg=1024)
    assert 60 <= f[np.argmax(p)] <= 120
    c = np.cumsum(p) / np.sum(p)
    assert 80 <= f[np.searchsorted(c, 0.5)] <= 140  # median frequency
    assert c[np.searchsorted(f, 250)] > 0.85  # most power below 250 Hz


def test_mains_present_at_configured_frequency():
    for mains in (50, 60):
        rec = simulate("control", seed=1, mains_hz=mains, protocol=[("REST", 10.0)])
        f, p = signal.welch(rec.hands["L"].emg["FLEX"], fs=rec.emg_rate, nperseg=4096)
        band = (f > 30) & (f < 450)
        assert abs(f[band][np.argmax(p[band])] - mains) < 1.0


def test_raw_emg_has_offset_and_wander():
    rec = simulate("control", seed=2, protocol=[("REST", 20.0)])
    x = rec.hands["R"].emg["FLEX"]
    assert 400 < abs(np.mean(x)) < 3500  # electrode DC offset, mV range
    slow = signal.sosfiltfilt(signal.butter(2, 1.0, "lowpass", fs=rec.emg_rate, output="sos"), x - np.mean(x))
    assert 5 < np.ptp(slow[2000:-2000]) < 600


# ---------------------------------------------------------------------------------------------
# IMU


def test_gravity_at_rest():
    rec = simulate("moderate", seed=3, emg_rate=500)
    for h in HANDS:
        acc = rec.hands[h].acc
        first_rest = slice(0, int(15 * IMU_RATE_HZ))
        norm = np.linalg.norm(acc[first_rest], axis=1)
        assert abs(np.median(norm) - 1.0) < 0.03
        assert np.median(acc[first_rest, 2]) > 0.95  # palm down: +Z up
        assert np.all(np.abs(np.median(rec.hands[h].gyr[first_rest], axis=0)) < 1.0)


def test_writing_strokes_in_imu():
    rec = simulate("mild", seed=2, emg_rate=500)
    w = next(a for a in rec.annotations if a.text == "WRITE L")
    s = slice(int((w.onset + 5) * IMU_RATE_HZ), int((w.end - 5) * IMU_RATE_HZ))
    gyr = rec.hands["L"].gyr[s]
    f, p = signal.welch(gyr[:, 2] - gyr[:, 2].mean(), fs=IMU_RATE_HZ, nperseg=512)
    assert 2.5 <= f[np.argmax(p)] <= 6.5
    assert 3 < np.std(gyr[:, 2]) < 40
    acc = rec.hands["L"].acc[s]
    assert 0.02 < np.std(acc[:, 1]) < 0.2
    # gravity still about 1 g on average while writing
    assert abs(np.median(np.linalg.norm(acc, axis=1)) - 1.0) < 0.1


def test_mirror_posturing_in_imu():
    rec = simulate("severe", seed=6, emg_rate=500)
    gyr, acc = rec.hands["R"].gyr, rec.hands["R"].acc
    moved = 0
    mir = [a for a in rec.truth("MIRROR", "R") if a.duration >= 0.8]
    assert mir
    for a in mir:
        j0 = int(a.onset * IMU_RATE_HZ)
        j1 = int(a.end * IMU_RATE_HZ)
        before = acc[max(0, j0 - 10) : j0, 0].mean()
        during = acc[j1 - 5 : j1, 0].mean()
        # wrist flexion tilts the fingers (X) down: ACC X decreases; GYR Y shows the rotation
        if before - during > math.sin(math.radians(5)) * 0.9 and gyr[j0:j1, 1].max() > 5:
            moved += 1
    assert moved >= 0.8 * len(mir)


def test_knock_shows_in_acc():
    seen = 0
    for seed in range(8):
        rec = simulate("control", seed=seed, emg_rate=500)
        for h in HANDS:
            acc = rec.hands[h].acc
            for a in rec.truth("ARTIFACT", h):
                j0 = int(a.onset * IMU_RATE_HZ)
                jerk = np.abs(np.diff(acc[max(0, j0 - 2) : j0 + 8], axis=0)).max()
                if jerk > 0.3:
                    seen += 1
    assert seen >= 3  # knocks (about a third of artifacts) jolt the accelerometer


# ---------------------------------------------------------------------------------------------
# performance


def test_fast_enough():
    simulate("severe", seed=0, emg_rate=2048, protocol=[("REST", 1.0)])  # warm-up
    t0 = time.perf_counter()
    rec = simulate("severe", seed=0, emg_rate=2048)
    dt = time.perf_counter() - t0
    assert rec.duration == pytest.approx(155.0)
    assert dt < 2.0, f"155 s at 2048 Hz took {dt:.2f} s"
