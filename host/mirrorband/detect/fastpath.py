"""Exact vectorised numpy port of the band's fixed-point pipeline.

Every stage of ``firmware/mbfw`` is written so that a stretch of a recording
(a chunk, or the whole of a short one) can be computed at once with integer
numpy operations and give bit-identical values:
comb notch and box high-pass (differences of cumulative sums), rectified window
sums, box envelopes, block quantiles, hysteresis runs. Only the block-level
baseline update and the per-event bookkeeping are loops, over blocks (0.5 s)
and bursts. Finalisation (artifact rejection, classification, feature scaling)
is the firmware's own :func:`mbfw.detector.finalize`, so the rules live in one
place. ``tests/host/test_fastpath.py`` checks identity against the firmware.

A long recording is run chunk by chunk (:func:`run_numpy`): each stage keeps
the little state it needs across a chunk boundary (the last samples of the
filters, the baseline's ring, the IMU filters' history, the activity hold, an
unfinished burst), so the events are those of the whole recording at once.

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
from mirrorband.detect.bandio import CHUNK, WINDOW, BandInput, HandStream, sort_events

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


def emg_condition(x: np.ndarray, mains_hz: int, prev: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """EMG counts at 1000 Hz -> (raw, lf) per 10 ms window, as ``mbfw.emg``.

    raw: sum of |high-passed| samples per window; lf: low-frequency level at
    the window end. ``len(x)`` must be a multiple of 10. ``prev``: the samples
    just before ``x`` (at least ``comb_delay + BOX`` of them) when ``x``
    continues a stream; None at its start.
    """
    x = x.astype(_I)
    p = comb_delay(mains_hz)
    if prev is None:
        c = x - _lagged(x, p, int(x[0]))
        s = _window_sum(c, BOX)
        h = _lagged(c, HALF, 0) - (s >> 5)
    else:
        xe = np.concatenate([prev[len(prev) - p - BOX:].astype(_I), x])
        ce = xe[p:] - xe[:-p]  # the comb output from BOX samples before x
        s = _window_sum(ce, BOX)[BOX:]
        h = ce[BOX - HALF:len(ce) - HALF] - (s >> 5)
    raw = np.abs(h).reshape(-1, WINDOW).sum(axis=1)
    lf = np.minimum(np.abs(s[WINDOW - 1::WINDOW]) >> 7, LF_MAX)
    return raw, lf


def emg_envelope(raw: np.ndarray) -> np.ndarray:
    """40 ms envelope (sum of the last 4 windows), clipped like the band."""
    return np.minimum(_window_sum(raw, ENV_WIN), ENV_MAX)


class BaselineState:
    """What the baseline carries from one chunk to the next: its ring of block levels."""

    def __init__(self) -> None:
        self.ring: list[int] = []
        self.b = 0
        self.low = 0


def emg_baseline(env: np.ndarray, hold_w: np.ndarray | None = None,
                 state: BaselineState | None = None) -> np.ndarray:
    """Baseline in force at each window, as ``mbfw.baseline`` (0 = none yet).

    Minimum of the last ``MS_LEN`` block levels; blocks ending in a hold
    window (the hand's own WRITE step) leave the ring untouched, and so do
    blocks of signal loss until ``MS_LEN`` of them come in a row. ``state``
    continues a stream (``env`` then starts on a block boundary).
    """
    blk = fw_baseline.BLOCK
    k = len(env)
    nb = k // blk
    st = state if state is not None else BaselineState()
    per_block = np.full(nb + 1, st.b, dtype=_I)
    if nb:
        blocks = env[: nb * blk].reshape(nb, blk)
        srt = np.sort(blocks, axis=1)
        q = np.maximum(srt[:, fw_baseline.QUANT],
                       (srt[:, fw_baseline.QHI] * fw_baseline.SPREAD_MUL) >> 4).tolist()
        hold = (hold_w[blk - 1: nb * blk: blk].tolist() if hold_w is not None else [False] * nb)
        ring, b, low = st.ring, st.b, st.low
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
        st.ring, st.b, st.low = ring, b, low
    return np.repeat(per_block, blk)[:k]


def emg_ratio(env: np.ndarray, base: np.ndarray) -> np.ndarray:
    """envelope / baseline, x16, 0 where there is no baseline yet."""
    q = (env << 4) // np.maximum(base, 1)
    return np.where(base > 0, np.minimum(q, Q_MAX), 0)


class ImuState:
    """What the IMU features carry across chunks: filter histories and the stroke held."""

    def __init__(self) -> None:
        self.acc: np.ndarray | None = None  # (24, 3) last accelerometer samples
        self.e = np.zeros(25, dtype=_I)  # last stroke-energy terms
        self.stroke = 0  # stroke held from the last sample


def imu_features(s: HandStream, k: int, state: ImuState | None = None) -> tuple[np.ndarray, ...]:
    """Per-window (stroke, jerk, gx, gy, gz) as ``mbfw.imu``; zeros without IMU.

    ``s`` covers windows ``s.w0 .. s.w0 + k - 1``; ``state`` continues a stream.
    """
    zeros = np.zeros(k, dtype=_I)
    st = state if state is not None else ImuState()
    if s.acc is None or s.gyr is None or s.imu_win is None:
        return zeros, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    win = s.imu_win.astype(_I) - s.w0
    keep = win < k
    win = win[keep]
    a = np.clip(s.acc[keep].astype(_I), -ACC_MAX, ACC_MAX)
    g = np.clip(s.gyr[keep].astype(_I), -GYR_MAX, GYR_MAX)
    if len(win) == 0:
        return np.full(k, st.stroke, dtype=_I), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    if st.acc is None:
        st.acc = np.repeat(a[:1], 24, axis=0)  # before the first sample: the first sample
    e = np.zeros(len(win), dtype=_I)
    jerk = np.zeros(len(win), dtype=_I)
    for ax in range(3):
        col = a[:, ax]
        ext = np.concatenate([st.acc[:, ax], col])
        cs = np.cumsum(ext)
        n0 = 24
        idx = np.arange(n0, n0 + len(col))
        s6 = cs[idx] - cs[idx - 6]
        s24 = cs[idx] - cs[idx - 24]
        e += np.abs(4 * s6 - s24)
        jerk += np.abs(col - _lagged(col, 1, int(st.acc[-1, ax])))
    ee = np.concatenate([st.e, e])
    se = _window_sum(ee, 26)[len(st.e):]
    st.acc = np.concatenate([st.acc, a])[-24:]
    st.e = ee[-25:]
    # stroke held from the last IMU sample at or before each window
    last = np.searchsorted(win, np.arange(k), side="right") - 1
    stroke = np.where(last >= 0, se[np.maximum(last, 0)], st.stroke)
    st.stroke = int(se[-1])
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


class HandState:
    """What one band's analysis carries from a chunk to the next."""

    def __init__(self, nch: int) -> None:
        self.x: list[np.ndarray | None] = [None] * nch  # last EMG samples per channel
        self.raw = [np.zeros(ENV_WIN - 1, dtype=_I) for _ in range(nch)]  # last raw windows
        self.base = [BaselineState() for _ in range(nch)]
        self.imu = ImuState()
        self.jerk = np.zeros(JERK_WIN - 1, dtype=_I)  # last per-window jerks
        self.last_act = -1000000  # last window with activity


class HandAnalysis:
    """Per-window quantities of one band (what ``Hand.analyse`` computes).

    ``s`` is the whole stream or one chunk of it (windows ``s.w0 ..``); ``state``
    carries the filters across chunks (a fresh one for a stream's first chunk).
    """

    def __init__(self, s: HandStream, cfg: Config, points: Sequence[tuple[int, int]],
                 state: HandState | None = None):
        k = s.n_windows
        st = state if state is not None else HandState(s.nch)
        self.k = k
        self.w0 = s.w0
        self.nch = s.nch
        self.has_imu = s.has_imu
        self.cfg = cfg
        self.step = task_steps(points, k, s.w0 * WINDOW)
        hold = self.step == write_step(cfg.hand)
        keep = comb_delay(cfg.mains_hz) + BOX
        qs, hf, lf = [], np.zeros(k, dtype=_I), np.zeros(k, dtype=_I)
        for c in range(s.nch):
            raw, lfc = emg_condition(s.emg[c], cfg.mains_hz, st.x[c])
            prev = st.x[c]
            st.x[c] = (s.emg[c, -keep:] if s.emg.shape[1] >= keep or prev is None
                       else np.concatenate([prev, s.emg[c]])[-keep:])
            rr = np.concatenate([st.raw[c], raw])
            env = np.minimum(_window_sum(rr, ENV_WIN)[ENV_WIN - 1:], ENV_MAX)
            st.raw[c] = rr[-(ENV_WIN - 1):]
            qs.append(emg_ratio(env, emg_baseline(env, hold, st.base[c])))
            hf += raw >> 4
            lf += lfc
        self.qf = qs[0]
        self.qe = qs[1] if s.nch == 2 else np.zeros(k, dtype=_I)
        self.a = np.maximum(self.qf, self.qe)
        self.hf = np.minimum(hf, HF_MAX)
        self.lf = np.minimum(lf, HF_MAX)
        stroke, jerk, self.gx, self.gy, self.gz = imu_features(s, k, st.imu)
        if s.has_imu:
            jj = np.concatenate([st.jerk, jerk])
            self.j = _window_max(jj, JERK_WIN)[JERK_WIN - 1:]
            st.jerk = jj[-(JERK_WIN - 1):]
        else:
            self.j = np.zeros(k, dtype=_I)
        act = self.a > cfg.t_act
        if s.has_imu:
            act |= stroke > cfg.s_act
        idx = s.w0 + np.arange(k, dtype=_I)
        last = np.maximum.accumulate(np.where(act, idx, st.last_act))
        if k:
            st.last_act = int(last[-1])
        self.act = (idx - last <= cfg.act_hold).astype(_I)


_BURST_ARRAYS = ("a", "qf", "qe", "hf", "lf", "gx", "gy", "gz", "j", "step")


class BurstTracker:
    """Hysteresis runs -> merged, finalised events, as ``mbfw.detector``, fed chunk by chunk.

    A run still above the offset threshold at the end of a chunk is carried (its
    windows so far) into the next; a run waiting to be merged with the next one
    is kept as its feature record until the next run decides.
    """

    def __init__(self, cfg: Config, nch: int, has_imu: bool, t0: int = 0) -> None:
        self.cfg, self.nch, self.has_imu, self.t0 = cfg, nch, has_imu, t0
        self.pend: list[int] | None = None
        self.carry: dict[str, np.ndarray] | None = None
        self.carry_base = 0
        self.out: list[tuple[int, ...]] = []
        self._ev = [0] * EV_NF

    def _push(self, p: list[int]) -> None:
        if finalize(p, self.cfg, self.nch, self.has_imu, self.t0, self._ev):
            self.out.append(tuple(self._ev))

    def feed(self, h, peer: np.ndarray | None, final: bool = False) -> None:
        """Windows of ``h`` (a :class:`HandAnalysis`, from window ``h.w0``) with the other band's activity."""
        arrs = {name: getattr(h, name) for name in _BURST_ARRAYS}
        if peer is not None:
            arrs["peer"] = peer
        base = getattr(h, "w0", 0)
        if self.carry is not None:
            arrs = {name: np.concatenate([self.carry[name], x]) for name, x in arrs.items()}
            base = self.carry_base
            self.carry = None
        self._runs(arrs, base, final)
        if final and self.pend is not None:
            self._push(self.pend)
            self.pend = None

    def _runs(self, arrs: dict[str, np.ndarray], base: int, final: bool) -> None:
        cfg = self.cfg
        a = arrs["a"]
        if len(a) == 0:
            return
        above = a > cfg.t_off
        d = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
        starts = np.flatnonzero(d == 1)
        ends = np.flatnonzero(d == -1) - 1
        if len(starts) == 0:
            return
        if not final and above[-1]:  # the last run goes on in the next chunk
            cut = int(starts[-1])
            self.carry = {name: x[cut:] for name, x in arrs.items()}
            self.carry_base = base + cut
            starts, ends = starts[:-1], ends[:-1]
            if len(starts) == 0:
                return
        run_max = np.maximum.reduceat(np.append(a, 0), np.ravel(np.column_stack([starts, ends + 1])))[::2]
        active = run_max > cfg.t_on
        starts, ends = starts[active].tolist(), ends[active].tolist()
        if not starts:
            return

        def csum(x: np.ndarray) -> np.ndarray:
            return np.concatenate([[0], np.cumsum(x, dtype=_I)])

        qf, qe, j, step = arrs["qf"], arrs["qe"], arrs["j"], arrs["step"]
        c_a = csum(a)
        c_min = csum(np.minimum(qf, qe))
        c_sum = csum(qf + qe)
        c_hf, c_lf = csum(arrs["hf"]), csum(arrs["lf"])
        c_gx, c_gy, c_gz = csum(arrs["gx"]), csum(arrs["gy"]), csum(arrs["gz"])
        c_peer = csum(arrs["peer"]) if "peer" in arrs else None
        qf_on = qf > cfg.t_on
        qe_on = qe > cfg.t_on

        for s, e in zip(starts, ends, strict=True):
            gs, ge = base + s, base + e  # global window indices
            pend = self.pend
            if pend is not None and gs - pend[R_K1] - 1 <= cfg.merge_gap:
                anchor = pend[R_K0]
            else:
                if pend is not None:
                    self._push(pend)
                    self.pend = None
                anchor = gs
            r = [0] * R_NF
            r[R_K0], r[R_K1], r[R_ANCHOR], r[R_STEP] = gs, ge, anchor, int(step[s])
            fe = min(ge, anchor + FEAT_WIN - 1)
            if fe >= gs:
                lo, hi = s, fe - base + 1
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
                kh = min(hi, anchor - base + KNOCK_WIN)
                if kh > lo:
                    r[R_JMAX] = int(j[lo:kh].max())
                r[R_HF] = int(c_hf[hi] - c_hf[lo])
                r[R_LF] = int(c_lf[hi] - c_lf[lo])
                oh = min(hi, anchor - base + ONSET_WIN)
                if oh > lo:
                    r[R_HF0] = int(c_hf[oh] - c_hf[lo])
                    r[R_LF0] = int(c_lf[oh] - c_lf[lo])
                r[R_GX] = int(c_gx[hi] - c_gx[lo])
                r[R_GY] = int(c_gy[hi] - c_gy[lo])
                r[R_GZ] = int(c_gz[hi] - c_gz[lo])
            if anchor != gs:
                assert pend is not None
                merge_into(pend, r)
            else:
                self.pend = r


def emg_bursts(h, peer: np.ndarray | None, t0: int = 0) -> list[tuple[int, ...]]:
    """Hysteresis runs -> merged, finalised events of a whole stream, as ``mbfw.detector``."""
    t = BurstTracker(h.cfg, h.nch, h.has_imu, t0)
    t.feed(h, peer, final=True)
    return t.out


def run_numpy(inp: BandInput, chunk: int = CHUNK) -> list[tuple[int, ...]]:
    """The numpy port over both bands, chunk by chunk; same raw event tuples as the firmware."""
    cfgs = [inp.config(h.hand) for h in inp.hands]
    states = [HandState(h.nch) for h in inp.hands]
    trackers = [BurstTracker(cfg, h.nch, h.has_imu) for cfg, h in zip(cfgs, inp.hands, strict=True)]
    nchunks = -(-inp.n // chunk)
    for c, recs in enumerate(inp.chunks(chunk)):
        an = [HandAnalysis(s, cfg, inp.points, st) for s, cfg, st in zip(recs, cfgs, states, strict=True)]
        for i, h in enumerate(an):
            peer = an[1 - i].act if len(an) == 2 else None
            trackers[i].feed(h, peer, final=c == nchunks - 1)
    out: list[tuple[int, ...]] = []
    for t in trackers:
        out.extend(t.out)
    return sort_events(out)
