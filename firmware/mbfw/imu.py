# IMU features at 104 Hz, per 10 ms EMG window.
#
# Input per IMU sample (IMU_FIELDS ints): window index within the block, then
# acc X, Y, Z in mg (|a| <= 16000) and gyro X, Y, Z in 0.1 deg/s (clipped to
# +-8191, i.e. +-819 deg/s).
# Per window:
#   stroke[w]  writing stroke energy 2-8 Hz: per axis bp = 4*box6(a) - box24(a)
#              (difference of 58 ms and 230 ms moving averages, x24),
#              e = sum over axes |bp|, stroke = sum of e over the last 26
#              samples (0.25 s); held at the last IMU sample of the window;
#              < 2**26
#   jerk[w]    max over the window's samples of sum over axes |a[n]-a[n-1]| (mg)
#   g{x,y,z}[w] sum of gyro samples in the window (0.1 deg/s * samples)
from array import array

from micropython import const

IMU_FIELDS = const(7)
_RING = const(32)
_MASK = const(31)
_SHORT = const(6)
_LONG = const(24)
_SMOOTH = const(26)
ACC_MAX = const(16000)
GYR_MAX = const(8191)


def isqrt(n):
    # floor(sqrt(n)) for 0 <= n < 2**30, no allocation
    if n <= 0:
        return 0
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x


class ImuFeatures:
    def __init__(self):
        self.ring = array("i", bytes(4 * 3 * _RING))  # acc history, 3 axes
        self.ering = array("i", bytes(4 * _RING))     # e history
        self.s6 = array("i", bytes(12))
        self.s24 = array("i", bytes(12))
        self.prev = array("i", bytes(12))
        self.i = 0
        self.se = 0
        self.primed = False

    def _prime(self, buf):
        ring = self.ring
        for ax in range(3):
            a = buf[1 + ax]
            if a > ACC_MAX:
                a = ACC_MAX
            elif a < -ACC_MAX:
                a = -ACC_MAX
            for k in range(_RING):
                ring[ax * _RING + k] = a
            self.s6[ax] = _SHORT * a
            self.s24[ax] = _LONG * a
            self.prev[ax] = a
        self.primed = True

    def process(self, buf, m, nw, stroke, jerk, gx, gy, gz):
        # buf[0:m*IMU_FIELDS] -> per-window outputs [0:nw]
        if m > 0 and not self.primed:
            self._prime(buf)
        ring = self.ring
        ering = self.ering
        s6 = self.s6
        s24 = self.s24
        prev = self.prev
        i = self.i
        se = self.se
        j = 0
        for w in range(nw):
            jm = 0
            sx = 0
            sy = 0
            sz = 0
            while j < m and buf[j * IMU_FIELDS] == w:
                b = j * IMU_FIELDS
                e = 0
                jk = 0
                for ax in range(3):
                    a = buf[b + 1 + ax]
                    if a > ACC_MAX:
                        a = ACC_MAX
                    elif a < -ACC_MAX:
                        a = -ACC_MAX
                    r = ax * _RING
                    ring[r + (i & _MASK)] = a
                    v = s6[ax] + a - ring[r + ((i - _SHORT) & _MASK)]
                    s6[ax] = v
                    u = s24[ax] + a - ring[r + ((i - _LONG) & _MASK)]
                    s24[ax] = u
                    bp = 4 * v - u
                    e += bp if bp >= 0 else -bp
                    d = a - prev[ax]
                    jk += d if d >= 0 else -d
                    prev[ax] = a
                ering[i & _MASK] = e
                se += e - ering[(i - _SMOOTH) & _MASK]
                i = (i + 1) & 0x3FFFFFFF
                if jk > jm:
                    jm = jk
                g = buf[b + 4]
                sx += GYR_MAX if g > GYR_MAX else (-GYR_MAX if g < -GYR_MAX else g)
                g = buf[b + 5]
                sy += GYR_MAX if g > GYR_MAX else (-GYR_MAX if g < -GYR_MAX else g)
                g = buf[b + 6]
                sz += GYR_MAX if g > GYR_MAX else (-GYR_MAX if g < -GYR_MAX else g)
                j += 1
            stroke[w] = se
            jerk[w] = jm
            gx[w] = sx
            gy[w] = sy
            gz[w] = sz
        self.i = i
        self.se = se
        return j
