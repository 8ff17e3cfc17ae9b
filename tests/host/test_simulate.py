"""The synthetic patient simulator: determinism, protocol, ground truth, physiology."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import signal

from mirrorband.recording import HANDS, IMU_RATE_HZ, RecordingError
from mirrorband.sim.simulate import MIN_GAP_S, SCENARIOS, default_protocol, parse_scenario, simulate

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


# ---------------------------------------------------------------------------------------------
# model 1 stays byte-identical; model 2 (docs/simulator.md, "Model 2")

import hashlib  # noqa: E402

from mirrorband.sim import simfit  # noqa: E402
from mirrorband.sim.simulate import V2_MOTION_GAIN, V2_SPECTRA, simulated_set_v2  # noqa: E402


def rec_hash(rec):
    h = hashlib.sha256()
    for hd in sorted(rec.hands):
        s = rec.hands[hd]
        for ch in ("FLEX", "EXT"):
            h.update(np.ascontiguousarray(s.emg[ch], dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(s.acc, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(s.gyr, dtype="<f8").tobytes())
    for a in rec.annotations:
        h.update(f"{a.onset:.3f} {a.duration:.3f} {a.text};".encode())
    return h.hexdigest()


#: computed from model 1 before model 2 was added (numpy 2.4 in the project venv)
V1_HASHES = [
    ("moderate-L", {"seed": 3, "emg_rate": 1000, "protocol": SHORT},
     "3f43f284f22f3dd8e786707495942ede06ffbb6839a83364dbae979e256d637c"),
    ("mild-L", {"seed": 2, "emg_rate": 2048, "mains_hz": 60, "protocol": [("REST", 3.0), ("WRITE R", 6.0)]},
     "bcc29e1c442c7c3c74ea49b22b06c84af0bbd3cd2308a4268920fbc4c4e82b97"),
]


@pytest.mark.parametrize("scenario,kw,digest", V1_HASHES)
def test_model1_byte_identical(scenario, kw, digest):
    assert rec_hash(simulate(scenario, **kw)) == digest
    assert rec_hash(simulate(scenario, model=1, **kw)) == digest


@pytest.mark.parametrize("bad", [0, 3, "2", True, None])
def test_bad_model(bad):
    with pytest.raises(RecordingError, match="model"):
        simulate("mild", model=bad, protocol=SHORT)


def test_bad_rest_flag():
    with pytest.raises(RecordingError, match="rest"):
        simulate("mild", rest="no", protocol=SHORT)


def test_v2_deterministic_and_distinct_from_v1():
    a = simulate("severe-L", seed=4, model=2, protocol=SHORT)
    b = simulate("severe-L", seed=4, model=2, protocol=SHORT)
    assert rec_hash(a) == rec_hash(b)
    assert rec_hash(a) != rec_hash(simulate("severe-L", seed=5, model=2, protocol=SHORT))
    assert rec_hash(a) != rec_hash(simulate("severe-L", seed=4, protocol=SHORT))


def test_v2_no_rest_protocol():
    for model in (1, 2):
        rec = simulate("moderate", seed=1, model=model, rest=False)
        assert not [a for a in rec.annotations if a.text == "REST"]
        assert [a.text for a in rec.task_annotations()] == ["WRITE L", "WRITE R"]
        assert rec.truth("MIRROR", "R") and rec.duration == pytest.approx(155.0)


def _v2_mirrors(sev, seeds, rate=1000, hand="R"):
    for seed in seeds:
        rec = simulate(sev, seed=seed, model=2, emg_rate=rate)
        yield rec, rec.hands[hand], rec.truth("MIRROR", hand)


def test_v2_burst_spectrum_in_real_range():
    med, hf = [], []
    for rec, hs, mir in _v2_mirrors("severe", range(3), rate=2048):
        x = hs.emg["FLEX"]
        fs = rec.emg_rate
        for a in mir:
            if a.duration >= 0.3:
                m, h = simfit.spectral_stats(x[int(a.onset * fs) : int(a.end * fs)], fs)
                med.append(m)
                hf.append(h)
    assert len(med) >= 10
    # real PLUX bursts: median 70-109 Hz, 3-21 % above 150 Hz (docs/simulator.md); model 1 sits at ~115 Hz
    assert 60 <= np.median(med) <= 110 and np.percentile(med, 90) <= 125
    assert 0.03 <= np.median(hf) <= 0.18 and np.percentile(hf, 90) <= 0.25


def test_v2_lf_content_and_imu_motion_in_bursts():
    ratios, moved, n = [], 0, 0
    for rec, hs, mir in _v2_mirrors("moderate", range(3)):
        x = hs.emg["FLEX"]
        long = [a for a in mir if a.duration >= 0.3]
        ratios += simfit.lfhf_ratio(x - x.mean(), rec.emg_rate, [(a.onset, a.end) for a in long])
        for a in long:
            j0, j1 = int(a.onset * IMU_RATE_HZ), int(a.end * IMU_RATE_HZ) + 5
            rot = np.ptp(hs.gyr[j0:j1, 1])
            jerk = np.ptp(np.linalg.norm(hs.acc[j0:j1], axis=1))
            n += 1
            moved += rot > 5 and jerk > 0.01
    # real bursts that move the limb: 0.12-0.34 (issue 12), UCI corrected 0.29-0.37; model 1: 0.04
    assert 0.12 <= np.median(ratios) <= 0.4, np.median(ratios)
    assert np.percentile(ratios, 10) > 0.08
    assert moved >= 0.9 * n


def test_v1_bursts_have_little_lf_content():
    """The same measure on model 1 (what model 2 fixes): bursts at ~0.04."""
    rec = simulate("moderate", seed=0)
    x = rec.hands["R"].emg["FLEX"]
    r = simfit.lfhf_ratio(x - x.mean(), rec.emg_rate, [(a.onset, a.end) for a in rec.truth("MIRROR", "R")])
    assert np.median(r) < 0.08


def _peak_ratio(rec, hs, a):
    fs = rec.emg_rate
    y = clean(hs.emg["FLEX"], fs)
    w = int(0.04 * fs)
    env = np.convolve(np.abs(y), np.ones(w) / w, "same")
    i0, i1 = int(a.onset * fs), int(a.end * fs)
    return env[i0:i1].max() / np.median(env[max(0, i0 - int(0.4 * fs)) : i0 - int(0.05 * fs)])


def test_v2_mild_bursts_are_mild():
    ratios = [_peak_ratio(rec, hs, a) for rec, hs, mir in _v2_mirrors("mild", range(4)) for a in mir]
    assert len(ratios) >= 10
    assert 3.0 <= np.median(ratios) <= 7.0, np.median(ratios)
    assert np.mean((np.array(ratios) > 2.0) & (np.array(ratios) < 10.0)) >= 0.75


def test_v2_brief_partial_activations():
    brief = []
    for rec, hs, mir in _v2_mirrors("moderate", range(4)):
        brief += [(rec, hs, a) for a in mir if a.duration <= 0.15]
    assert len(brief) >= 3
    for rec, hs, a in brief:
        assert 0.08 <= a.duration <= 0.15
        assert _peak_ratio(rec, hs, a) > 1.5  # a real activation, visible in the EMG
    rest_brief = sum(1 for s in range(4) for a in simulate("control", seed=s, model=2).truth("BURST")
                     if a.duration <= 0.15)
    assert rest_brief >= 1


def test_v2_artifacts_overlap_bursts():
    overlap = 0
    for seed in range(6):
        rec = simulate("severe", seed=seed, model=2)
        for h in HANDS:
            bursts = rec.truth("MIRROR", h) + rec.truth("BURST", h)
            for art in rec.truth("ARTIFACT", h):
                overlap += any(art.onset < b.end and art.end > b.onset for b in bursts)
            # bursts stay apart from each other
            bs = sorted(bursts, key=lambda a: a.onset)
            assert all(n.onset >= p.end + MIN_GAP_S - 1e-9 for p, n in zip(bs, bs[1:], strict=False))
    assert overlap >= 2


def test_v2_rest_is_not_stationary():
    ratios = []
    for seed in range(4):
        rec = simulate("moderate", seed=seed, model=2, emg_rate=500)
        y = clean(rec.hands["R"].emg["FLEX"], 500)
        mask = np.ones(len(y), bool)
        for a in rec.truth("MIRROR", "R") + rec.truth("BURST", "R") + rec.truth("ARTIFACT", "R"):
            mask[max(0, int((a.onset - 0.5) * 500)) : int((a.end + 3) * 500)] = False
        w = 2500  # 5 s blocks of background
        lv = [np.sqrt(np.mean(y[i : i + w][mask[i : i + w]] ** 2)) for i in range(0, len(y) - w, w)
              if mask[i : i + w].mean() > 0.5 and not any(
                  a.onset * 500 < i + w and a.end * 500 > i for a in rec.annotations if a.text == "WRITE R")]
        ratios.append(max(lv) / min(lv))
    assert np.median(ratios) >= 1.8, ratios


def test_v2_every_rate_and_mains():
    for rate, mains in ((500, 60), (2048, 50), (777.7, 60)):
        rec = simulate("mild-L", seed=2, model=2, emg_rate=rate, mains_hz=mains, protocol=SHORT)
        assert rec.emg_rate == rate
        for hs in rec.hands.values():
            assert all(np.all(np.isfinite(x)) for x in hs.emg.values())
            assert np.all(np.isfinite(hs.acc)) and np.all(np.isfinite(hs.gyr))


def test_simulated_set_v2_covers_the_grid():
    specs = simulated_set_v2(range(3))
    assert len(specs) == 3 * 16
    assert {s["emg_rate"] for s in specs} == {500.0, 1000.0, 2048.0}
    assert {s["mains_hz"] for s in specs} == {50, 60} and {s["rest"] for s in specs} == {True, False}
    assert {s["scenario"] for s in specs} == {f"{v}-{h}" for v in ("control", "mild", "moderate", "severe")
                                              for h in "LR"}
    assert len(simulated_set_v2([7], full=True)) == 96
    rec = simulate(**specs[5] | {"protocol": SHORT})
    assert rec.name.startswith("sim2-")


def test_v2_constants_match_the_fit():
    """The fitted numbers in simulate.py are what simfit gets from the shared data (skips without it)."""
    try:
        from mirrorband.analysis.datasets import load_plux

        x = load_plux("emg_1000_hz_16_bits_solo").hands["R"].emg["FLEX"]
    except (FileNotFoundError, ImportError):
        pytest.skip("shared data not available")
    x = x - x.mean()
    segs = simfit.segment_bursts(x, 1000.0)
    pairs = [tuple(round(v) for v in simfit.fit_spectrum(x[a:b], 1000.0)) for a, b in segs]
    assert pairs == list(V2_SPECTRA[-len(pairs):])
    assert V2_MOTION_GAIN[0] < V2_MOTION_GAIN[1]


def test_v2_fast_enough():
    t0 = time.perf_counter()
    simulate("severe", seed=0, emg_rate=2048, model=2)
    assert time.perf_counter() - t0 < 3.0


def _v2_range_specs():
    """The spec that once reached -7.4e7 uV, severe seed 2 at every side/REST, and a seeded sample of the full set."""
    specs = [{"scenario": "severe-R", "seed": 2, "emg_rate": 2048.0, "mains_hz": 60, "rest": False, "model": 2}]
    full = simulated_set_v2([1, 2, 3], full=True)
    specs += [s for s in full if s["seed"] == 2 and s["scenario"].startswith("severe")
              and s["emg_rate"] == 500.0 and s["mains_hz"] == 50]
    rng = np.random.default_rng(12)
    specs += [full[i] for i in rng.choice(len(full), 14, replace=False)]
    return specs


def test_v2_emg_in_physiological_range():
    """Model-2 EMG stays finite and physiological over a sweep of specs (EDF headers need bounded values).

    Raw |EMG| (electrode offset, wander, artifacts included) < 20 mV; the 20 Hz
    high-passed 1 s RMS < 3 mV. Regression: a burst's amplitude was once taken
    relative to the running power, previous bursts' residuals included, so dense
    severe mirror bursts compounded geometrically to ~1e7 uV.
    """
    specs = _v2_range_specs()
    assert len(specs) >= 15
    worst_raw, worst_rms = 0.0, 0.0
    for spec in specs:
        rec = simulate(**spec)
        fs = rec.emg_rate
        sos = signal.butter(4, 20, "highpass", fs=fs, output="sos")
        for hand, hs in rec.hands.items():
            for ch, x in hs.emg.items():
                assert np.all(np.isfinite(x)), (spec, hand, ch)
                raw = float(np.max(np.abs(x)))
                y = signal.sosfiltfilt(sos, x)
                rms = float(np.sqrt(np.convolve(y * y, np.ones(int(fs)) / int(fs), "valid").max()))
                assert raw < 20000.0, (spec, hand, ch, raw)
                assert rms < 3000.0, (spec, hand, ch, rms)
                worst_raw, worst_rms = max(worst_raw, raw), max(worst_rms, rms)
    # and not trivially small: bursts and offsets are there
    assert worst_raw > 500.0 and worst_rms > 100.0, (worst_raw, worst_rms)
