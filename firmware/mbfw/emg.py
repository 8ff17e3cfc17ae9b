# EMG front end, one channel: 1 kHz samples -> one set of values per 10 ms window.
#
# Input unit: 0.5 uV per count, |x| < 2**19 (the sampler guarantees it).
# Stages, all integer and O(1) per sample:
#   comb notch   c[n] = x[n] - x[n-P]      P = 20 (50 Hz) or 50 (60 Hz): zeros at
#                DC and every mains harmonic; |c| < 2**20
#   box high-pass h[n] = c[n-16] - (sum(c[n-31..n]) >> 5)   (~25 Hz corner);
#                |sum| < 2**25, |h| < 2**21
#   rectify + decimate: raw[k] = sum |h| over window k (10 samples), < 2**25
#   low-frequency level at the window end: lf[k] = min(|sum| >> 7, 65535)
# The envelope (sum of the last 4 windows = 40 ms) is formed by the caller.
from array import array

from micropython import const

DEC = const(10)          # samples per window (10 ms at 1 kHz)
BOX = const(32)          # box high-pass length
HALF = const(16)         # its centre delay
HIST = const(50)         # raw history kept between blocks (longest comb delay)
MAX_BLOCK = const(100)   # largest block (samples) the pipeline takes, a multiple of DEC
CHUNK = const(50)        # samples filtered per pass (sizes the history buffers)
LF_MAX = const(65535)


def comb_delay(mains_hz):
    # Comb delay in samples at 1 kHz for the mains frequency.
    if mains_hz == 50:
        return 20
    if mains_hz == 60:
        return 50
    raise ValueError("mains_hz must be 50 or 60")


class EmgFrontEnd:
    def __init__(self, mains_hz=50):
        self.p = comb_delay(mains_hz)
        self.xb = array("i", bytes(4 * (HIST + CHUNK)))
        self.cb = array("i", bytes(4 * (BOX + CHUNK)))
        self.s = 0
        self.primed = False

    def reset(self):
        self.s = 0
        self.primed = False
        cb = self.cb
        for i in range(len(cb)):
            cb[i] = 0

    def process(self, src, off, n, raw, lf):
        # src[off:off+n] -> raw[0:n//DEC], lf[0:n//DEC]. n is a multiple of DEC.
        j = 0
        while n > 0:
            c = n if n < CHUNK else CHUNK
            j = self._chunk(src, off, c, raw, lf, j)
            off += c
            n -= c
        return j

    def _chunk(self, src, off, n, raw, lf, j):
        xb = self.xb
        cb = self.cb
        if not self.primed:
            # start as if the first value had always been there: no start-up step
            x0 = src[off]
            for t in range(HIST):
                xb[t] = x0
            self.primed = True
        p = HIST - self.p  # xb index of x[n-P] is t + p for new sample at t + HIST
        s = self.s
        t = 0
        while t < n:
            acc = 0
            end = t + DEC
            while t < end:
                x = src[off + t]
                c = x - xb[t + p]
                xb[t + HIST] = x
                cb[t + BOX] = c
                s += c - cb[t]
                h = cb[t + HALF] - (s >> 5)
                if h < 0:
                    h = -h
                acc += h
                t += 1
            raw[j] = acc
            v = (s if s >= 0 else -s) >> 7
            lf[j] = v if v < LF_MAX else LF_MAX
            j += 1
        self.s = s
        # keep the histories for the next block
        for i in range(HIST):
            xb[i] = xb[n + i]
        for i in range(BOX):
            cb[i] = cb[n + i]
        return j
