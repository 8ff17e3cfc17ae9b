# Robust per-channel baseline of the EMG envelope.
#
# The envelope is cut into blocks of BLOCK windows (0.5 s). Each block gives a
# low quantile (its QUANT-th smallest value, ~20th percentile), robust to a
# burst inside the block, and its maximum. At the end of each block:
#   REST block      the quantile joins a ring of the last REST_CAP REST blocks;
#                   baseline = lower median of that ring (learnt during REST)
#   no baseline yet baseline = the quantile (recordings without REST)
#   quiet block     (max < QUIET x baseline) slow adaptation: towards the
#                   quantile by 1/32 upwards, 1/2 downwards
#   otherwise       unchanged
# Before the first block ends there is no baseline (0): no detection.
from array import array

from micropython import const

BLOCK = const(50)
QUANT = const(9)
REST_CAP = const(48)
QUIET = const(40)      # ratio x16 (2.5x)
B_MIN = const(8)


def sort_ints(a, n):
    # in-place insertion sort of a[0:n]
    for i in range(1, n):
        v = a[i]
        j = i - 1
        while j >= 0 and a[j] > v:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = v


def update(b, q, mx, rest, ring, nring, scratch):
    # One block-end update; returns the new baseline. ring holds nring REST
    # quantiles (caller appends q to ring before calling when rest is true).
    if rest:
        for i in range(nring):
            scratch[i] = ring[i]
        sort_ints(scratch, nring)
        b = scratch[(nring - 1) >> 1]
    elif b == 0:
        b = q
    elif (mx << 4) // b < QUIET:
        d = q - b
        if d < 0:
            b += d >> 1
        else:
            b += d >> 5
    return b if b > B_MIN else B_MIN


# sorting space shared by every baseline (used only inside update())
_scratch = array("i", bytes(4 * REST_CAP))


class Baseline:
    def __init__(self):
        self.blk = array("i", bytes(4 * BLOCK))
        self.ring = array("i", bytes(4 * REST_CAP))
        self.nring = 0
        self.iring = 0
        self.n = 0      # windows collected in the current block
        self.mx = 0
        self.b = 0      # current baseline (envelope units); 0 = none yet

    def add(self, env, rest):
        # add one window's envelope; at a block end update the baseline
        blk = self.blk
        blk[self.n] = env
        if env > self.mx:
            self.mx = env
        self.n += 1
        if self.n < BLOCK:
            return
        sort_ints(blk, BLOCK)
        q = blk[QUANT]
        if rest:
            self.ring[self.iring] = q
            self.iring = (self.iring + 1) % REST_CAP
            if self.nring < REST_CAP:
                self.nring += 1
        self.b = update(self.b, q, self.mx, rest, self.ring, self.nring, _scratch)
        self.n = 0
        self.mx = 0
