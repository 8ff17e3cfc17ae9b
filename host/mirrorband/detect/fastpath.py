"""Exact vectorised numpy port of the band's fixed-point pipeline.

Every stage of ``firmware/mbfw`` is written so that a whole recording can be
computed at once with integer numpy operations and give bit-identical values:
comb notch and box high-pass (differences of cumulative sums), rectified window
sums, box envelopes, block quantiles, hysteresis runs. Only the block-level
baseline update and the per-event bookkeeping are loops, over blocks (0.5 s)
and bursts. Finalisation (artifact rejection, classification, feature scaling)
is the firmware's own :func:`mbfw.detector.finalize`, so the rules live in one
place. ``tests/host/test_fastpath.py`` checks identity against the firmware.

Functions follow ``<modality>_<verb>`` naming; every array is int64 and every
rate is fixed by the band: EMG 1000 Hz (0.5 µV counts), IMU 104 Hz, windows of
10 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mbfw import baseline as fw_baseline
from mbfw.config import Config
from mbfw.detector import (
    FEAT_WIN,
    KNOCK_WIN,
    ONSET_WIN,
    R_ANCHOR,
    R_AREA,
    R_CH,
    R_GX,
    R_GY,
    R_GZ,
    R_HF,
    R_HF0,
    R_JMAX,
    R_K0,
    R_K1,
    R_LF,
    R_LF0,
    R_MIN,
    R_N,
    R_NF,
    R_PEAK,
    R_PEER,
    R_STEP,
    R_SUM,
    R_UNK,
    finalize,
    merge_into,
)
from mbfw.emg import BOX, HALF, LF_MAX, comb_delay
from mbfw.events import EV_NF
from mbfw.imu import ACC_MAX, GYR_MAX
from mbfw.pipeline import ENV_MAX, ENV_WIN, HF_MAX, JERK_WIN, Q_MAX
from mbfw.task import STEP_NONE, write_step
from mirrorband.detect.bandio import WINDOW, HandStream

_I = np.int64


def _lagged(x: np.ndarray, lag: int, fill: int) -> np.ndarray:
    """x[n - lag] with x[<0] = fill."""
    out = np.empty_like(x)
    out[:lag] = fill
    out[lag:] = x[:-lag] if lag else x
    return out


def _window_sum(x: np.ndarray, width: int) -> np.ndarray:
    """sum of x[n-width+1 .. n] with x[<0] = 0 (exact, int64)."""
    c = np.cumsum(x, dtype=_I)
    out = c.copy()
    out[width:] -= c[:-width]
    return out


def _window_max(x: np.ndarray, width: int) -> np.ndarray:
    """max of x[n-width+1 .. n] with x[<0] = 0 (x >= 0)."""
    out = x.copy()
    for lag in range(1, width):
        np.maximum(out, _lagged(x, lag, 0), out=out)
    return out


def emg_condition(x: np.ndarray, mains_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """EMG counts at 1000 Hz -> (raw, lf) per 10 ms window, as ``mbfw.emg``.

    raw: sum of |high-passed| samples per window; lf: low-frequency level at
    the window end. ``len(x)`` must be a multiple of 10.
    """
    x = x.astype(_I)
    c = x - _lagged(x, comb_delay(mains_hz), int(x[0]))
    s = _window_sum(c, BOX)
    h = _lagged(c, HALF, 0) - (s >> 5)
    raw = np.abs(h).reshape(-1, WINDOW).sum(axis=1)
    lf = np.minimum(np.abs(s[WINDOW - 1::WINDOW]) >> 7, LF_MAX)
    return raw, lf


def emg_envelope(raw: np.ndarray) -> np.ndarray:
    """40 ms envelope (sum of the last 4 windows), clipped like the band."""
    return np.minimum(_window_sum(raw, ENV_WIN), ENV_MAX)


def emg_baseline(env: np.ndarray, hold_w: np.ndarray | None = None) -> np.ndarray:
    """Baseline in force at each window, as ``mbfw.baseline`` (0 = none yet).

    Minimum of the last ``MS_LEN`` block levels; blocks ending in a hold
    window (the hand's own WRITE step) leave the ring untouched, and so do
    blocks of signal loss until ``MS_LEN`` of them come in a row.
    """
    blk = fw_baseline.BLOCK
    k = len(env)
    nb = k // blk
    per_block = np.zeros(nb + 1, dtype=_I)
    if nb:
        blocks = env[: nb * blk].reshape(nb, blk)
        srt = np.sort(blocks, axis=1)
        q = np.maximum(srt[:, fw_baseline.QUANT],
                       (srt[:, fw_baseline.QHI] * fw_baseline.SPREAD_MUL) >> 4).tolist()
        hold = (hold_w[blk - 1: nb * blk: blk].tolist() if hold_w is not None else [False] * nb)
        ring: list[int] = []
        b = 0
        low = 0
        for j in range(nb):
            skip = False
            if ring:
                if hold[j]:
                    skip = True
                elif q[j] * fw_baseline.DROP >= b:
                    low = 0
                else:
                    low += 1
                    if low >= fw_baseline.MS_LEN:
                        low = 0
                        ring = []
                    else:
                        skip = True
            if not skip:
                ring.append(q[j])
                if len(ring) > fw_baseline.MS_LEN:
                    ring.pop(0)
                b = max(min(ring), fw_baseline.B_MIN)
            per_block[j + 1] = b
    return np.repeat(per_block, blk)[:k]


def emg_ratio(env: np.ndarray, base: np.ndarray) -> np.ndarray:
    """envelope / baseline, x16, 0 where there is no baseline yet."""
    q = (env << 4) // np.maximum(base, 1)
    return np.where(base > 0, np.minimum(q, Q_MAX), 0)


def imu_features(s: HandStream, k: int) -> tuple[np.ndarray, ...]:
    """Per-window (stroke, jerk, gx, gy, gz) as ``mbfw.imu``; zeros without IMU."""
    zeros = np.zeros(k, dtype=_I)
    if s.acc is None or s.gyr is None or s.imu_win is None:
        return zeros, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    win = s.imu_win.astype(_I)
    keep = win < k
    win = win[keep]
    a = np.clip(s.acc[keep].astype(_I), -ACC_MAX, ACC_MAX)
    g = np.clip(s.gyr[keep].astype(_I), -GYR_MAX, GYR_MAX)
    if len(win) == 0:
        return zeros, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    e = np.zeros(len(win), dtype=_I)
    jerk = np.zeros(len(win), dtype=_I)
    for ax in range(3):
        col = a[:, ax]
        a0 = int(col[0])
        ext = np.concatenate([np.full(24, a0, dtype=_I), col])
        cs = np.cumsum(ext)
        n0 = 24
        idx = np.arange(n0, n0 + len(col))
        s6 = cs[idx] - cs[idx - 6]
        s24 = cs[idx] - cs[idx - 24]
        e += np.abs(4 * s6 - s24)
        jerk += np.abs(col - _lagged(col, 1, a0))
    se = _window_sum(e, 26)
    stroke = np.zeros(k, dtype=_I)
    # stroke held from the last IMU sample at or before each window
    last = np.searchsorted(win, np.arange(k), side="right") - 1
    stroke = np.where(last >= 0, se[np.maximum(last, 0)], 0)
    jw = np.zeros(k, dtype=_I)
    np.maximum.at(jw, win, jerk)
    gs = []
    for ax in range(3):
        gw = np.zeros(k, dtype=_I)
        np.add.at(gw, win, g[:, ax])
        gs.append(gw)
    return stroke, jw, gs[0], gs[1], gs[2]


def task_steps(points: Sequence[tuple[int, int]], k: int, t0: int = 0) -> np.ndarray:
    """Step kind at the start of each window, as ``mbfw.task``."""
    if not points:
        return np.full(k, STEP_NONE, dtype=_I)
    starts = np.array([p[0] for p in points], dtype=_I)
    kinds = np.array([p[1] for p in points], dtype=_I)
    t = t0 + np.arange(k, dtype=_I) * WINDOW
    i = np.searchsorted(starts, t, side="right") - 1
    return np.where(i >= 0, kinds[np.maximum(i, 0)], STEP_NONE)


class HandAnalysis:
    """Per-window quantities of one band (what ``Hand.analyse`` computes)."""

    def __init__(self, s: HandStream, cfg: Config, points: Sequence[tuple[int, int]]):
        k = s.n_windows
        self.k = k
        self.nch = s.nch
        self.has_imu = s.has_imu
        self.cfg = cfg
        self.step = task_steps(points, k)
        hold = self.step == write_step(cfg.hand)
        qs, hf, lf = [], np.zeros(k, dtype=_I), np.zeros(k, dtype=_I)
        for c in range(s.nch):
            raw, lfc = emg_condition(s.emg[c], cfg.mains_hz)
            env = emg_envelope(raw)
            qs.append(emg_ratio(env, emg_baseline(env, hold)))
            hf += raw >> 4
            lf += lfc
        self.qf = qs[0]
        self.qe = qs[1] if s.nch == 2 else np.zeros(k, dtype=_I)
        self.a = np.maximum(self.qf, self.qe)
        self.hf = np.minimum(hf, HF_MAX)
        self.lf = np.minimum(lf, HF_MAX)
        stroke, jerk, self.gx, self.gy, self.gz = imu_features(s, k)
        self.j = _window_max(jerk, JERK_WIN) if s.has_imu else np.zeros(k, dtype=_I)
        act = self.a > cfg.t_act
        if s.has_imu:
            act |= stroke > cfg.s_act
        idx = np.arange(k, dtype=_I)
        last = np.maximum.accumulate(np.where(act, idx, -1000000))
        self.act = (idx - last <= cfg.act_hold).astype(_I)


def emg_bursts(h: HandAnalysis, peer: np.ndarray | None, t0: int = 0) -> list[tuple[int, ...]]:
    """Hysteresis runs -> merged, finalised events, as ``mbfw.detector``."""
    cfg = h.cfg
    a = h.a
    k = h.k
    above = a > cfg.t_off
    d = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    if len(starts) == 0:
        return []
    run_max = np.maximum.reduceat(np.append(a, 0), np.ravel(np.column_stack([starts, ends + 1])))[::2]
    active = run_max > cfg.t_on
    starts, ends = starts[active].tolist(), ends[active].tolist()

    def csum(x: np.ndarray) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(x, dtype=_I)])

    c_a = csum(a)
    c_min = csum(np.minimum(h.qf, h.qe))
    c_sum = csum(h.qf + h.qe)
    c_hf, c_lf = csum(h.hf), csum(h.lf)
    c_gx, c_gy, c_gz = csum(h.gx), csum(h.gy), csum(h.gz)
    c_peer = csum(peer) if peer is not None else None
    qf_on = h.qf > cfg.t_on
    qe_on = h.qe > cfg.t_on

    out: list[tuple[int, ...]] = []
    ev = [0] * EV_NF
    pend: list[int] | None = None

    def push(p: list[int]) -> None:
        if finalize(p, cfg, h.nch, h.has_imu, t0, ev):
            out.append(tuple(ev))

    for s, e in zip(starts, ends, strict=True):
        if pend is not None and s - pend[R_K1] - 1 <= cfg.merge_gap:
            anchor = pend[R_K0]
        else:
            if pend is not None:
                push(pend)
                pend = None
            anchor = s
        r = [0] * R_NF
        r[R_K0], r[R_K1], r[R_ANCHOR], r[R_STEP] = s, e, anchor, int(h.step[s])
        fe = min(e, anchor + FEAT_WIN - 1)
        if fe >= s:
            lo, hi = s, fe + 1
            n = hi - lo
            r[R_N] = n
            r[R_PEAK] = int(a[lo:hi].max())
            r[R_AREA] = int(c_a[hi] - c_a[lo])
            r[R_MIN] = int(c_min[hi] - c_min[lo])
            r[R_SUM] = int(c_sum[hi] - c_sum[lo])
            if c_peer is None:
                r[R_UNK] = n
            else:
                r[R_PEER] = int(c_peer[hi] - c_peer[lo])
            r[R_CH] = int(qf_on[lo:hi].any()) | (int(qe_on[lo:hi].any()) << 1)
            kh = min(hi, anchor + KNOCK_WIN)
            if kh > lo:
                r[R_JMAX] = int(h.j[lo:kh].max())
            r[R_HF] = int(c_hf[hi] - c_hf[lo])
            r[R_LF] = int(c_lf[hi] - c_lf[lo])
            oh = min(hi, anchor + ONSET_WIN)
            if oh > lo:
                r[R_HF0] = int(c_hf[oh] - c_hf[lo])
                r[R_LF0] = int(c_lf[oh] - c_lf[lo])
            r[R_GX] = int(c_gx[hi] - c_gx[lo])
            r[R_GY] = int(c_gy[hi] - c_gy[lo])
            r[R_GZ] = int(c_gz[hi] - c_gz[lo])
        if anchor != s:
            assert pend is not None
            merge_into(pend, r)
        else:
            pend = r
    if pend is not None:
        push(pend)
    del k
    return out


def run_numpy(recs: Sequence[HandStream], points: list[tuple[int, int]],
              overrides: dict[str, int] | None = None) -> list[tuple[int, ...]]:
    """The numpy port over both bands; same raw event tuples as the firmware."""
    from mirrorband.detect.replay import hand_config, sort_events

    overrides = overrides or {}
    an = [HandAnalysis(s, hand_config(s.hand, **overrides), points) for s in recs]
    out: list[tuple[int, ...]] = []
    for i, h in enumerate(an):
        peer = an[1 - i].act if len(an) == 2 else None
        out.extend(emg_bursts(h, peer))
    return sort_events(out)
