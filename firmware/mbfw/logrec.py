# Event log record format (pure; shared by the band's EventLog and the host):
# record = magic u16 0xB14D, payload length u16, seq u32, type u8, 0 u8, payload,
# CRC32 u32 over everything before it; little-endian. Byte layout and payloads:
# docs/storage.md. parse_records() decodes a log page and raises only LogError.
import binascii
import struct

from micropython import const

T_EVENT = const(1)
T_SESSION = const(2)
T_SNIPPET = const(3)
T_ACTIVITY = const(4)

MAGIC = const(0xB14D)        # bytes 4D B1
HDR = const(10)              # magic u16, length u16, seq u32, type u8, reserved u8 (= 0)
OVH = const(14)              # header + CRC32 (over header and payload)
MAX_REC = const(256)
MAX_PAYLOAD = const(242)
SEQ_LIMIT = const(0x3FFFFFFF)  # sequence numbers stay small ints on 32-bit ports
SESSION_SIZE = const(16)
SNIP_HDR = const(8)
STATE_SIZE = const(20)
SESSION_START = const(1)
SESSION_STOP = const(2)
ACTIVITY_SIZE = const(16)
ACT_OPEN = const(1)          # activity flag: span still open (end = progress so far)

_HFMT = "<HHIBB"
_SESS = "<IBBHiI"            # session id, start/stop, hand, protocol id, band ms, unix s
_SNIP = "<iHBB"
_ACT = "<IIIBBH"             # session id, first window, end window (excl.), hand, flags, 0
_STATE = "<HBBIIII"          # magic "ST", version 1, 0, generation, acked seq, seq floor, CRC32
_SMAGIC = const(0x5453)              # t0 band ms, rate Hz, channels, 0; then int16 samples

_ERR = ("", "bad magic or header", "bad type or length", "sequence out of order", "bad CRC")


class LogError(Exception):
    pass


class LogFull(LogError):
    pass


def len_ok(typ, n):
    if typ == T_EVENT:
        return n == 24
    if typ == T_SESSION:
        return n == SESSION_SIZE
    if typ == T_ACTIVITY:
        return n == ACTIVITY_SIZE
    return typ == T_SNIPPET and SNIP_HDR <= n <= MAX_PAYLOAD and not (n - SNIP_HDR) & 1


def check_record(mv, off, end, prev):
    # length of the valid record at mv[off:end]; 0: incomplete; < 0: invalid (_ERR index)
    if end - off < HDR:
        return 0
    magic, n, seq, typ, rsv = struct.unpack_from(_HFMT, mv, off)
    if magic != MAGIC or rsv:
        return -1
    if not len_ok(typ, n):
        return -2
    if seq <= prev or seq > SEQ_LIMIT:
        return -3
    if end - off < OVH + n:
        return 0
    if binascii.crc32(mv[off:off + HDR + n]) != struct.unpack_from("<I", mv, off + HDR + n)[0]:
        return -4
    return OVH + n


def parse_records(buf):
    # raw records (a log page) -> (seq, rtype, payload); strictly increasing seq
    mv = memoryview(buf)
    end = len(mv)
    off = 0
    prev = 0
    while off < end:
        r = check_record(mv, off, end, prev)
        if r <= 0:
            raise LogError("truncated record at byte %d" % off if r == 0 else "%s at byte %d" % (_ERR[-r], off))
        _, n, seq, typ, _ = struct.unpack_from(_HFMT, mv, off)
        yield seq, typ, bytes(mv[off + HDR:off + HDR + n])
        prev = seq
        off += r


def session_payload(session_id, what, hand, protocol_id, clock_ms, unix_s):
    if what not in (SESSION_START, SESSION_STOP) or hand > 1 or not 0 <= protocol_id < 65536:
        raise LogError("bad session marker")
    return struct.pack(_SESS, session_id, what, hand, protocol_id, clock_ms, unix_s)


def unpack_session(b):
    if len(b) != SESSION_SIZE:
        raise LogError("session marker must be 16 bytes")
    f = struct.unpack(_SESS, b)
    if f[1] not in (SESSION_START, SESSION_STOP) or f[2] > 1:
        raise LogError("bad session marker")
    return f


def activity_payload(session_id, w0, w1, hand, flags):
    # a writing-activity span: windows w0 .. w1-1 (10 ms) of the session
    if not 0 <= w0 < w1 <= SEQ_LIMIT or hand > 1 or flags & ~ACT_OPEN:
        raise LogError("bad activity span")
    return struct.pack(_ACT, session_id, w0, w1, hand, flags, 0)


def unpack_activity(b):
    # -> (session id, first window, end window, hand, flags)
    if len(b) != ACTIVITY_SIZE:
        raise LogError("activity span must be 16 bytes")
    f = struct.unpack(_ACT, b)
    if not f[1] < f[2] or f[3] > 1 or f[4] & ~ACT_OPEN:
        raise LogError("bad activity span")
    return f[:5]


def snippet_payload(t0_ms, rate_hz, nch, samples):
    # samples: int16 little-endian bytes, interleaved by channel
    n = SNIP_HDR + len(samples)
    if not 1 <= nch <= 2 or not 0 < rate_hz < 65536 or n > MAX_PAYLOAD or len(samples) % (2 * nch):
        raise LogError("bad snippet")
    return struct.pack(_SNIP, t0_ms, rate_hz, nch, 0) + bytes(samples)


def unpack_snippet(b):
    # -> (t0_ms, rate_hz, nch, int16 sample bytes)
    if len(b) < SNIP_HDR:
        raise LogError("snippet too short")
    t0, rate, nch, _ = struct.unpack_from(_SNIP, b, 0)
    if not 1 <= nch <= 2 or (len(b) - SNIP_HDR) % (2 * nch):
        raise LogError("bad snippet")
    return t0, rate, nch, bytes(b[SNIP_HDR:])


def scan_segment(f, buf, first, cls):
    # validate a segment file record by record (buf: >= 2 * MAX_REC scratch bytes);
    # -> (valid bytes, seq of first record, seq of last record, records); 0s when empty
    mv = memoryview(buf)
    base = have = pos = head = count = 0
    eof = False
    prev = first - 1
    while True:
        if not eof and have - pos < MAX_REC:
            if pos:
                mv[0:have - pos] = bytes(mv[pos:have])
                base += pos
                have -= pos
                pos = 0
            k = f.readinto(mv[have:])
            if k:
                have += k
                continue
            eof = True
        r = check_record(mv, pos, have, prev)
        if r <= 0 or (mv[pos + 8] == T_SNIPPET) != cls:
            return base + pos, head, prev if count else 0, count
        prev = struct.unpack_from("<I", mv, pos + 4)[0]
        if not head:
            head = prev
        count += 1
        pos += r


def pack_state(buf, gen, acked, floor):
    # the log's persisted state (one of two alternating files) into buf[:STATE_SIZE]
    struct.pack_into(_STATE, buf, 0, _SMAGIC, 1, 0, gen, acked, floor, 0)
    struct.pack_into("<I", buf, 16, binascii.crc32(memoryview(buf)[:16]))


def unpack_state(buf):
    # -> (gen, acked, floor), or None when the slot is torn or not a state
    m, v, _, gen, acked, floor, crc = struct.unpack_from(_STATE, buf, 0)
    if m != _SMAGIC or v != 1 or crc != binascii.crc32(memoryview(buf)[:16]) \
            or acked > SEQ_LIMIT or floor > SEQ_LIMIT + 1:
        return None
    return gen, acked, floor
