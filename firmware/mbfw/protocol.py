# Wire protocol shared by the band and the host (one file, imported by both);
# a pure, transport-agnostic codec (tags: mbfw.security). Layout, opcodes and
# error codes: docs/protocol.md. Frame (little-endian): 0 magic 0xB5 | 1 version
# | 2 flags | 3 opcode | 4 status | 5-6 request id | 7-10 counter | 11-12
# payload length | payload | 32-byte tag = HMAC-SHA256(command key, header +
# payload), or SHA-256 (no secret) when FLAG_UNAUTH is set.
# MicroPython's bytes() ignores __bytes__: firmware encodes with encode(m).
import struct

from micropython import const

from mbfw.config import FIELD_NAMES

MAGIC = const(0xB5)
VERSION = const(1)
HEADER = const(13)
TAG = const(32)
MAX_PAYLOAD = const(512)
_HDR = "<BBBBBHIH"
FLAG_RESP = const(1)     # band -> host
FLAG_UNAUTH = const(2)   # tag is a plain SHA-256 checksum (no key)
_FLAGS_ALL = const(3)
USB = const(0)
BLE = const(1)
OP_INFO = const(0x01)
OP_STATUS = const(0x02)
OP_TIME_GET = const(0x03)    # time-sync exchange: band clock now
OP_TIME_SET = const(0x04)
OP_TASK_SET = const(0x05)
OP_TASK_START = const(0x06)
OP_TASK_STOP = const(0x07)
OP_CALIBRATE = const(0x08)
OP_CONFIG_GET = const(0x09)
OP_CONFIG_SET = const(0x0A)
OP_LOG_RANGE = const(0x0B)
OP_LOG_READ = const(0x0C)
OP_LOG_ACK = const(0x0D)
OP_LOG_ERASE = const(0x0E)
OP_REBOOT = const(0x0F)
OP_PROVISION = const(0x10)   # USB only
OP_LAST = const(0x10)
OK = const(0)
ERR_BAD_FRAME = const(1)
ERR_BAD_VERSION = const(2)
ERR_BAD_LENGTH = const(3)
ERR_BAD_TAG = const(4)
ERR_REPLAY = const(5)
ERR_UNKNOWN_OP = const(6)
ERR_RANGE = const(7)
ERR_NOT_PROVISIONED = const(8)
ERR_TRANSPORT = const(9)
ERR_AUTH_REQUIRED = const(10)
ERR_BUSY = const(11)
ERR_LOG_FULL = const(12)
ERR_CONFIRM = const(13)
ERR_STORAGE = const(14)
ERR_INTERNAL = const(15)
ERR_LAST = const(15)
ERROR_NAMES = ("ok", "bad frame", "unsupported protocol version", "bad length", "bad tag",
               "replayed counter", "unknown opcode", "value out of range", "band not provisioned",
               "wrong transport", "authentication required", "busy", "log full",
               "confirmation required", "storage error", "internal error")
OP_NAMES = ("", "info", "status", "time-get", "time-set", "task-set", "task-start", "task-stop",
            "calibrate", "config-get", "config-set", "log-range", "log-read", "log-ack",
            "log-erase", "reboot", "provision")
TIME_ABS = const(0)   # TimeSet mode: set the band clock to value (us)
TIME_ADJ = const(1)   # TimeSet mode: add value (us, signed) to the band clock
MAX_TASK_STEPS = const(32)
MAX_PATIENT = const(16)
KEY_LEN = const(32)
BAND_ID_LEN = const(8)
PAGE_MIN = const(256)    # = logrec.MAX_REC: a page holds any record
PAGE_MAX = const(448)
_U32 = 0xFFFFFFFF
PAGE_MAGIC = const(0xB6)
PAGE_HEADER = const(14)
PAGE_ENCRYPTED = const(1)
LOFF_UNKNOWN = const(0x80)


class ProtocolError(ValueError):
    # code: one of the ERR_* values; detail: payload of the error response
    def __init__(self, code, msg="", detail=b""):
        super().__init__(msg or error_name(code))
        self.code = code
        self.detail = detail


class CommandError(Exception):
    # raised by the band app (device) or the log to refuse a command with a code
    def __init__(self, code, msg=""):
        super().__init__(msg or error_name(code))
        self.code = code


