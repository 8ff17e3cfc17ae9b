# Robust per-channel baseline of the EMG envelope: minimum statistics.
#
# The envelope is cut into blocks of BLOCK windows (0.5 s). Each block gives a
# level: its low quantile (QUANT-th smallest value, ~20th percentile), robust
# to a burst inside the block, or 13/16 of its high quantile (~80th) where that
# is larger: stationary noise has q80/q20 ~ 1.4, so this only lifts the level
# of a rest that fluctuates, and the thresholds then keep their meaning
# (burst against the rest's own fluctuation). The baseline is the minimum of
# the last MS_LEN block levels (5 s): it follows the resting level down at
# once and up within 5 s, so it needs no REST step and follows the slowly
# varying tonic and residual activity of real rest, while a burst shorter
# than 5 s never lifts it.
#   hold block      (the hand's own WRITE step: the task, not rest) leaves the
#                   ring untouched, so writing never becomes baseline
#   lost block      (level under 1/DROP of the baseline: a flat stretch or
#                   dropped samples) is ignored, unless MS_LEN blocks in a row
#                   are: then the ring restarts from the new level
# Before the first block ends there is no baseline (0): no detection.
from array import array

from micropython import const

BLOCK = const(50)
QUANT = const(9)
QHI = const(40)        # high quantile (~80th percentile) of a block
SPREAD_MUL = const(13)  # level = max(low quantile, 13/16 x high quantile)
MS_LEN = const(10)      # blocks in the minimum ring (5 s)
B_MIN = const(8)
DROP = const(8)         # a block level under 1/DROP of the baseline is signal loss


def sort_ints(a, n):
    # in-place insertion sort of a[0:n]
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


def minimum(ring, n):
    # smallest of ring[0:n] (n >= 1)
    m = ring[0]
    for i in range(1, n):
        if ring[i] < m:
            m = ring[i]
    return m


class Baseline:
    def __init__(self):
        self.blk = array("i", bytes(4 * BLOCK))
        self.ms = array("i", bytes(4 * MS_LEN))
        self.nms = 0
        self.ims = 0
        self.n = 0      # windows collected in the current block
        self.b = 0      # current baseline (envelope units); 0 = none yet
        self.low = 0    # consecutive blocks far below the baseline

    def _lost(self, q):
        # a block far below the baseline is signal loss (a flat stretch, a
        # dropped link), not rest, until it lasts as long as the ring
        if q * DROP >= self.b:
            self.low = 0
            return False
        self.low += 1
        if self.low >= MS_LEN:
            self.low = 0
            self.nms = 0
            self.ims = 0
            return False
        return True

    def add(self, env, hold):
        # add one window's envelope; at a block end update the baseline
        blk = self.blk
        blk[self.n] = env
        self.n += 1
        if self.n < BLOCK:
            return
        self.n = 0
        sort_ints(blk, BLOCK)
        # the block's resting level: its low quantile, raised where the block
        # fluctuates more than stationary noise does (Myo-like, bursty rest)
        q = blk[QUANT]
        s = (blk[QHI] * SPREAD_MUL) >> 4
        if s > q:
            q = s
        if self.nms and (hold or self._lost(q)):
            return
        self.ms[self.ims] = q
        self.ims = (self.ims + 1) % MS_LEN
        if self.nms < MS_LEN:
            self.nms += 1
        b = minimum(self.ms, self.nms)
        self.b = b if b > B_MIN else B_MIN
