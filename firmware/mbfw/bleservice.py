# The band's GATT service on MicroPython's `bluetooth` API (IRQ-driven, no
# aioble). The bluetooth module and the BLE object are injected (never a
# module-level BLE()). Layout (docs/ble.md):
#   custom service SERVICE_UUID
#     control point CONTROL_UUID  write / write-no-response / notify: request
#       frames in, response frames out (mbfw.protocol, mbfw.handler)
#     data          DATA_UUID     notify: LOG_READ responses (log pages) and the
#       live event stream
#     status        STATUS_UUID   read / notify: protocol.Status bytes
#   Device Information 0x180A (manufacturer, model, firmware), Battery 0x180F
# Transport framing (both directions, every notification / written value):
#   byte 0: bit 7 = first fragment of a frame, bit 6 = live event (data only),
#   bits 0-5 = fragment counter (mod 64, per direction and connection);
#   then up to MTU-4 bytes of the frame. A frame's own header gives its length.
# A live event: 0xC0 | counter, then the 24-byte event (mbfw.events) + u32
#   live counter + 16 bytes of HMAC-SHA256(command key, b"live" + both).
# A live envelope (per 100 ms block, app.block_hooks): the same, with a 24-byte
#   LIVE_ENV body (_ENV, unpack_env) for the event; dropped when > _BACKLOG wait.
# With secure=True (a stack that can bond) the custom characteristics need an
# encrypted link: an unpaired central reads Device Information and Battery only.
# Notifications are queued; ENOMEM (controller buffers full) is retried by
# pump(), which run() calls when woken and every few ms while data waits.
import struct

from micropython import const

from mbfw import protocol as P
from mbfw.aio import flag, sleep_ms, ticks_diff, ticks_ms, wait_flag

SERVICE_UUID = "7a3f0001-5d1e-4b5e-9f63-6d6972726f72"
CONTROL_UUID = "7a3f0002-5d1e-4b5e-9f63-6d6972726f72"
DATA_UUID = "7a3f0003-5d1e-4b5e-9f63-6d6972726f72"
STATUS_UUID = "7a3f0004-5d1e-4b5e-9f63-6d6972726f72"
COMPANY = const(0xFFFF)      # Bluetooth SIG id for tests / unassigned
ADV_KIND = const(0x4D)       # 'M': connectable advertisement of a band
MTU = const(247)
FRAG_FIRST = const(0x80)
FRAG_LIVE = const(0x40)
FRAG_CTR = const(0x3F)
MAX_FRAME = const(557)       # protocol.HEADER + MAX_PAYLOAD + TAG
LIVE_TAG = const(16)
LIVE_ENV = const(0xE1)       # first byte of an envelope body (an event's is its hand, 0/1)
_ENV = "<BBBBIHHHHB7x"       # marker, hand, step, windows, first window, max a, FLEX, EXT, act bits, loff
_BACKLOG = const(6)
_IRQ_CENTRAL_CONNECT = const(1)
_IRQ_CENTRAL_DISCONNECT = const(2)
_IRQ_GATTS_WRITE = const(3)
_IRQ_SCAN_RESULT = const(5)
_IRQ_SCAN_DONE = const(6)
_IRQ_MTU_EXCHANGED = const(21)
_IRQ_ENCRYPTION_UPDATE = const(28)
_IRQ_GET_SECRET = const(29)
_IRQ_SET_SECRET = const(30)
_F_READ = const(0x0002)
_F_WRITE_NR = const(0x0004)
_F_WRITE = const(0x0008)
_F_NOTIFY = const(0x0010)
_F_READ_ENC = const(0x0200)
_F_WRITE_ENC = const(0x1000)
_ENOMEM = const(12)
_ENOTCONN = const(107)
_ADV_US = const(200000)
_BEACON_US = const(30000)    # 20-50 ms while a task runs
_RETRY_MS = const(5)
_SCAN_US = const(30000)
_NONE = const(-1)

def _field(out, kind, value):
    out.extend(struct.pack("BB", len(value) + 1, kind))
    out.extend(value)


