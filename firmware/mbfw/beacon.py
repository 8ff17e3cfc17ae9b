# Activity beacon between the two bands (docs/ble.md).
# Manufacturer data (little-endian, 21 bytes):
#   company u16 (bleservice.COMPANY) | kind u8 = 'A' | band id 4 bytes |
#   session u32 | timestamp u32 (synced band clock, us, mod 2**32: the end of
#   the newest window) | activity u32 (24 bits used: bit i = window newest-i
#   active; 240 ms, more than two 100 ms blocks) | seq u16
# The writing band (Sender, fed by the app's peer_out) re-advertises the
# beacon, non-connectable, after each block; the resting band (Receiver) scans
# passively, refines the clock pair fit (mbfw.timesync) and feeds its PeerLink
# (put(k0, act, nw) in its own 10 ms windows). Loss: check() closes the
# PeerLink when nothing was heard for `timeout_ms`; the app then classifies
# from the task step and marks events peer_unknown.
import struct

from micropython import const

from mbfw.timesync import PairFit

COMPANY = const(0xFFFF)
KIND = const(0x41)
SIZE = const(21)
_FMT = "<HB4sIIIH"
WIN_US = const(10000)
NBITS = const(24)
_MASK = const(0xFFFFFF)
_WRAP = 1 << 32
_HALF = 1 << 31


class BeaconError(ValueError):
    pass


def encode(band_id4, session, t_us, act, seq):
    if len(band_id4) != 4 or not 0 <= act <= _MASK:
        raise BeaconError("bad beacon field")
    return struct.pack(_FMT, COMPANY, KIND, bytes(band_id4), session & 0xFFFFFFFF,
                       t_us % _WRAP, act, seq & 0xFFFF)


def find(adv):
    # manufacturer data of a beacon inside an advertising payload, or None
    i = 0
    n = len(adv)
    while i + 1 < n:
        ln = adv[i]
        if ln == 0 or i + 1 + ln > n:
            return None
        if adv[i + 1] == 0xFF and ln - 1 == SIZE and adv[i + 2] == 0xFF and adv[i + 3] == 0xFF \
                and adv[i + 4] == KIND:
            return bytes(adv[i + 2:i + 2 + SIZE])
        i += 1 + ln
    return None


def decode(m):
    # -> (band_id4, session, t_us mod 2**32, act, seq)
    if len(m) != SIZE:
        raise BeaconError("beacon must be %d bytes" % SIZE)
    company, kind, bid, session, t, act, seq = struct.unpack(_FMT, m)
    if company != COMPANY or kind != KIND:
        raise BeaconError("not an activity beacon")
    return bid, session, t, act, seq


def unwrap(t32, near):
    # full timestamp closest to `near` whose low 32 bits are t32
    d = (t32 - near) % _WRAP
    if d >= _HALF:
        d -= _WRAP
    return near + d


class Sender:
    # service: mbfw.bleservice.BleService (set_beacon); clock: time_us()
    def __init__(self, service, band_id4):
        self.service = service
        self.band_id = bytes(band_id4[:4])
        self.session = 0
        self.t0 = 0
        self.seq = 0
        self.bits = 0
        self.on = False

    def start(self, session, t0_us):
        # t0_us: synced band time of window 0 of the session
        self.session = session
        self.t0 = t0_us
        self.bits = 0
        self.on = True

    def put(self, k0, act, nw):
        # the app's peer_out: activity of windows k0 .. k0+nw-1
        if not self.on:
            return
        b = self.bits
        for w in range(nw):
            b = ((b << 1) | (1 if act[w] else 0)) & _MASK
        self.bits = b
        self.seq = (self.seq + 1) & 0xFFFF
        t = self.t0 + (k0 + nw) * WIN_US
        self.service.set_beacon(encode(self.band_id, self.session, t, b, self.seq))

    def stop(self):
        self.on = False
        self.service.set_beacon(None)


