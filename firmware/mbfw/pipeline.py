# One band's detection pipeline, block by block, with no allocation per block.
#
# A block is n EMG samples per channel (n a multiple of 10, at most max_block)
# and the m IMU samples that fall in its windows. Two phases per block, so
# that two bands in lockstep (replay, or the beacon on real bands) can see
# each other's activity for the same windows:
#   analyse()  EMG front end, envelope, baseline, IMU features, activity state
#   detect()   burst detector with the peer's activity (or unknown)
from array import array

from micropython import const

from mbfw.baseline import Baseline
from mbfw.detector import Detector
from mbfw.emg import DEC, MAX_BLOCK, EmgFrontEnd
from mbfw.imu import ImuFeatures
from mbfw.task import Task, write_step

ENV_WIN = const(4)          # envelope: 4 windows = 40 ms
ENV_MAX = const((1 << 25) - 1)
Q_MAX = const(32767)
HF_MAX = const(65535)
JERK_WIN = const(5)         # knock jerk: max over the last 50 ms


def _zeros(n):
    return array("i", bytes(4 * n))


class Hand:
    def __init__(self, cfg, nch=2, has_imu=True, max_block=MAX_BLOCK):
        if nch not in (1, 2):
            raise ValueError("nch must be 1 or 2")
        if max_block % DEC:
            raise ValueError("max_block must be a multiple of 10")
        self.cfg = cfg
        self.nch = nch
        self.has_imu = has_imu
        self.max_block = max_block
        nw = max_block // DEC
        self.fe = [EmgFrontEnd(cfg.mains_hz) for _ in range(nch)]
        self.base = [Baseline() for _ in range(nch)]
        self.raw = [_zeros(nw) for _ in range(nch)]
        self.lf = [_zeros(nw) for _ in range(nch)]
        self.ering = [_zeros(ENV_WIN) for _ in range(nch)]
        self.esum = _zeros(nch)
        self.imu = ImuFeatures()
        self.stroke = _zeros(nw)
        self.jerk = _zeros(nw)
        self.gx = _zeros(nw)
        self.gy = _zeros(nw)
        self.gz = _zeros(nw)
        self.jring = _zeros(JERK_WIN)
        # per-window results of analyse(), consumed by detect()
        self.a_w = _zeros(nw)
        self.qf_w = _zeros(nw)
        self.qe_w = _zeros(nw)
        self.j_w = _zeros(nw)
        self.hf_w = _zeros(nw)
        self.lf_w = _zeros(nw)
        self.act_w = bytearray(nw)
        self.step_w = bytearray(nw)
        self.nw = 0
        self.task = Task()
        self.det = Detector(cfg, nch, has_imu)
        self.k = 0              # windows processed since start
        self.t0 = 0             # band time (ms) of window 0
        self.last_act = -1000000

    def start(self, t0_ms):
        # (re)start the time base: window 0 begins at band time t0_ms
        self.t0 = t0_ms
        self.det.t0 = t0_ms

    def analyse(self, emg, n, imu, m):
        # emg[c*n:(c+1)*n] holds channel c (FLEX, then EXT); imu holds m samples
        if n % DEC or n > self.max_block:
            raise ValueError("bad block size")
        nw = n // DEC
        nch = self.nch
        for c in range(nch):
            self.fe[c].process(emg, c * n, n, self.raw[c], self.lf[c])
        if self.has_imu:
            self.imu.process(imu, m, nw, self.stroke, self.jerk, self.gx, self.gy, self.gz)
        cfg = self.cfg
        task = self.task
        esum = self.esum
        jring = self.jring
        k = self.k
        t = self.t0 + k * 10
        own = write_step(cfg.hand)
        for w in range(nw):
            step = task.step_at(t)
            hold = step == own
            a = 0
            qf = 0
            qe = 0
            hf = 0
            lf = 0
            for c in range(nch):
                raw = self.raw[c][w]
                ring = self.ering[c]
                i = k & 3
                s = esum[c] + raw - ring[i]
                ring[i] = raw
                esum[c] = s
                env = s if s < ENV_MAX else ENV_MAX
                bl = self.base[c]
                b = bl.b
                q = 0
                if b:
                    q = (env << 4) // b
                    if q > Q_MAX:
                        q = Q_MAX
                bl.add(env, hold)
                if c == 0:
                    qf = q
                else:
                    qe = q
                if q > a:
                    a = q
                hf += raw >> 4
                lf += self.lf[c][w]
            self.a_w[w] = a
            self.qf_w[w] = qf
            self.qe_w[w] = qe
            self.hf_w[w] = hf if hf < HF_MAX else HF_MAX
            self.lf_w[w] = lf if lf < HF_MAX else HF_MAX
            jk = 0
            act = a > cfg.t_act
            if self.has_imu:
                jring[k % JERK_WIN] = self.jerk[w]
                for i in range(JERK_WIN):
                    if jring[i] > jk:
                        jk = jring[i]
                if self.stroke[w] > cfg.s_act:
                    act = True
            self.j_w[w] = jk
            if act:
                self.last_act = k
            self.act_w[w] = 1 if k - self.last_act <= cfg.act_hold else 0
            self.step_w[w] = step
            k += 1
            t += 10
        self.nw = nw

    def detect(self, peer_act=None):
        # peer_act: the other band's act_w for the same windows, or None
        det = self.det
        k = self.k
        for w in range(self.nw):
            peer = -1 if peer_act is None else peer_act[w]
            det.window(k + w, self.a_w[w], self.qf_w[w], self.qe_w[w], self.j_w[w],
                       self.hf_w[w], self.lf_w[w], self.gx[w], self.gy[w], self.gz[w],
                       peer, self.step_w[w])
        self.k = k + self.nw
        self.nw = 0

    def process(self, emg, n, imu, m):
        # one band alone (no peer information)
        self.analyse(emg, n, imu, m)
        self.detect(None)

    def finish(self):
        self.det.flush()

    def pop(self, out):
        return self.det.pop(out)