def encode(m):
    return m.__bytes__()


def error_name(code):
    return ERROR_NAMES[code] if 0 <= code <= ERR_LAST else "error %d" % code


def _range(name, v, lo, hi):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or v > hi:
        raise ProtocolError(ERR_RANGE, "%s out of range %d..%d" % (name, lo, hi))
    return v


def _pack_list(fmt, items):
    # count byte + items of 5 bytes
    out = bytearray(1 + 5 * len(items))
    out[0] = len(items)
    for j in range(len(items)):
        struct.pack_into(fmt, out, 1 + 5 * j, items[j][0], items[j][1])
    return bytes(out)


def _unpack_list(fmt, b):
    if not b or len(b) != 1 + 5 * b[0]:
        raise ProtocolError(ERR_BAD_LENGTH, "list payload length")
    return [struct.unpack_from(fmt, b, 1 + 5 * j) for j in range(b[0])]


class Frame:
    # one request or response; tag is None until sealed (mbfw.security.seal)
    def __init__(self, op, payload=b"", req_id=0, counter=0, flags=0, status=OK, tag=None):
        self.op = _range("opcode", op, 0, 255)
        self.req_id = _range("request id", req_id, 0, 0xFFFF)
        self.counter = _range("counter", counter, 0, _U32)
        self.flags = _range("flags", flags, 0, _FLAGS_ALL)
        self.status = _range("status", status, 0, 255)
        payload = bytes(payload)
        if len(payload) > MAX_PAYLOAD:
            raise ProtocolError(ERR_BAD_LENGTH, "payload over %d bytes" % MAX_PAYLOAD)
        self.payload = payload
        if tag is not None and len(tag) != TAG:
            raise ProtocolError(ERR_BAD_LENGTH, "tag must be %d bytes" % TAG)
        self.tag = tag

    def signed(self):
        # the bytes the tag covers: header + payload
        return struct.pack(_HDR, MAGIC, VERSION, self.flags, self.op, self.status, self.req_id,
                           self.counter, len(self.payload)) + self.payload

    def __bytes__(self):
        if self.tag is None:
            raise ProtocolError(ERR_BAD_FRAME, "frame not sealed")
        return self.signed() + self.tag

    @classmethod
    def from_bytes(cls, data):
        # structure only (the tag is checked by mbfw.security.verify)
        n = len(data)
        if n < 2 or data[0] != MAGIC:
            raise ProtocolError(ERR_BAD_FRAME, "not a Mirrorband frame")
        if data[1] != VERSION:
            raise ProtocolError(ERR_BAD_VERSION, "protocol version %d not supported (band speaks %d)"
                                % (data[1], VERSION), bytes((VERSION,)))
        if n < HEADER + TAG:
            raise ProtocolError(ERR_BAD_LENGTH, "frame truncated")
        _, _, flags, op, status, req_id, counter, plen = struct.unpack_from(_HDR, data, 0)
        if flags & ~_FLAGS_ALL:
            raise ProtocolError(ERR_BAD_FRAME, "unknown flags")
        if plen > MAX_PAYLOAD or n != HEADER + plen + TAG:
            raise ProtocolError(ERR_BAD_LENGTH, "length field does not match the frame")
        return cls(op, bytes(data[HEADER:HEADER + plen]), req_id, counter, flags, status,
                   bytes(data[HEADER + plen:]))

    def authenticated(self):
        return not self.flags & FLAG_UNAUTH


# --- payloads ------------------------------------------------------------------

class Packed:
    # fixed-layout payload: _F (struct format) and _R ((name, lo, hi) per field)
    _F = ""
    _R = tuple()

    def __init__(self, *vals):
        if len(vals) != len(self._R):
            raise ProtocolError(ERR_BAD_LENGTH, "%d fields expected" % len(self._R))
        for i in range(len(vals)):
            name, lo, hi = self._R[i]
            setattr(self, name, _range(name, vals[i], lo, hi))

    def __getattr__(self, name) -> int:  # fields are set in __init__; this types them
        raise AttributeError(name)

    def values(self):
        return tuple(getattr(self, r[0]) for r in self._R)

    def __bytes__(self):
        return struct.pack(self._F, *self.values())

    def __eq__(self, other):
        return type(other) is type(self) and other.values() == self.values()

    @classmethod
    def from_bytes(cls, b):
        if len(b) != struct.calcsize(cls._F):
            raise ProtocolError(ERR_BAD_LENGTH, "payload must be %d bytes" % struct.calcsize(cls._F))
        return cls(*struct.unpack(cls._F, b))