class Receiver:
    # peer: a PeerLink (put/close); clock: time_us() of this band (synced);
    # window_of(local_us) -> this band's window index at that time
    def __init__(self, peer, clock, window_of, peer_id4=None, timeout_ms=500):
        self.peer = peer
        self.clock = clock
        self.window_of = window_of
        self.peer_id = None if peer_id4 is None else bytes(peer_id4[:4])
        self.timeout_us = timeout_ms * 1000
        self.fit = PairFit()
        self.act = bytearray(NBITS)
        self.session = None
        self.last_seq = -1
        self.heard_us = 0
        self.heard = 0
        self.lost = False
        self.own_id = b""              # this band's id (its own beacons are ignored)
        self.use_fit = True

    def start(self, session):
        self.session = session
        self.last_seq = -1
        self.heard_us = self.clock.time_us()
        self.lost = False

    def on_adv(self, adv_data):
        # from the scan IRQ (adv_data is a reused memoryview: read it now)
        now = self.clock.time_us()
        m = find(adv_data)
        if m is None:
            return False
        bid, session, t32, act, seq = decode(m)
        if bid == self.own_id or (self.peer_id is not None and bid != self.peer_id) or \
                (self.session is not None and session != self.session & 0xFFFFFFFF):
            return False
        if seq == self.last_seq:
            return False               # the same advertisement heard again
        self.last_seq = seq
        t = unwrap(t32, now)
        self.fit.add(now, t)
        self.heard_us = now
        self.heard += 1
        self.lost = False
        # windows newest-NBITS+1 .. newest, in the peer's time -> ours
        # use_fit False: t is already the peer's window clock (t0 + k * WIN_US)
        # and the sessions started together: map it as is
        k_end = self.window_of(self.fit.to_local(t) if self.use_fit else t)
        a = self.act
        for i in range(NBITS):
            a[NBITS - 1 - i] = (act >> i) & 1
        k0 = k_end - NBITS
        if k0 < 0:                     # the first windows of a session
            if k_end <= 0:
                return True
            self.peer.put(0, memoryview(a)[-k0:], k_end)
        else:
            self.peer.put(k0, a, NBITS)
        return True

    def check(self):
        # call periodically: closes the peer link after timeout without beacons
        if not self.lost and self.clock.time_us() - self.heard_us > self.timeout_us:
            self.lost = True
            self.peer.close()
        return not self.lost


class PeerRadio:
    # glue between the app (mbfw.app.App) and the BLE service during a task:
    # both bands send their activity (Sender) and listen to the other's
    # (Receiver), so each can classify mirror activity. An app session hook.
    def __init__(self, app, service, band_id4, timeout_ms=500, wait_ms=200):
        self.app = app
        self.service = service
        self.sender = Sender(service, band_id4)
        self.band_id = bytes(band_id4[:4])
        self.timeout_ms = timeout_ms
        self.wait_ms = wait_ms
        self.rx = None
        self.active = False
        app.session_hooks.append(self.on_session)

    def _window_of(self, local_us):
        # nearest window boundary: bands started together within a few ms
        return (local_us - self.app.t0_us + WIN_US // 2) // WIN_US

    def on_session(self, started):
        app = self.app
        if started:
            if app.peer_in is None or app.peer_in.lockstep:
                return                 # no peer, or wired directly
            self.sender.start(app.session, app.t0_us)
            if self.sender.put not in app.peer_out:
                app.peer_out.append(self.sender.put)
            rx = Receiver(app.peer_in, app.clock, self._window_of, None, self.timeout_ms)
            rx.start(app.session)
            rx.own_id = self.band_id
            rx.use_fit = False
            self.rx = rx
            app.peer_wait_ms = self.wait_ms
            self.service.scan(rx.on_adv)
            self.active = True
        elif self.active:
            self.active = False
            self.sender.stop()
            self.service.scan(None)

    def check(self):
        # call every ~100 ms: beacon loss closes the peer link
        rx = self.rx
        if self.active and rx is not None:
            rx.check()
