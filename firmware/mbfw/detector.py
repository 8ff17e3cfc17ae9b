# Burst detector of one hand, at the 10 ms window rate.
#
# Double threshold (hysteresis): a run is a maximal stretch of windows whose
# hand ratio a (max over channels of envelope/baseline, x16) is above t_off;
# it is a burst when some window in it is above t_on. Bursts whose gap is at
# most merge_gap windows merge into one event; events shorter than min_win
# windows are dropped, and so are brief ones (under short_win) that never
# pass t_short. Features are accumulated per run over the first
# FEAT_WIN windows of the event, so every sum stays below 2**30.
# At finalisation (shared with the host's numpy port): artifact rejection,
# classification (mirror / burst), feature scaling.
from array import array

from micropython import const

from mbfw.events import (
    ART_KNOCK,
    ART_MOTION,
    ART_POP,
    EV_AREA,
    EV_ART,
    EV_CCI,
    EV_CH,
    EV_FLAGS,
    EV_HAND,
    EV_KIND,
    EV_NF,
    EV_OFFSET,
    EV_ONSET,
    EV_PEAK,
    EV_ROT,
    FLAG_JOLT,
    FLAG_MOVEMENT,
    FLAG_PEER_UNKNOWN,
    KIND_ARTIFACT,
    KIND_BURST,
    KIND_MIRROR,
)
from mbfw.imu import isqrt
from mbfw.task import STEP_NONE, STEP_REST, write_step

WIN_MS = const(10)
FEAT_WIN = const(6000)   # features over the first 60 s of an event
KNOCK_WIN = const(3)     # knock test over the first 30 ms
KNOCK_MAX = const(30)    # a knock's EMG transient lasts at most 300 ms
ONSET_WIN = const(5)     # artifact test (LF/HF) over the first 50 ms
QUEUE = const(8)         # finished events waiting to be taken

# run / event accumulator fields
R_K0 = const(0)
R_K1 = const(1)
R_N = const(2)
R_PEAK = const(3)
R_AREA = const(4)
R_MIN = const(5)
R_SUM = const(6)
R_PEER = const(7)
R_UNK = const(8)
R_CH = const(9)
R_JMAX = const(10)
R_HF = const(11)
R_LF = const(12)
R_GX = const(13)
R_GY = const(14)
R_GZ = const(15)
R_ANCHOR = const(16)
R_STEP = const(17)
R_HF0 = const(18)
R_LF0 = const(19)
R_NF = const(20)

_SUMS = (R_N, R_AREA, R_MIN, R_SUM, R_PEER, R_UNK, R_HF, R_LF, R_GX, R_GY, R_GZ, R_HF0, R_LF0)
_SCALE_AT = const(1 << 22)
_LF_SCALE_AT = const(1 << 18)


def merge_into(p, r):
    # event p absorbs the later run r
    p[R_K1] = r[R_K1]
    for f in _SUMS:
        p[f] += r[f]
    if r[R_PEAK] > p[R_PEAK]:
        p[R_PEAK] = r[R_PEAK]
    if r[R_JMAX] > p[R_JMAX]:
        p[R_JMAX] = r[R_JMAX]
    p[R_CH] |= r[R_CH]


def _angle(g):
    # gyro sum (0.1 deg/s * samples at 104 Hz) -> 0.1 deg, clamped
    a = g // 104
    if a > 16000:
        return 16000
    if a < -16000:
        return -16000
    return a


def _lf_rich(lf, hf, lfk):
    # LF/HF above lfk/128, with both sums scaled to stay below 2**30
    if hf > _LF_SCALE_AT or lf > _LF_SCALE_AT:
        hf >>= 12
        lf >>= 12
    return lf * 128 > hf * lfk


def finalize(p, cfg, nch, has_imu, t0, out):
    # event accumulator -> out[0:EV_NF]; returns False when nothing is reported
    hand = cfg.hand
    step = p[R_STEP]
    if step == write_step(hand):
        return False  # the writing hand's own activity is the task
    k0 = p[R_K0]
    k1 = p[R_K1]
    if k1 - k0 + 1 < cfg.min_win:
        return False
    if k1 - k0 + 1 < cfg.short_win and p[R_PEAK] <= cfg.t_short:
        return False  # a brief activation must be strong to count
    n = p[R_N]
    ch = p[R_CH]
    art = 0
    flags = 0
    # A knock jolts the IMU at the very onset of a short transient; a longer
    # event with a jolt is a burst that a knock (or its own movement) overlaps.
    if has_imu and p[R_JMAX] > cfg.jerk_thr:
        if k1 - k0 + 1 <= KNOCK_MAX:
            art = ART_KNOCK
        else:
            flags = FLAG_JOLT
    # Cable motion and electrode pops are LF-dominated from their first window
    # to their last. A real burst that moves the limb is LF-rich too, but it
    # starts as EMG (the movement follows after the electromechanical delay),
    # so it is rejected only when both its onset and the whole event are
    # LF-dominated; LF-rich in one of them, it is kept and flagged. The comb's
    # gain at 1-15 Hz grows with its delay (20 ms at 50 Hz mains, 50 ms at
    # 60 Hz): the rule is scaled by 2 or 5 so it means the same for both.
    if art == 0 and cfg.lf_k:
        lfk = cfg.lf_k * (5 if cfg.mains_hz == 60 else 2)
        at_onset = _lf_rich(p[R_LF0], p[R_HF0], lfk)
        whole = _lf_rich(p[R_LF], p[R_HF], lfk)
        if at_onset and whole:
            art = ART_POP if (nch == 2 and ch != 3) else ART_MOTION
        elif at_onset or whole:
            flags |= FLAG_MOVEMENT
    if art:
        kind = KIND_ARTIFACT
    elif p[R_UNK] * 2 > n:
        flags |= FLAG_PEER_UNKNOWN
        kind = KIND_MIRROR if step == write_step(1 - hand) else KIND_BURST
    elif step == STEP_REST:
        kind = KIND_BURST
    elif (step == STEP_NONE or step == write_step(1 - hand)) and \
            p[R_PEER] * cfg.mirror_frac >= n - p[R_UNK]:
        kind = KIND_MIRROR
    else:
        kind = KIND_BURST
    out[EV_HAND] = hand
    out[EV_KIND] = kind
    out[EV_FLAGS] = flags
    out[EV_ART] = art
    out[EV_ONSET] = t0 + k0 * WIN_MS + cfg.onset_adj
    out[EV_OFFSET] = t0 + (k1 + 1) * WIN_MS + cfg.offset_adj
    out[EV_PEAK] = p[R_PEAK]
    out[EV_AREA] = p[R_AREA]
    if nch == 2:
        m = p[R_MIN]
        s = p[R_SUM]
        if s > _SCALE_AT:
            m >>= 8
            s >>= 8
        out[EV_CCI] = (200 * m) // s if s > 0 else 0
    else:
        out[EV_CCI] = -1
    if has_imu:
        ax = _angle(p[R_GX])
        ay = _angle(p[R_GY])
        az = _angle(p[R_GZ])
        out[EV_ROT] = isqrt(ax * ax + ay * ay + az * az)
    else:
        out[EV_ROT] = -1
    out[EV_CH] = ch
    return True


