"""Each firmware stage under CPython: behaviour, and identity with the numpy port."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbfw import baseline as fw_baseline
from mbfw.config import Config, ConfigError
from mbfw.detector import Detector
from mbfw.emg import EmgFrontEnd
from mbfw.events import EV_NF
from mbfw.imu import ImuFeatures, isqrt
from mbfw.task import STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R, Task, TaskError
from mirrorband.detect import fastpath
from mirrorband.detect.bandio import HandStream, imu_window

FS = 1000


def fw_condition(x: np.ndarray, mains: int = 50, block: int = 100) -> tuple[np.ndarray, np.ndarray]:
    fe = EmgFrontEnd(mains)
    raw, lf = [], []
    rb, lb = array("i", bytes(4 * 10)), array("i", bytes(4 * 10))
    for i in range(0, len(x), block):
        seg = array("i", x[i:i + block].astype(np.int32).tobytes())
        nw = fe.process(seg, 0, len(seg), rb, lb)
        raw.extend(rb[:nw])
        lf.extend(lb[:nw])
    return np.array(raw), np.array(lf)


def tone(freq: float, amp: float, n: int = 4000) -> np.ndarray:
    return np.rint(amp * np.sin(2 * np.pi * freq * np.arange(n) / FS)).astype(np.int64)


# --- EMG front end ---------------------------------------------------------------

@pytest.mark.parametrize("mains", [50, 60])
def test_comb_removes_mains_and_harmonics_and_dc(mains):
    x = sum(tone(mains * h, 2000 / h) for h in range(1, 6)) + 50000
    raw, _ = fw_condition(x, mains)
    assert raw[10:].max() <= 10 * 3  # rounding residue only (counts per window)


def test_high_pass_rejects_slow_motion_and_passes_emg_band():
    rng = np.random.default_rng(0)
    slow = fw_condition(tone(3, 1000))[0][10:].mean()
    emg = fw_condition(np.rint(rng.normal(0, 1000 / math.sqrt(2), 4000)).astype(np.int64))[0][10:].mean()
    mid = fw_condition(tone(90, 1000))[0][10:].mean()
    assert slow < 0.05 * mid
    assert emg > 0.5 * mid


def test_low_frequency_level_sees_motion_not_emg():
    _, lf_slow = fw_condition(tone(4, 1000))
    raw_slow, _ = fw_condition(tone(4, 1000))
    raw_fast, lf_fast = fw_condition(tone(90, 1000))
    assert lf_slow[10:].sum() > 4 * raw_slow[10:].sum() / 16
    assert lf_fast[10:].sum() < raw_fast[10:].sum() / 16


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(1 << 19) + 1, (1 << 19) - 1), min_size=200, max_size=1200),
       st.sampled_from([50, 60]), st.sampled_from([10, 50, 100]))
def test_front_end_matches_numpy_port_any_block_size(values, mains, block):
    n = len(values) // 10 * 10
    x = np.array(values[:n], dtype=np.int64)
    raw, lf = fw_condition(x, mains, block)
    raw_np, lf_np = fastpath.emg_condition(x, mains)
    assert raw.tolist() == raw_np.tolist()
    assert lf.tolist() == lf_np.tolist()
    assert max(raw.tolist() + [0]) < 1 << 30


def test_front_end_extremes_stay_below_2_pow_30():
    x = np.tile(np.array([(1 << 19) - 1] * 25 + [-(1 << 19) + 1] * 25, dtype=np.int64), 20)
    raw, lf = fw_condition(x)
    assert raw.max() < 1 << 25 and lf.max() <= 65535


# --- baseline ----------------------------------------------------------------------

def fw_baseline_run(env, hold) -> list[int]:
    """Baseline in force at each window, from the firmware's Baseline."""
    bl = fw_baseline.Baseline()
    out = []
    for v, h in zip(env, hold, strict=True):
        out.append(bl.b)
        bl.add(int(v), bool(h))
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60))
def test_baseline_matches_numpy_port(seed, nblocks):
    rng = np.random.default_rng(seed)
    k = nblocks * fw_baseline.BLOCK + int(rng.integers(0, fw_baseline.BLOCK))
    # levels that jump (bursts, drops to near zero = signal loss, slow drifts)
    lv = rng.choice([0, 3, 500, 1000, 4000, 60000, 1 << 25], size=k // 25 + 1)
    env = np.minimum(np.repeat(lv, 25)[:k] + rng.integers(0, 300, k), (1 << 25) - 1)
    hold = np.repeat(rng.integers(0, 2, k // 100 + 1), 100)[:k].astype(bool)
    ref = fastpath.emg_baseline(env.astype(np.int64), hold)
    assert fw_baseline_run(env, hold) == ref.tolist()
    assert all(v == 0 or v >= fw_baseline.B_MIN for v in ref.tolist())


def _blocks(*levels_and_counts, jitter=100, seed=1):
    rng = np.random.default_rng(seed)
    parts = [np.full(n * fw_baseline.BLOCK, lv) for lv, n in levels_and_counts]
    env = np.concatenate(parts)
    return env + rng.integers(0, jitter, len(env))


def test_baseline_is_robust_to_a_burst():
    bl = fw_baseline.Baseline()
    rng = np.random.default_rng(1)
    env = rng.integers(900, 1100, 50 * 20)
    env[300:330] = 50000  # a burst
    for v in env:
        bl.add(int(v), False)
    assert 900 <= bl.b <= 1100


def test_baseline_without_rest_adapts_down_at_once_and_up_within_the_ring():
    nb = fw_baseline.MS_LEN
    env = _blocks((8000, 1), (1000, 20), (5000, nb + 2))
    b = fw_baseline_run(env, [False] * len(env))
    blk = fw_baseline.BLOCK
    assert b[blk + 1] <= 8100  # recording starts inside a burst: its level first
    assert 1000 <= b[2 * blk + 1] < 1200  # then down as soon as a quiet block ends
    up = 21 * blk
    assert b[up + (nb - 1) * blk] < 1200  # a level lasting less than the ring does not lift it
    assert 5000 <= b[up + (nb + 1) * blk] < 5200  # one lasting longer is the new rest


def test_baseline_ignores_bursts_shorter_than_the_ring():
    rng = np.random.default_rng(3)
    env = np.array([1000 if i % 300 < 200 else 30000 for i in range(50 * 40)]) + rng.integers(0, 50, 2000)
    b = fw_baseline_run(env, [False] * len(env))
    assert max(b[100:]) < 1300


def test_baseline_holds_during_the_hands_own_writing():
    env = _blocks((1000, 4), (20000, 40))
    hold = [False] * (4 * 50) + [True] * (40 * 50)
    b = fw_baseline_run(env, hold)
    assert max(b[51:]) < 1200  # writing never becomes the baseline


def test_baseline_ignores_signal_loss_until_it_lasts():
    nb = fw_baseline.MS_LEN
    env = _blocks((1000, 4), (0, 3), (1000, 4), (0, nb + 1), jitter=3)
    b = fw_baseline_run(env, [False] * len(env))
    assert min(b[51:11 * 50]) >= 1000  # a flat stretch is not rest
    assert b[-1] == fw_baseline.B_MIN  # unless it lasts as long as the ring


def test_baseline_level_follows_a_fluctuating_rest():
    rng = np.random.default_rng(5)
    steady = rng.integers(950, 1050, 50 * 20)
    bursty = np.where(rng.random(50 * 20) < 0.5, 1000, 4000)  # Myo-like rest: q80/q20 = 4
    b1 = fw_baseline_run(steady, [False] * 1000)[-1]
    b2 = fw_baseline_run(bursty, [False] * 1000)[-1]
    assert 950 <= b1 <= 1050  # stationary rest: its low quantile
    assert b2 == (4000 * fw_baseline.SPREAD_MUL) >> 4  # bursty rest: the raised level


# --- IMU -------------------------------------------------------------------------------

def test_isqrt_exact():
    for n in list(range(2000)) + [(1 << 30) - 1, 123456789, 999999999]:
        assert isqrt(n) == math.isqrt(n)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(50, 400))
def test_imu_features_match_numpy_port(seed, m):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-20000, 20000, (m, 3)).astype(np.int32)
    gyr = rng.integers(-9000, 9000, (m, 3)).astype(np.int32)
    win = imu_window(np.arange(m))
    k = int(win[-1]) + 1
    k -= k % 10
    s = HandStream("R", np.zeros((1, k * 10), dtype=np.int32), acc, gyr, win)
    ref = fastpath.imu_features(s, k)
    imu = ImuFeatures()
    outs = [array("i", bytes(40)) for _ in range(5)]
    got = [[] for _ in range(5)]
    for b in range(0, k, 10):
        sel = np.flatnonzero((win >= b) & (win < b + 10))
        rows = np.column_stack([win[sel] - b, acc[sel], gyr[sel]]).astype(np.int32)
        imu.process(array("i", rows.tobytes()), len(sel), 10, *outs)
        for g, o in zip(got, outs, strict=True):
            g.extend(o)
    for g, r in zip(got, ref, strict=True):
        assert g == r.tolist()


# --- task ----------------------------------------------------------------------------------

def test_task_steps_and_validation():
    t = Task()
    t.set([(1000, STEP_REST), (16000, STEP_WRITE_L), (76000, STEP_NONE), (80000, STEP_WRITE_R)])
    assert [t.step_at(x) for x in (0, 999, 1000, 15999, 16000, 76000, 90000)] == \
        [STEP_NONE, STEP_NONE, STEP_REST, STEP_REST, STEP_WRITE_L, STEP_NONE, STEP_WRITE_R]
    assert t.step_at(5000) == STEP_REST  # time going back is handled
    for bad in ([(5, STEP_REST), (5, STEP_REST)], [(-1, STEP_REST)], [(0, 9)], [(i, 1) for i in range(33)]):
        with pytest.raises(TaskError):
            t.set(bad)


# --- config -----------------------------------------------------------------------------------

def test_config_validates_ranges():
    assert Config().t_on > Config().t_off
    for bad in ({"mains_hz": 55}, {"t_on": 10}, {"t_off": 200, "t_on": 100}, {"hand": 2},
                {"nonsense": 1}, {"t_on": 1.5}):
        with pytest.raises(ConfigError):
            Config(**bad)


# --- detector: firmware state machine == vectorised runs ----------------------------------

class _Fake:
    """A HandAnalysis with given per-window arrays (for fastpath.emg_bursts)."""

    def __init__(self, cfg, a, qf, qe, j, step):
        k = len(a)
        self.cfg, self.k, self.nch, self.has_imu = cfg, k, 2, True
        self.a, self.qf, self.qe, self.j, self.step = a, qf, qe, j, step
        z = np.zeros(k, dtype=np.int64)
        self.hf, self.lf = np.full(k, 1000, dtype=np.int64), z
        self.gx, self.gy, self.gz = z + 30, z - 20, z


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans(), st.integers(1, 30), st.integers(0, 30))
def test_detector_state_machine_matches_vectorised_runs(seed, peer_known, min_win, gap):
    rng = np.random.default_rng(seed)
    k = 600
    # piecewise-constant ratios around the thresholds, so runs start, merge and drop
    levels = rng.choice([0, 20, 35, 50, 60, 200], size=k // 10)
    qf = np.repeat(levels, 10) + rng.integers(0, 8, k)
    qe = np.repeat(rng.choice([0, 40, 70], size=k // 10), 10)
    a = np.maximum(qf, qe)
    j = rng.choice([0, 50, 900], size=k, p=[0.8, 0.19, 0.01])
    step = np.repeat(rng.choice([STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R], size=k // 100), 100)
    peer = rng.integers(0, 2, k) if peer_known else None
    cfg = Config(hand=1, min_win=min_win, merge_gap=gap)
    det = Detector(cfg, 2, True)
    got = []
    ev = array("i", bytes(4 * EV_NF))
    for w in range(k):
        det.window(w, int(a[w]), int(qf[w]), int(qe[w]), int(j[w]), 1000, 0, 30, -20, 0,
                   -1 if peer is None else int(peer[w]), int(step[w]))
        while det.pop(ev):
            got.append(tuple(ev))
    det.flush()
    while det.pop(ev):
        got.append(tuple(ev))
    ref = fastpath.emg_bursts(_Fake(cfg, a, qf, qe, j, step), peer)
    assert got == ref
