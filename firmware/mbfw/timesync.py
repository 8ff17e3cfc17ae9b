# Clock synchronisation (pure, shared by band and host).
# 1. Host -> band at task start: several TIME_GET exchanges (host send time t0,
#    band clock tb, host receive time t1); the one with the smallest round trip
#    gives offset = tb - (t0 + t1) / 2 (error <= its round trip / 2); the host
#    then sends TIME_SET TIME_ADJ -offset.
# 2. Band <-> band during a task: the resting band receives beacons carrying the
#    writing band's synced clock (peer time) and notes its own clock at
#    reception (local time). Delays are positive and vary (advertising delay,
#    scan scheduling), so local - peer = offset + drift * t + delay: PairFit
#    keeps, per bucket of time, the pair with the smallest local - peer (the
#    lower envelope) and fits offset and drift through those minima.
# Runs once per beacon (a compare) and once per bucket (the fit, integers; on a
# 32-bit port the fit's products are big ints: not a hot path).
from micropython import const

_BUCKET_US = const(2000000)    # 2 s per lower-envelope bucket
_NBUCKET = const(64)           # ~2 minutes of history
_PPB = const(1000000000)
_MAX_PPB = const(500000)       # |drift| <= 500 ppm


def best_offset(samples):
    # samples: (t0, tb, t1) triples; returns (offset, rtt) of the min round trip
    best = None
    for t0, tb, t1 in samples:
        rtt = t1 - t0
        if rtt < 0:
            continue
        if best is None or rtt < best[1]:
            best = ((tb - (t0 + t1) // 2), rtt)
    if best is None:
        raise ValueError("no usable time exchange")
    return best


class PairFit:
    # local clock as a function of the peer's: local = peer + off(peer)
    # where off(p) = a + b * (p - ref) / 1e9 (b in parts per billion)
    def __init__(self, bucket_us=_BUCKET_US, nbucket=_NBUCKET):
        self.bucket_us = bucket_us
        self.n = nbucket
        self.reset()

    def reset(self):
        self.bk = [0] * self.n         # bucket number held in each slot
        self.bd = [0] * self.n         # min local - peer in it
        self.bp = [0] * self.n         # peer time of that minimum
        self.used = bytearray(self.n)
        self.cur = -1
        self.ref = 0
        self.a = 0
        self.b = 0
        self.ok = False
        self.count = 0

    def add(self, local_us, peer_us):
        d = local_us - peer_us
        k = peer_us // self.bucket_us
        s = k % self.n
        self.count += 1
        if k != self.cur:
            if self.cur >= 0 and k > self.cur:
                self._fit()
            if k < self.cur - self.n + 1:
                return                 # older than the history
            if self.bk[s] != k or not self.used[s]:
                self.bk[s] = k
                self.bd[s] = d
                self.bp[s] = peer_us
                self.used[s] = 1
                if not self.ok:
                    self.a = d
                    self.ref = peer_us
                    self.ok = True
            if k > self.cur:
                self.cur = k
            return
        if d < self.bd[s]:
            self.bd[s] = d
            self.bp[s] = peer_us

    def _fit(self):
        # least squares through the bucket minima (complete buckets only)
        pts = []
        for s in range(self.n):
            if self.used[s] and self.cur - self.n < self.bk[s] <= self.cur:
                pts.append((self.bp[s], self.bd[s]))
        m = len(pts)
        if m == 0:
            return
        ref = pts[0][0]
        for p, _ in pts:
            if p < ref:
                ref = p
        span = 0
        for p, _ in pts:
            if p - ref > span:
                span = p - ref
        if m == 1 or span < 2 * self.bucket_us:
            # too short to see a drift: offset only (the lowest minimum)
            lo = pts[0][1]
            for _, d in pts:
                if d < lo:
                    lo = d
            self.ref, self.a, self.b = ref, lo, 0
            return
        sx = sy = 0
        for p, d in pts:
            sx += p - ref
            sy += d
        mx = sx // m
        my = sy // m
        sxx = sxy = 0
        for p, d in pts:
            x = p - ref - mx
            sxx += x * x
            sxy += x * (d - my)
        b = sxy * _PPB // sxx if sxx else 0
        if b > _MAX_PPB:               # no crystal is that far off: noise
            b = _MAX_PPB
        elif b < -_MAX_PPB:
            b = -_MAX_PPB
        self.ref = ref + mx
        self.a = my
        self.b = b
        self.ok = True

    def offset(self, peer_us):
        # local - peer at peer time peer_us
        return self.a + self.b * (peer_us - self.ref) // _PPB

    def to_local(self, peer_us):
        return peer_us + self.offset(peer_us)

    def to_peer(self, local_us):
        # inverse (one fixed-point step is exact to well under 1 us for ppm drifts)
        p = local_us - self.offset(local_us)
        return local_us - self.offset(p)

    def flush(self):
        # fit now, including the current bucket (end of a task)
        if self.cur >= 0:
            self._fit()