class Detector:
    def __init__(self, cfg, nch, has_imu):
        self.cfg = cfg
        self.nch = nch
        self.has_imu = has_imu
        self.t0 = 0
        self.run = array("i", bytes(4 * R_NF))
        self.pend = array("i", bytes(4 * R_NF))
        self.in_run = False
        self.active = False
        self.has_pend = False
        self.queue = array("i", bytes(4 * EV_NF * QUEUE))
        self.qhead = 0
        self.qlen = 0
        self.dropped = 0
        self.ev = array("i", bytes(4 * EV_NF))

    def _push(self):
        # finalise the pending event into the queue
        self.has_pend = False
        ev = self.ev
        if not finalize(self.pend, self.cfg, self.nch, self.has_imu, self.t0, ev):
            return
        if self.qlen == QUEUE:
            self.dropped += 1  # caller did not take events; keep the oldest
            return
        b = ((self.qhead + self.qlen) % QUEUE) * EV_NF
        q = self.queue
        for i in range(EV_NF):
            q[b + i] = ev[i]
        self.qlen += 1

    def pop(self, out):
        # take the oldest finished event into out[0:EV_NF]; False when none
        if self.qlen == 0:
            return False
        b = self.qhead * EV_NF
        q = self.queue
        for i in range(EV_NF):
            out[i] = q[b + i]
        self.qhead = (self.qhead + 1) % QUEUE
        self.qlen -= 1
        return True

    def _close(self):
        # the current run ended (its R_K1 is set)
        self.in_run = False
        if not self.active:
            return
        r = self.run
        p = self.pend
        if self.has_pend and r[R_K0] - p[R_K1] - 1 <= self.cfg.merge_gap:
            merge_into(p, r)
        else:
            if self.has_pend:
                self._push()
            for i in range(R_NF):
                p[i] = r[i]
            self.has_pend = True

    def window(self, k, a, qf, qe, jk, hf, lf, gx, gy, gz, peer, step):
        # one 10 ms window; peer: 1/0 the other hand's activity, -1 unknown
        cfg = self.cfg
        r = self.run
        if self.in_run:
            if a > cfg.t_off:
                r[R_K1] = k
            else:
                self._close()
        elif a > cfg.t_off:
            self.in_run = True
            self.active = False
            p = self.pend
            anchor = k
            if self.has_pend and k - p[R_K1] - 1 <= cfg.merge_gap:
                anchor = p[R_K0]
            for i in range(R_NF):
                r[i] = 0
            r[R_K0] = k
            r[R_K1] = k
            r[R_ANCHOR] = anchor
            r[R_STEP] = step
        if self.in_run:
            if a > cfg.t_on:
                self.active = True
            d = k - r[R_ANCHOR]
            if d < FEAT_WIN:
                r[R_N] += 1
                if a > r[R_PEAK]:
                    r[R_PEAK] = a
                r[R_AREA] += a
                r[R_MIN] += qf if qf < qe else qe
                r[R_SUM] += qf + qe
                if peer < 0:
                    r[R_UNK] += 1
                else:
                    r[R_PEER] += peer
                if qf > cfg.t_on:
                    r[R_CH] |= 1
                if qe > cfg.t_on:
                    r[R_CH] |= 2
                if d < KNOCK_WIN and jk > r[R_JMAX]:
                    r[R_JMAX] = jk
                r[R_HF] += hf
                r[R_LF] += lf
                if d < ONSET_WIN:
                    r[R_HF0] += hf
                    r[R_LF0] += lf
                r[R_GX] += gx
                r[R_GY] += gy
                r[R_GZ] += gz
        if self.has_pend:
            p = self.pend
            gap = cfg.merge_gap
            if k - p[R_K1] - 1 > gap and (not self.in_run or r[R_K0] - p[R_K1] - 1 > gap):
                self._push()

    def flush(self):
        # end of recording / task: close what is open
        if self.in_run:
            self._close()
        if self.has_pend:
            self._push()