_I62 = (1 << 62) - 1


class TimeSet(Packed):
    # mode TIME_ABS: band clock := value (us, >= 0); TIME_ADJ: clock += value
    _F = "<Bq"
    _R = (("mode", TIME_ABS, TIME_ADJ), ("value", -_I62, _I62))

    def __init__(self, mode, value):
        Packed.__init__(self, mode, value)
        if mode == TIME_ABS and value < 0:
            raise ProtocolError(ERR_RANGE, "absolute time must not be negative")


class TaskStart(Packed):
    _F, _R = "<I", (("session", 0, _U32),)


class Calibrate(Packed):
    _F, _R = "<I", (("ms", 1000, 600000),)


class LogAck(Packed):
    # acknowledge every record up to and including seq
    _F, _R = "<I", (("seq", 0, _U32),)


class LogRead(Packed):
    _F = "<IH"
    _R = (("seq_from", 0, _U32), ("max_len", PAGE_MIN, PAGE_MAX))


class TaskSet:
    # points: (start_ms, kind) in increasing start order; kinds as mbfw.task
    def __init__(self, points):
        if len(points) > MAX_TASK_STEPS:
            raise ProtocolError(ERR_RANGE, "more than %d task steps" % MAX_TASK_STEPS)
        last = -1
        for t, k in points:
            _range("step start", t, 0, (1 << 30) - 1)
            _range("step kind", k, 0, 3)
            if t <= last:
                raise ProtocolError(ERR_RANGE, "task steps must start in increasing order")
            last = t
        self.points = [(t, k) for t, k in points]

    def __bytes__(self):
        return _pack_list("<IB", self.points)

    @classmethod
    def from_bytes(cls, b):
        return cls(_unpack_list("<IB", b))


class ConfigValues:
    # items: (field index into config.FIELD_NAMES, value); a full set answers
    # CONFIG_GET, any subset is a CONFIG_SET (checked again by config.Config)
    def __init__(self, items):
        seen = 0
        for i, v in items:
            _range("config field", i, 0, len(FIELD_NAMES) - 1)
            _range(FIELD_NAMES[i], v, -(1 << 31), (1 << 31) - 1)
            if seen & (1 << i):
                raise ProtocolError(ERR_RANGE, "config field repeated")
            seen |= 1 << i
        self.items = [(i, v) for i, v in items]

    @classmethod
    def from_dict(cls, d):
        items = []
        for k in d:
            if k not in FIELD_NAMES:
                raise ProtocolError(ERR_RANGE, "unknown setting " + k)
            items.append((FIELD_NAMES.index(k), d[k]))
        return cls(items)

    def as_dict(self):
        return {FIELD_NAMES[i]: v for i, v in self.items}

    def __bytes__(self):
        return _pack_list("<Bi", self.items)

    @classmethod
    def from_bytes(cls, b):
        return cls(_unpack_list("<Bi", b))


def check_name(b, what, least=1):
    # pseudonym / short text: 1..16 of A-Z a-z 0-9 . _ -
    if isinstance(b, str):
        b = b.encode()
    if not least <= len(b) <= MAX_PATIENT:
        raise ProtocolError(ERR_RANGE, "%s must be 1..%d characters" % (what, MAX_PATIENT))
    for c in b:
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c in (45, 46, 95)):
            raise ProtocolError(ERR_RANGE, "%s may hold only letters, digits, . _ -" % what)
    return b.decode()


