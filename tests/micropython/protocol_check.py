# Golden byte vectors of the wire protocol, checked by the same code under
# CPython (tests/firmware/test_protocol.py imports this file) and inside the
# MicroPython unix port (tests/micropython/test_protocol_mpy.py runs it with
# the firmware compiled by mpy-cross). Runs on MicroPython: no f-strings-only
# features, no CPython-only modules. Prints "OK <checks>" or "FAIL <name> ...".
import struct

from mbfw import protocol as P
from mbfw.security import DEFAULT_CTR, Hmac, Keys, open_page, seal, seal_page, verify

KEY = bytes(range(32))
BAND = bytes.fromhex("0102030405060708")
BODY = bytes(range(100, 140))

# name -> bytes produced by the firmware codecs (fixed; never regenerated)
VECTORS = (
    ("frame_info_unauth",
     "b5010201000100000000000000cea3e19ae4471448563171f8defd7aa815de5162410a797f926492daea40e850"),
    ("frame_time_set",
     "b501000400341207000000090000cb04fb711f0100008f460d03b3486c0f96077ed4f6c002e09a899fb3acc247bcb9c8147d075e056d"),
    ("frame_task_set",
     "b5010005000200080000001000030000000001307500000360ea0000020d5b3e102b8190756ccc1c3be619a710f2c885434ec1ccfa90550257bbd8c69f"),
    ("frame_config_set",
     "b501000a000300090000000b0002013c00000002500000003c17081ff1bc4aa2aecf1a4a9682b22f07b3be100417885211570ff92f341da3"),
    ("frame_log_read",
     "b501000c0004000a0000000600050000002c01414a76dbaf24570b076de0cbffd4a1fea940ba920dde50683bd6a34750a1459c"),
    ("frame_provision",
     "b5010210000500000000002900000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f01efbeadde035030319bed94780e4275e5404ce57a6a4d539ee8273d723fbb327e3e12a0e59c42fa4b"),
    ("resp_replay",
     "b50101060506000a00000004000b000000135c5ea164a3e578764a9d7328ec95fa84aa97f67142d13338f2484302d4e7c0"),
    ("info",
     "01020304050607080101010105302e312e30077669727475616c03503031"),
    ("status",
     "020357e8030000d00700000500000015cd5b0700000000"),
    ("log_range",
     "000000000a0000000400000005000000e803000000fa0000"),
    ("page_encrypted",
     "b6010100030000000500000028001d77c0260b928b82427dd5e22623ae79124cbbc346b105c894a36da310670d23062352cea99b084c4ddea7ed688272aa403bfb7ff6a5d261456f17b86040c8302c7c8c06a612d754"),
    ("page_plain",
     "b6010000040000000500000028006465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8bceca89b0a9c36177e50dd727bd4d3a0c8281c695e95b0d63efee8f6d3e2f9a47"),
    ("hmac_rfc4231_2",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("status_x",
     "020357e8030000d00700000500000015cd5b07000000000cd204ffff"),
    ("live_env",
     "e101030a3930000090017c011900f0030c000000000000004d000000f8ed09922814467e9dcb424eeb71a329"),
)
# live envelope block of ENV_HAND (the fields bleservice.unpack_env gives back)
ENV_FIELDS = (1, 3, 10, 12345, 400, 380, 25, 0x3F0, 0x0C)
ENV_CTR = 77


class _EnvHand:
    # per-window ratios x16 and activity bits of one block (mbfw.app Hand attributes)
    a_w = (100, 400, 90, 80, 70, 60, 50, 40, 30, 20)
    qf_w = (380, 10, 10, 10, 10, 10, 10, 10, 10, 10)
    qe_w = (1, 2, 3, 25, 4, 5, 6, 7, 8, 9)
    act_w = (0, 0, 0, 0, 1, 1, 1, 1, 1, 1)


class _EnvService:
    # what BleService.live_env uses of its instance: a connected, provisioned band
    def __init__(self, keys):
        class _Id:
            pass

        class _Dev:
            loff = 0x0C

        class _Handler:
            identity = _Id()
            device = _Dev()

        _Handler.identity.keys = keys
        self.handler = _Handler()
        self.conn = 0
        self._out = []
        self.live_ctr = ENV_CTR - 1
        self.hand = 1
        self._env = bytearray(28)
        self.h_data = 9
        self.sent = []

    def _queue(self, handle, data, live):
        self.sent.append((handle, data, live))


def live_env_frame(keys):
    # the band's own packer (BleService.live_env) on a stand-in instance
    import gc

    gc.collect()
    from mbfw.bleservice import BleService

    svc = _EnvService(keys)
    BleService.live_env(svc, ENV_FIELDS[3], _EnvHand(), ENV_FIELDS[2], ENV_FIELDS[1])
    return svc.sent[0][1]


def build(ctr):
    # the objects the vectors were made from, built again here
    k = Keys(KEY)
    return {
        "frame_info_unauth": seal(P.Frame(P.OP_INFO, b"", 1, 0), None),
        "frame_time_set": seal(P.Frame(P.OP_TIME_SET, P.encode(P.TimeSet(0, 1234567890123)), 0x1234, 7), k),
        "frame_task_set": seal(P.Frame(P.OP_TASK_SET, P.encode(P.TaskSet([(0, 1), (30000, 3), (60000, 2)])),
                                       2, 8), k),
        "frame_config_set": seal(P.Frame(P.OP_CONFIG_SET, P.encode(P.ConfigValues([(1, 60), (2, 80)])), 3, 9), k),
        "frame_log_read": seal(P.Frame(P.OP_LOG_READ, P.encode(P.LogRead(5, 300)), 4, 10), k),
        "frame_provision": seal(P.Frame(P.OP_PROVISION, P.encode(P.Provision(KEY, 1, "P01", 0xDEADBEEF)), 5, 0),
                                None),
        "resp_replay": seal(P.Frame(P.OP_TASK_START, struct.pack("<I", 11), 6, 10, P.FLAG_RESP,
                                    P.ERR_REPLAY), k),
        "info": P.encode(P.Info(BAND, 1, 1, 1, "0.1.0", "virtual", "P01")),
        "status": P.encode(P.Status(2, 3, 87, 1000, 2000, 5, 123456789)),
        "log_range": P.encode(P.LogRange(0, 10, 4, 5, 1000, 64000)),
        "page_encrypted": seal_page(k, 3, 5, BODY, ctr),
        "page_plain": seal_page(k, 4, 5, BODY, None),
        "hmac_rfc4231_2": Hmac(b"Jefe").digest(b"what do ya want for nothing?"),
        "status_x": P.encode(P.StatusX(2, 3, 87, 1000, 2000, 5, 123456789, 0x0C, 1234, 65535)),
    }


def check_live_env():
    # the LIVE_ENV vector: built by the band's packer, decoded by bleservice.unpack_env
    # (kept out of run(): importing mbfw.bleservice loads asyncio, ~11 KB of heap)
    from mbfw.bleservice import LIVE_TAG, unpack_env

    fails = []
    n = 1
    k = Keys(KEY)
    env = bytes.fromhex(dict(VECTORS)["live_env"])
    if live_env_frame(k) != env:
        fails.append("live_env")
    n += 1
    if len(env) != 24 + 4 + LIVE_TAG or tuple(unpack_env(env[:24])) != ENV_FIELDS \
            or struct.unpack("<I", env[24:28])[0] != ENV_CTR \
            or env[28:] != k.cmd.digest(b"live", env[:28])[:LIVE_TAG]:
        fails.append("live_env fields")
    for bad in (env[:23], b"\x00" + env[1:24], env[:3] + b"\x00" + env[4:24]):
        n += 1
        try:
            unpack_env(bad)
            fails.append("live_env accepts a bad body")
        except ValueError:
            pass
    return fails, n


def _code(fn, *args):
    try:
        fn(*args)
    except P.ProtocolError as e:
        return e.code
    return 0


def run(ctr=DEFAULT_CTR):
    # returns a list of failure names (empty = all good) and the number of checks
    fails = []
    n = 0
    got = build(ctr)
    k = Keys(KEY)
    for name, hexs in VECTORS:
        if ctr is None and name == "page_encrypted":
            continue  # a port without cryptolib cannot build it
        if name == "live_env":
            continue  # needs mbfw.bleservice (asyncio): checked by check_live_env (run_handler)
        n += 1
        if got[name] != bytes.fromhex(hexs):
            fails.append(name)
    # decoding: frames verify and round-trip, payloads decode to the same bytes
    for name, hexs in VECTORS:
        b = bytes.fromhex(hexs)
        if name[:6] == "frame_" or name[:5] == "resp_":
            n += 1
            f = P.Frame.from_bytes(b)
            verify(f, k)
            if P.encode(f) != b:
                fails.append("roundtrip " + name)
    pairs = ((P.Info, "info"), (P.Status, "status"), (P.LogRange, "log_range"), (P.StatusX, "status_x"))
    for cls, name in pairs:
        n += 1
        b = bytes.fromhex(dict(VECTORS)[name])
        if P.encode(cls.from_bytes(b)) != b:
            fails.append("decode " + name)
    # StatusX is additive: the status fields first, then the electrodes
    n += 1
    sx = bytes.fromhex(dict(VECTORS)["status_x"])
    if sx[:len(bytes.fromhex(dict(VECTORS)["status"]))] != bytes.fromhex(dict(VECTORS)["status"]) \
            or P.StatusX.from_bytes(sx).values()[7:] != (0x0C, 1234, 65535):
        fails.append("status_x fields")
    # pages: open, and any flipped bit is caught
    for name in ("page_encrypted", "page_plain"):
        page = bytes.fromhex(dict(VECTORS)[name])
        if ctr is None and name == "page_encrypted":
            n += 1
            if _code(open_page, k, page, ctr) != P.ERR_INTERNAL:
                fails.append("no-AES page")
            continue
        n += 1
        if open_page(k, page, ctr)[1] != BODY:
            fails.append("open " + name)
        for i in range(0, len(page) * 8, 7):
            bad = bytearray(page)
            bad[i // 8] ^= 1 << (i % 8)
            n += 1
            if _code(open_page, k, bytes(bad), ctr) == 0:
                fails.append(f"tamper {name} bit {i}")
    # clear error codes for bad frames
    good = bytes.fromhex(dict(VECTORS)["frame_time_set"])
    cases = (
        ("bad version", good[:1] + b"\x02" + good[2:], P.ERR_BAD_VERSION),
        ("bad magic", b"\x00" + good[1:], P.ERR_BAD_FRAME),
        ("truncated", good[:20], P.ERR_BAD_LENGTH),
        ("long", good + b"\x00", P.ERR_BAD_LENGTH),
        ("empty", b"", P.ERR_BAD_FRAME),
    )
    for name, b, code in cases:
        n += 1
        if _code(P.Frame.from_bytes, b) != code:
            fails.append(name)
    n += 1
    f = P.Frame.from_bytes(good[:-1] + bytes((good[-1] ^ 1,)))
    if _code(verify, f, k) != P.ERR_BAD_TAG:
        fails.append("flipped tag")
    n += 1
    if _code(verify, f, Keys(bytes(32))) != P.ERR_BAD_TAG:
        fails.append("wrong key")
    ranges = (
        lambda: P.TimeSet(2, 0), lambda: P.TimeSet(0, -1), lambda: P.Calibrate(10),
        lambda: P.LogRead(0, 255), lambda: P.TaskSet([(5, 1), (5, 2)]), lambda: P.TaskSet([(0, 4)]),
        lambda: P.ConfigValues([(99, 1)]), lambda: P.Provision(KEY, 2, "P"),
        lambda: P.Provision(KEY, 0, "no spaces"), lambda: P.Status(0, 0, 101, 0, 0, 0, 0),
    )
    for i in range(len(ranges)):
        n += 1
        if _code(ranges[i]) != P.ERR_RANGE:
            fails.append(f"range {i}")
    return fails, n


class Device:
    # the smallest band app the handler accepts (see mbfw/handler.py)
    def __init__(self):
        from mbfw.config import Config

        self.cfg = Config()
        self.clock = 1000
        self.running = None

    def info(self):
        return BAND, "virtual", "0.1.0"

    def status(self):
        return 1, 0, 90

    def now_us(self):
        return self.clock

    def electrodes(self):
        return 0x0C, 1234, 70000  # the handler caps rest levels at 0xFFFF

    def set_time(self, us):
        self.clock = us

    def set_task(self, points):
        self.points = points

    def start_task(self, session):
        if self.running is not None:
            raise P.CommandError(P.ERR_BUSY)
        self.running = session

    def stop_task(self):
        self.running = None

    def calibrate(self, ms):
        pass

    def get_config(self):
        return self.cfg

    def set_config(self, cfg):
        self.cfg = cfg

    def reboot(self):
        pass


class Log:
    # mbfw.eventlog.EventLog's API; records of 8 bytes (seq u32 + data u32), seqs from 1
    def __init__(self, n):
        self.next = n + 1
        self.first = 1
        self.acked = 0

    def read_into(self, seq_from, buf):
        i = 0
        s = max(seq_from, self.first)
        while s < self.next and i + 8 <= len(buf):
            struct.pack_into("<II", buf, i, s, s * 7)
            i += 8
            s += 1
        return i

    def ack(self, seq):
        self.acked = max(seq, self.acked)

    def erase_acked(self):
        self.first = self.acked + 1

    def status(self):
        n = self.next - self.first
        return 8 * n, 1000, self.next - max(self.first, self.acked + 1), self.first, self.next, self.acked


def run_handler(ctr=DEFAULT_CTR, mutants=3000):
    # provision through the console, authenticated commands, a log page, then
    # mutated frames: every answer must be a response frame, nothing raises
    from mbfw.console import Console
    from mbfw.handler import Handler
    from mbfw.identity import Identity, MemStore

    fails = []
    h = Handler(Device(), Log(30), Identity(MemStore()), ctr)
    con = Console(h)
    out = con.line("provision " + KEY.hex() + " L P01")
    if not out.startswith("OK provisioned id=0102030405060708 hand=L patient=P01"):
        fails.append("console provision: " + out)
    if not con.line("provision " + KEY.hex() + " R P02").startswith("CONFIRM "):
        fails.append("console confirm")
    h.log = Log(30)  # records written after provisioning (it wiped the log)
    k = Keys(KEY)
    good = []
    for i, (op, pl) in enumerate(((P.OP_STATUS, b""), (P.OP_TASK_START, P.encode(P.TaskStart(9))),
                                  (P.OP_LOG_READ, P.encode(P.LogRead(3, 256))))):
        raw = seal(P.Frame(op, pl, i, i + 1), k)
        good.append(raw)
        r = P.Frame.from_bytes(h.handle(raw, P.BLE))
        verify(r, k)
        if r.status != P.OK or r.counter != i + 1:
            fails.append(f"op {op} status {r.status}")
        if op == P.OP_LOG_READ:
            body = open_page(k, r.payload, ctr)[1]
            if len(body) != 224 or struct.unpack_from("<II", body, 8) != (4, 28):
                fails.append("log page")
    # STATUS with the STATUS_X byte: the status fields, then the electrodes
    from mbfw.handler import STATUS_X

    r = P.Frame.from_bytes(h.handle(seal(P.Frame(P.OP_STATUS, bytes((STATUS_X,)), 7, 0), None), P.USB))
    if r.status != P.OK or P.StatusX.from_bytes(r.payload).values()[7:] != (0x0C, 1234, 0xFFFF):
        fails.append(f"status_x {r.status}")
    fe, _ = check_live_env()
    fails += fe
    seed = 12345
    codes = 0
    for i in range(mutants):
        b = bytearray(good[i % len(good)])
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        pos = seed % (len(b) + 8)
        if pos < len(b):
            b[pos] ^= 1 + (seed >> 8) % 255
        else:
            b = b[:seed % len(b)]
        r = P.Frame.from_bytes(h.handle(bytes(b), i & 1))
        if not r.flags & P.FLAG_RESP or r.status == P.OK or r.status == P.ERR_INTERNAL:
            fails.append(f"mutant {i} status {r.status}")
            break
        codes |= 1 << r.status
    return fails, codes


if __name__ == "__main__":
    fails, n = run()
    fails2, codes = run_handler()
    fails += fails2
    if fails:
        print("FAIL", " ".join(fails))
    else:
        print("OK", n, codes, "aes" if DEFAULT_CTR else "no-aes")