def adv_data(uuid_bytes, hand, connectable=True, manufacturer=None):
    # advertising payload: flags, the 128-bit service UUID, hand; or a beacon
    out = bytearray()
    _field(out, 0x01, b"\x06" if connectable else b"\x04")
    if uuid_bytes is not None:
        _field(out, 0x07, uuid_bytes)
    if manufacturer is None:
        manufacturer = struct.pack("<HBB", COMPANY, ADV_KIND, hand)
    _field(out, 0xFF, manufacturer)
    return bytes(out)


def unpack_env(b):
    # live envelope body (24 bytes) -> (hand, step, nw, k0, a, qf, qe, act bits, loff);
    # ratios x16 of envelope over resting baseline (max over the block's windows)
    if len(b) != 24 or b[0] != LIVE_ENV or b[1] > 1 or not 1 <= b[3] <= 16:
        raise ValueError("not a live envelope")
    return struct.unpack(_ENV, b)[1:10]


def frame_len(buf, n):
    # total length of the frame whose first n bytes are in buf (0 = not known yet)
    if n < P.HEADER:
        return 0
    return P.HEADER + (buf[11] | buf[12] << 8) + P.TAG


class BleService:
    # bluetooth: the module (UUID, flags); ble: an active-able BLE object;
    # handler: mbfw.handler.Handler; app: the device (status(), info()).
    def __init__(self, bluetooth, ble, handler, name, hand, secure=True, battery=None,
                 fw="", model="Mirrorband", mtu=MTU):
        self.bt = bluetooth
        self.ble = ble
        self.handler = handler
        self.name = name
        self.hand = hand
        self.secure = secure
        self.battery = battery       # callable -> percent, or None
        self.conn = _NONE
        self.mtu = 23
        self.encrypted = False
        self.beacon = None           # manufacturer bytes while beaconing
        self.on_scan = None          # f(adv_data memoryview) while scanning
        self.live_ctr = 0
        self._env = bytearray(28)
        self._refreshed = 0
        self.stats = [0, 0, 0, 0]    # notifications, notified bytes, ENOMEM, frames handled
        self._rx = bytearray(MAX_FRAME)
        self._rxn = 0
        self._rxc = 0
        self._rxbad = False
        self._req = None             # a complete request waiting for run()
        self._out = []               # [handle, bytes, offset, live] being sent
        self._txc = 0
        self._nbuf = bytearray(MTU - 3)
        self.flag = flag()
        self.stopped = False
        ble.active(True)
        ble.config(gap_name=name)
        self.max_mtu = mtu if 23 <= mtu <= MTU else MTU
        ble.config(mtu=self.max_mtu)
        if secure:
            ble.config(bond=True, le_secure=True, io=3)
        ble.irq(self._irq)
        U = bluetooth.UUID
        enc_r = _F_READ_ENC if secure else 0
        enc_w = _F_WRITE_ENC if secure else 0
        custom = (U(SERVICE_UUID), (
            (U(CONTROL_UUID), _F_WRITE | _F_WRITE_NR | _F_NOTIFY | enc_w | enc_r),
            (U(DATA_UUID), _F_READ | _F_NOTIFY | enc_r),
            (U(STATUS_UUID), _F_READ | _F_NOTIFY | enc_r),
        ))
        dis = (U(0x180A), ((U(0x2A29), _F_READ), (U(0x2A24), _F_READ), (U(0x2A26), _F_READ)))
        bas = (U(0x180F), ((U(0x2A19), _F_READ | _F_NOTIFY),))
        ((self.h_ctl, self.h_data, self.h_status), (h_maker, h_model, h_fw), (self.h_batt,)) = \
            ble.gatts_register_services((custom, dis, bas))
        ble.gatts_set_buffer(self.h_ctl, MTU - 3)
        ble.gatts_write(h_maker, b"Mirrorband")
        ble.gatts_write(h_model, model.encode())
        ble.gatts_write(h_fw, fw.encode())
        self._uuid = bytes(U(SERVICE_UUID))
        hooks = getattr(handler.device, "block_hooks", None)
        if hooks is not None:
            hooks.append(self.live_env)
        self.refresh()

    # --- advertising ---------------------------------------------------------
    def advertise(self):
        # connectable advertising (not while connected or beaconing)
        if self.beacon is not None:
            self.ble.gap_advertise(_BEACON_US, adv_data=adv_data(None, self.hand, False, self.beacon),
                                   connectable=False)
        elif self.conn == _NONE:
            resp = bytearray()
            _field(resp, 0x09, self.name.encode())
            self.ble.gap_advertise(_ADV_US, adv_data=adv_data(self._uuid, self.hand),
                                   resp_data=bytes(resp))
        else:
            self.ble.gap_advertise(None)

    def set_beacon(self, manufacturer):
        # manufacturer bytes (mbfw.beacon) -> non-connectable beacon; None -> back
        # to connectable advertising (when no central is connected)
        changed = (manufacturer is None) != (self.beacon is None)
        self.beacon = manufacturer
        if manufacturer is not None or changed:
            self.advertise()

    def scan(self, on_adv):
        # passive continuous scan (the resting band hears the beacon); None stops
        self.on_scan = on_adv
        if on_adv is None:
            self.ble.gap_scan(None)
        else:
            self.ble.gap_scan(0, _SCAN_US, _SCAN_US, False)

    # --- IRQ -----------------------------------------------------------------
    def _irq(self, event, data):
        if event == _IRQ_SCAN_RESULT:
            f = self.on_scan
            if f is not None:
                f(data[4])
            return
        if event == _IRQ_SCAN_DONE:
            return
        if event == _IRQ_CENTRAL_CONNECT:
            conn = data[0]
            if self.conn != _NONE:     # one central at a time
                self.ble.gap_disconnect(conn)
                return
            self.conn = conn
            self.mtu = 23
            self.encrypted = False
            self._rxn = 0
            self._rxbad = False
            self._txc = 0
            self._out = []
        elif event == _IRQ_CENTRAL_DISCONNECT:
            if data[0] == self.conn:
                self.conn = _NONE
                self._out = []         # a new central asks again
                self._req = None
                self.advertise()
        elif event == _IRQ_GATTS_WRITE:
            if data[0] == self.conn and data[1] == self.h_ctl:
                self._write(self.ble.gatts_read(self.h_ctl))
        elif event == _IRQ_MTU_EXCHANGED:
            if data[0] == self.conn:
                self.mtu = data[1] if data[1] <= self.max_mtu else self.max_mtu
        elif event == _IRQ_ENCRYPTION_UPDATE:
            if data[0] == self.conn:
                self.encrypted = bool(data[1])
        elif event == _IRQ_GET_SECRET or event == _IRQ_SET_SECRET:
            return None                # bonds kept by the stack in RAM
        self.flag.set()

    def _write(self, v):
        # one written fragment of a request frame
        n = len(v)
        if n < 1:
            return
        h = v[0]
        if h & FRAG_FIRST:
            self._rxn = 0
            self._rxbad = False
        elif self._rxbad or h & FRAG_CTR != (self._rxc + 1) & FRAG_CTR:
            self._rxbad = True         # lost a fragment: drop until the next first
            return
        self._rxc = h & FRAG_CTR
        m = n - 1
        if self._rxn + m > MAX_FRAME or self._req is not None:
            self._rxbad = True
            return
        self._rx[self._rxn:self._rxn + m] = v[1:]
        self._rxn += m
        want = frame_len(self._rx, self._rxn)
        if want and (want > MAX_FRAME or self._rx[0] != P.MAGIC):
            self._rxbad = True
            self._req = bytes(self._rx[:P.HEADER])  # the handler answers bad frame
        elif want and self._rxn >= want:
            self._req = bytes(self._rx[:want])
            self._rxn = 0

    # --- work (outside the IRQ) ----------------------------------------------
    def poll(self):
        # handle a waiting request, then push notifications; True while some wait
        req = self._req
        if req is not None and self.conn != _NONE:
            self._req = None
            resp = self.handler.handle(req, P.BLE)
            self.stats[3] += 1
            if resp:
                op = req[3] if len(req) > 3 else 0
                self._queue(self.h_data if op == P.OP_LOG_READ and resp[4] == P.OK else self.h_ctl,
                            resp, False)
        return self.pump()

    def _queue(self, handle, data, live):
        self._out.append([handle, data, 0, live])
        self.flag.set()

    def pump(self):
        out = self._out
        while out and self.conn != _NONE:
            item = out[0]
            handle, data, off, live = item
            room = self.mtu - 4
            k = len(data) - off
            if k > room:
                k = room
            hdr = (self._txc + 1) & FRAG_CTR
            if off == 0:
                hdr |= FRAG_FIRST
            if live:
                hdr |= FRAG_LIVE
            buf = self._nbuf
            buf[0] = hdr
            buf[1:1 + k] = data[off:off + k]
            try:
                self.ble.gatts_notify(self.conn, handle, memoryview(buf)[:1 + k])
            except OSError as e:
                if e.args[0] == _ENOMEM:
                    self.stats[2] += 1
                    return True        # retry later
                if e.args[0] == _ENOTCONN:
                    self._out = []
                    return False
                raise
            self._txc = hdr & FRAG_CTR
            self.stats[0] += 1
            self.stats[1] += k
            if off + k >= len(data):
                out.pop(0)
            else:
                item[2] = off + k
        return bool(out) and self.conn != _NONE

    def live_event(self, ev_bytes):
        # an app listener: stream a detected event (24 bytes) to the host
        if self.conn == _NONE or self.handler.identity.keys is None:
            return
        self.live_ctr += 1
        body = bytes(ev_bytes) + struct.pack("<I", self.live_ctr)
        tag = self.handler.identity.keys.cmd.digest(b"live", body)[:LIVE_TAG]
        self._queue(self.h_data, body + tag, True)

    def live_env(self, k0, h, nw, step):
        # an app block hook: the block's envelope ratios and activity to the host
        if self.conn == _NONE or self.handler.identity.keys is None or len(self._out) > _BACKLOG:
            return
        a = qf = qe = act = 0
        for w in range(nw):
            a, qf, qe = max(a, h.a_w[w]), max(qf, h.qf_w[w]), max(qe, h.qe_w[w])
            act |= h.act_w[w] << w
        self.live_ctr += 1
        dev = self.handler.device
        b = self._env
        struct.pack_into(_ENV + "I", b, 0, LIVE_ENV, self.hand, step & 255, nw, k0, a & 0xFFFF, qf & 0xFFFF,
                         qe & 0xFFFF, act, getattr(dev, "loff", 0) & 255, self.live_ctr)
        self._queue(self.h_data, bytes(b) + self.handler.identity.keys.cmd.digest(b"live", b)[:LIVE_TAG], True)

    def refresh(self):
        # status (with electrodes when the app has them) and battery (every second)
        dev = self.handler.device
        try:
            st = dev.status()
            lg = self.handler.log.status()
            el = dev.electrodes() if hasattr(dev, "electrodes") else (P.LOFF_UNKNOWN, 0, 0)
            v = P.encode(P.StatusX(st[0], st[1], st[2], lg[0], lg[1], lg[2], dev.now_us(), el[0], *[min(x, 65535) for x in el[1:]]))
        except Exception:
            return
        self.ble.gatts_write(self.h_status, v)
        b = self.battery() if self.battery is not None else st[2]
        self.ble.gatts_write(self.h_batt, bytes((b,)))

    async def run(self):
        # the service task: next to the app's tasks on the band's loop
        self.advertise()
        while not self.stopped:
            busy = self.poll()
            if busy:
                await sleep_ms(_RETRY_MS)
                continue
            self.flag.clear()
            if self._req is not None:
                continue
            await wait_flag(self.flag, 1000)
            t = ticks_ms()
            if ticks_diff(t, self._refreshed) >= 1000:
                self._refreshed = t
                self.refresh()

    def stop(self):
        self.stopped = True
        self.flag.set()