class Provision:
    # key, hand (0 L, 1 R), patient pseudonym, confirmation token (0 = none yet)
    def __init__(self, key, hand, patient, token=0):
        if len(key) != KEY_LEN:
            raise ProtocolError(ERR_RANGE, "key must be %d bytes" % KEY_LEN)
        self.key = bytes(key)
        self.hand = _range("hand", hand, 0, 1)
        self.patient = check_name(patient, "patient id")
        self.token = _range("token", token, 0, _U32)

    def __bytes__(self):
        p = self.patient.encode()
        return self.key + struct.pack("<BIB", self.hand, self.token, len(p)) + p

    @classmethod
    def from_bytes(cls, b):
        if len(b) < KEY_LEN + 7 or len(b) != KEY_LEN + 6 + b[KEY_LEN + 5]:
            raise ProtocolError(ERR_BAD_LENGTH, "provision payload length")
        hand, token, _ = struct.unpack_from("<BIB", b, KEY_LEN)
        return cls(b[:KEY_LEN], hand, bytes(b[KEY_LEN + 6:]), token)


# --- response payloads ----------------------------------------------------------

class Info:
    # band id (8 bytes), provisioned, hand, features bit 0 = pages encrypted,
    # firmware version, board, patient ('' when unprovisioned)
    def __init__(self, band_id, provisioned, hand, features, fw, board, patient):
        if len(band_id) != BAND_ID_LEN:
            raise ProtocolError(ERR_RANGE, "band id must be %d bytes" % BAND_ID_LEN)
        self.band_id = bytes(band_id)
        self.provisioned = _range("provisioned", int(provisioned), 0, 1)
        self.hand = _range("hand", hand, 0, 1)
        self.features = _range("features", features, 0, 255)
        self.fw = check_name(fw, "firmware", 0)
        self.board = check_name(board, "board", 0)
        self.patient = check_name(patient, "patient id", 0)

    def __bytes__(self):
        out = self.band_id + struct.pack("<BBBB", VERSION, self.provisioned, self.hand, self.features)
        for s in (self.fw, self.board, self.patient):
            e = s.encode()
            out += bytes((len(e),)) + e
        return out

    @classmethod
    def from_bytes(cls, b):
        texts = []
        i = 12
        while len(texts) < 3 and i < len(b) and i + 1 + b[i] <= len(b):
            texts.append(bytes(b[i + 1:i + 1 + b[i]]))
            i += 1 + b[i]
        if len(texts) < 3 or i != len(b):
            raise ProtocolError(ERR_BAD_LENGTH, "info payload length")
        _, prov, hand, feat = struct.unpack_from("<BBBB", b, 8)
        return cls(b[:8], prov, hand, feat, check_name(texts[0], "firmware", 0),
                   check_name(texts[1], "board", 0), check_name(texts[2], "patient id", 0))


class Status(Packed):
    # app state, task step, battery %, storage used/free bytes, undownloaded
    # records, band clock (us)
    _F = "<BBBIIIq"
    _R = (("state", 0, 255), ("step", 0, 255), ("battery", 0, 100), ("used", 0, _U32),
          ("free", 0, _U32), ("pending", 0, _U32), ("now_us", -_I62, _I62))


class StatusX(Packed):
    # Status + electrodes (STATUS characteristic): lead-off bits (ADS1292R
    # LOFF_STAT; LOFF_UNKNOWN before sampling), FLEX / EXT rest level 0.1 uV, 0 = unknown
    _F = Status._F + "BHH"
    _R = Status._R + (("loff", 0, 255), ("q_flex", 0, 0xFFFF), ("q_ext", 0, 0xFFFF))


class LogRange(Packed):
    # first stored sequence, next to be written, last acknowledged (0 = none;
    # sequences start at 1), undownloaded records, used and free bytes
    _F = "<IIIIII"
    _R = (("first", 0, _U32), ("next", 0, _U32), ("acked", 0, _U32), ("pending", 0, _U32),
          ("used", 0, _U32), ("free", 0, _U32))


class PageHeader(Packed):
    # log page: magic, version, flags (PAGE_ENCRYPTED), nonce (unique per key),
    # first sequence asked for, body length; body; HMAC-SHA256 tag (security.py)
    _F = "<BBBxIIH"
    _R = (("magic", PAGE_MAGIC, PAGE_MAGIC), ("version", VERSION, VERSION), ("flags", 0, 1),
          ("nonce", 0, _U32), ("seq_from", 0, _U32), ("length", 0, PAGE_MAX))


class TimeNow(Packed):
    # TIME_GET answer: the band clock (us)
    _F, _R = "<q", (("now_us", -_I62, _I62),)
