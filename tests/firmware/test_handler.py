"""Command handler: every opcode, access rules, state unchanged by rejections,
and >= 100,000 mutated frames answered without an exception."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import pytest

from mbfw import events
from mbfw import protocol as P
from mbfw.config import Config
from mbfw.eventlog import EventLog
from mbfw.fsio import OsFS
from mbfw.handler import Handler
from mbfw.identity import Identity, MemStore
from mbfw.logrec import MAX_REC, T_EVENT, parse_records
from mbfw.security import seal
from mirrorband.bands.client import BandClient, BandError, aes_ctr

KEY = bytes(range(32))
BAND_ID = bytes.fromhex("0102030405060708")


class FakeDevice:
    """The band app interface the handler needs (docs in handler.py)."""

    def __init__(self) -> None:
        self.clock = 1_000_000
        self.cfg = Config()
        self.task: list = []
        self.running = None
        self.calibrated = 0
        self.reboots = 0
        self.busy = False

    def info(self):
        return BAND_ID, "virtual", "0.1.0"

    def status(self):
        return (2 if self.running is not None else 1), 0, 87

    def now_us(self):
        return self.clock

    def set_time(self, us):
        self.clock = us

    def set_task(self, points):
        if self.running is not None:
            raise P.CommandError(P.ERR_BUSY)
        self.task = list(points)

    def start_task(self, session):
        if self.running is not None:
            raise P.CommandError(P.ERR_BUSY)
        self.running = session

    def stop_task(self):
        self.running = None

    def calibrate(self, ms):
        if self.running is not None:
            raise P.CommandError(P.ERR_BUSY)
        self.calibrated = ms

    def get_config(self):
        return self.cfg

    def set_config(self, cfg):
        if self.running is not None:
            raise P.CommandError(P.ERR_BUSY)
        self.cfg = cfg

    def reboot(self):
        self.reboots += 1

    def snapshot(self):
        return (self.clock, self.cfg.as_dict(), list(self.task), self.running, self.calibrated, self.reboots)


def event(i: int) -> bytes:
    return events.pack([1, 1, 0, 0, 1000 * i, 1000 * i + 300, 80, 500, 40, 12, 3])


def real_log(root: Path, n: int = 0) -> EventLog:
    """The band's EventLog on a directory, recovered as at boot, with n event records."""
    root.mkdir(parents=True, exist_ok=True)
    log = EventLog(OsFS(), str(root / "log"), seg_size=2048, nseg=8)
    log.recover()
    for i in range(n):
        log.append(T_EVENT, event(i))
    return log


def log_snapshot(log: EventLog):
    buf, out, seq = bytearray(MAX_REC * 4), [], 1
    while n := log.read_into(seq, buf):
        recs = list(parse_records(buf[:n]))
        out += recs
        seq = recs[-1][0] + 1
    return log.status(), out


def make_band(root: Path, provisioned: bool = True, records: int = 5):
    dev, ident = FakeDevice(), Identity(MemStore())
    if provisioned:
        ident.provision(KEY, 1, "P01")
    log = real_log(root, records)  # after provisioning (which wipes the log)
    return Handler(dev, log, ident, ctr=aes_ctr), dev, log, ident


def usb(h):
    return lambda b: h.handle(b, P.USB)


def ble(h):
    return lambda b: h.handle(b, P.BLE)


def state(h, dev, log, ident):
    return dev.snapshot(), log_snapshot(log), (ident.key, ident.hand, ident.patient)


def test_info_status_and_time_sync(tmp_path):
    h, dev, log, ident = make_band(tmp_path)
    c = BandClient(KEY)
    info = c.info(ble(h))
    assert (info.band_id, info.provisioned, info.hand, info.patient, info.features) == (BAND_ID, 1, 1, "P01", 1)
    st = c.status(ble(h))
    assert (st.battery, st.pending, st.now_us) == (87, 5, 1_000_000)
    assert P.TimeNow.from_bytes(c.call(ble(h), P.OP_TIME_GET)).now_us == 1_000_000
    c.call(ble(h), P.OP_TIME_SET, bytes(P.TimeSet(P.TIME_ADJ, -400)))
    assert dev.clock == 999_600
    c.call(ble(h), P.OP_TIME_SET, bytes(P.TimeSet(P.TIME_ABS, 5)))
    assert dev.clock == 5
    with pytest.raises(BandError) as e:
        c.call(ble(h), P.OP_TIME_SET, bytes(P.TimeSet(P.TIME_ADJ, -6)))
    assert e.value.code == P.ERR_RANGE and dev.clock == 5


def test_task_calibrate_config_reboot(tmp_path):
    h, dev, log, ident = make_band(tmp_path)
    c = BandClient(KEY)
    c.call(ble(h), P.OP_TASK_SET, bytes(P.TaskSet([(0, 1), (30000, 2)])))
    assert dev.task == [(0, 1), (30000, 2)]
    c.call(ble(h), P.OP_CALIBRATE, bytes(P.Calibrate(20000)))
    assert dev.calibrated == 20000
    c.call(ble(h), P.OP_TASK_START, bytes(P.TaskStart(77)))
    assert dev.running == 77
    with pytest.raises(BandError) as e:
        c.call(ble(h), P.OP_TASK_START, bytes(P.TaskStart(78)))
    assert e.value.code == P.ERR_BUSY and dev.running == 77
    c.call(ble(h), P.OP_TASK_STOP)
    assert dev.running is None
    cfg = c.set_config(ble(h), mains_hz=60, t_on=80)
    assert cfg["mains_hz"] == 60 and dev.cfg.t_on == 80 and c.config(ble(h)) == dev.cfg.as_dict()
    for bad in ({"mains_hz": 55}, {"t_off": 90}, {"hand": 2}):
        before = dev.cfg.as_dict()
        with pytest.raises(BandError) as e:
            c.set_config(ble(h), **bad)
        assert e.value.code == P.ERR_RANGE and dev.cfg.as_dict() == before
    c.call(ble(h), P.OP_REBOOT)
    assert dev.reboots == 1


def test_log_read_ack_erase_resume(tmp_path):
    h, dev, log, ident = make_band(tmp_path, records=40)
    c = BandClient(KEY, require_encryption=True)
    got: list = []
    seq = 1
    while True:
        raw, page = c.read_page(ble(h), seq, 300)
        recs = list(parse_records(page.body))
        if not recs:
            break
        assert page.encrypted and raw[P.PAGE_HEADER:P.PAGE_HEADER + 8] != page.body[:8]
        got += recs
        seq = recs[-1][0] + 1
        if len(got) == 20:
            break  # a disconnect: the next session resumes from the last acknowledged record
        c.ack(ble(h), recs[-1][0])
    rng = c.log_range(ble(h))
    seq = rng.acked + 1
    while recs := list(parse_records(c.read_page(ble(h), seq, 300)[1].body)):
        got += [r for r in recs if r[0] > got[-1][0]]
        seq = recs[-1][0] + 1
        c.ack(ble(h), recs[-1][0])
    assert [r[0] for r in got] == list(range(1, 41))  # nothing lost, nothing duplicated
    assert [r[2] for r in got] == [event(i) for i in range(40)]
    assert c.log_range(ble(h)).pending == 0
    c.call(ble(h), P.OP_LOG_ERASE)
    rng = c.log_range(ble(h))
    assert (rng.used, rng.next, rng.acked) == (0, 41, 40)
    with pytest.raises(BandError) as e:
        c.ack(ble(h), 41)  # not written yet
    assert e.value.code == P.ERR_RANGE
    with pytest.raises(BandError) as e:
        c.call(ble(h), P.OP_LOG_READ, struct.pack("<IH", 1, 16))
    assert e.value.code == P.ERR_RANGE  # a page must hold the largest record


def test_client_download_stores_raw_pages_and_resumes_after_disconnect(tmp_path):
    h, dev, log, ident = make_band(tmp_path, records=60)
    c = BandClient(KEY)
    raw_pages: list[bytes] = []
    calls = [0]

    def flaky(b: bytes) -> bytes:
        calls[0] += 1
        if calls[0] == 9:
            raise ConnectionError("link lost")
        return h.handle(b, P.BLE)

    with pytest.raises(ConnectionError):
        c.download(flaky, raw_pages.append, max_len=256)
    first = len(raw_pages)
    got = c.download(ble(h), raw_pages.append, max_len=256)
    acked_before = 60 - len(got)
    assert [r[0] for r in got] == list(range(acked_before + 1, 61)) and acked_before > 0
    # every raw page was kept as received and opens again later
    held = [r for p in raw_pages for r in parse_records(c.open_page(p).body)]
    assert sorted({r[0] for r in held}) == list(range(1, 61)) and first >= 2
    assert c.log_range(ble(h)).pending == 0 and c.download(ble(h), raw_pages.append) == []


def test_wrong_key_rejected(tmp_path):
    h, dev, log, ident = make_band(tmp_path)
    before = state(h, dev, log, ident)
    with pytest.raises(BandError) as e:
        BandClient(bytes(32)).call(ble(h), P.OP_TASK_START, bytes(P.TaskStart(1)))
    assert e.value.code == P.ERR_BAD_TAG
    assert state(h, dev, log, ident) == before


def test_replayed_counter_rejected(tmp_path):
    h, dev, log, ident = make_band(tmp_path)
    c = BandClient(KEY)
    p = c.request(P.OP_TIME_SET, bytes(P.TimeSet(P.TIME_ABS, 42)))
    c.response(p, h.handle(p.frame, P.BLE))
    dev.clock = 7
    with pytest.raises(BandError) as e:
        c.response(p, h.handle(p.frame, P.BLE))  # the same frame again
    assert e.value.code == P.ERR_REPLAY and dev.clock == 7
    # an older counter with a fresh, valid tag is a replay too
    old = seal(P.Frame(P.OP_TIME_SET, bytes(P.TimeSet(P.TIME_ABS, 9)), 1, p.counter - 0), ident.keys)
    rsp = P.Frame.from_bytes(h.handle(old, P.BLE))
    assert rsp.status == P.ERR_REPLAY and dev.clock == 7


def test_flipped_tag_bit_rejected(tmp_path):
    h, dev, log, ident = make_band(tmp_path)
    c = BandClient(KEY)
    before = state(h, dev, log, ident)
    for bit in (0, 7, 100, 255):
        p = c.request(P.OP_TASK_START, bytes(P.TaskStart(3)))
        bad = bytearray(p.frame)
        bad[len(bad) - P.TAG + bit // 8] ^= 1 << (bit % 8)
        rsp = P.Frame.from_bytes(h.handle(bytes(bad), P.BLE))
        assert rsp.status == P.ERR_BAD_TAG
    assert state(h, dev, log, ident) == before
    # the band has not consumed the counters of the rejected frames
    p = c.request(P.OP_TASK_START, bytes(P.TaskStart(3)))
    c.response(p, h.handle(p.frame, P.BLE))
    assert dev.running == 3


def test_unprovisioned_band_answers_only_info_status_provision(tmp_path):
    h, dev, log, ident = make_band(tmp_path, provisioned=False, records=0)
    anon = BandClient(None)
    assert anon.info(ble(h)).provisioned == 0
    assert anon.status(ble(h)).battery == 87
    for op in range(1, P.OP_LAST + 1):
        if op in (P.OP_INFO, P.OP_STATUS, P.OP_PROVISION):
            continue
        with pytest.raises(BandError) as e:
            anon.call(usb(h), op, b"")
        assert e.value.code == P.ERR_NOT_PROVISIONED, op
        with pytest.raises(BandError) as e:  # a key the band does not have
            BandClient(KEY).call(usb(h), op, b"")
        assert e.value.code == P.ERR_NOT_PROVISIONED, op
    assert dev.snapshot() == FakeDevice().snapshot()


def test_command_from_unauthenticated_transport_rejected(tmp_path):
    h, dev, log, ident = make_band(tmp_path)
    anon = BandClient(None)
    before = state(h, dev, log, ident)
    # a provisioned band: over BLE nothing without a tag, not even INFO
    for op in (P.OP_INFO, P.OP_STATUS, P.OP_TASK_START, P.OP_LOG_READ, P.OP_CONFIG_SET):
        with pytest.raises(BandError) as e:
            anon.call(ble(h), op, b"")
        assert e.value.code == P.ERR_AUTH_REQUIRED
    # provisioning is USB only, with or without a key
    prov = bytes(P.Provision(bytes(32), 0, "X"))
    for client in (anon, BandClient(KEY)):
        with pytest.raises(BandError) as e:
            client.call(ble(h), P.OP_PROVISION, prov)
        assert e.value.code in (P.ERR_TRANSPORT, P.ERR_AUTH_REQUIRED)
    assert state(h, dev, log, ident) == before
    h2, *_ = make_band(tmp_path / "b2", provisioned=False)
    with pytest.raises(BandError) as e:
        anon.call(ble(h2), P.OP_PROVISION, prov)
    assert e.value.code == P.ERR_TRANSPORT
    assert anon.info(usb(h)).provisioned == 1  # USB: INFO and STATUS stay readable


def test_reprovision_needs_confirmation_then_wipes(tmp_path):
    h, dev, log, ident = make_band(tmp_path, records=12)
    anon = BandClient(None)
    new = P.Provision(bytes([9]) * 32, 0, "P02")
    before = state(h, dev, log, ident)
    with pytest.raises(BandError) as e:
        anon.call(usb(h), P.OP_PROVISION, bytes(new))
    assert e.value.code == P.ERR_CONFIRM and state(h, dev, log, ident) == before
    rsp = P.Frame.from_bytes(h.handle(seal(P.Frame(P.OP_PROVISION, bytes(new), 5), None), P.USB))
    token, pending = struct.unpack("<II", rsp.payload)
    assert pending == 12
    new.token = token ^ 1
    assert P.Frame.from_bytes(h.handle(seal(P.Frame(P.OP_PROVISION, bytes(new), 6), None), P.USB)).status \
        == P.ERR_CONFIRM
    assert state(h, dev, log, ident) == before
    new.token = token
    info = P.Info.from_bytes(anon.call(usb(h), P.OP_PROVISION, bytes(new)))
    st, recs = log_snapshot(log)
    assert (info.patient, info.hand) == ("P02", 0) and recs == [] and st[0] == 0 and st[4] == 13
    with pytest.raises(BandError):
        BandClient(KEY).info(ble(h))  # the old key is dead
    assert BandClient(bytes([9]) * 32).info(ble(h)).patient == "P02"


def test_counter_floor_survives_reboot_and_client_resyncs(tmp_path):
    store = MemStore()
    ident = Identity(store)
    ident.provision(KEY, 1, "P01")
    dev, log = FakeDevice(), real_log(tmp_path, 3)
    h = Handler(dev, log, ident, ctr=aes_ctr)
    c = BandClient(KEY)
    p = c.request(P.OP_TIME_GET)
    c.response(p, h.handle(p.frame, P.BLE))
    frames = [c.request(P.OP_TIME_GET) for _ in range(3)]
    h.handle(frames[0].frame, P.BLE)
    # reboot: a new Identity from flash; the unsent frames 1, 2 must not work
    h2 = Handler(dev, log, Identity(store), ctr=aes_ctr)
    for f in frames[1:]:
        assert P.Frame.from_bytes(h2.handle(f.frame, P.BLE)).status == P.ERR_REPLAY
    # the client learns the floor and carries on
    assert P.TimeNow.from_bytes(c.call(ble(h2), P.OP_TIME_GET)).now_us == dev.clock
    # page nonces never repeat across reboots
    n1 = [P.PageHeader.from_bytes(c.read_page(ble(h2), 1, 256)[0][:P.PAGE_HEADER]).nonce for _ in range(3)]
    h3 = Handler(dev, log, Identity(store), ctr=aes_ctr)
    n2 = [P.PageHeader.from_bytes(c.read_page(ble(h3), 1, 256)[0][:P.PAGE_HEADER]).nonce for _ in range(3)]
    assert len(set(n1 + n2)) == 6 and min(n2) > max(n1)


_SIZES = {P.OP_TIME_SET: 9, P.OP_TASK_START: 4, P.OP_CALIBRATE: 4, P.OP_LOG_READ: 6, P.OP_LOG_ACK: 4}


def _payload(rng: random.Random, op: int) -> bytes:
    # a payload of the right shape for op, with random values (mostly out of range)
    if op in (P.OP_TASK_SET, P.OP_CONFIG_SET):
        k = rng.randrange(0, 40)
        return bytes([k]) + bytes(rng.randrange(256) for _ in range(5 * k))
    if op == P.OP_PROVISION:
        name = bytes(rng.choice(b"AZaz09._- \xff") for _ in range(rng.randrange(0, 20)))
        return bytes(32) + bytes([rng.randrange(3)]) + bytes(4) + bytes([len(name)]) + name
    return bytes(rng.randrange(256) for _ in range(_SIZES.get(op, rng.randrange(0, 3))))


def _mutate(rng: random.Random, frame: bytes, ident) -> tuple[bytes, bool]:
    """A mutant of frame; True when it was sealed again (a valid tag), False for raw damage."""
    b = bytearray(frame)
    kind = rng.randrange(9)
    if kind == 0:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b = b[:rng.randrange(len(b))]
    elif kind == 2:
        b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    elif kind == 3:
        i = rng.randrange(len(b))
        b[i] = (b[i] + rng.randrange(1, 256)) & 0xFF
    elif kind == 4:
        b = bytearray(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
    elif kind == 5:
        # a header byte rewritten, the frame re-sealed without a key (structure valid)
        b[rng.randrange(P.HEADER)] = rng.randrange(256)
        try:
            return seal(P.Frame.from_bytes(bytes(b)), None), True
        except P.ProtocolError:
            pass
    elif kind in (6, 7):
        # sealed by someone holding the key (or nobody): any opcode, shaped random payload
        op = rng.randrange(256) if kind == 6 else rng.randrange(1, P.OP_LAST + 1)
        # mostly a fresh counter, sometimes an old one (a replay)
        ctr = ident.last_rx + 1 if rng.random() < 0.9 else rng.randrange(ident.last_rx + 1)
        f = P.Frame(op, _payload(rng, op), rng.randrange(65536), ctr)
        return seal(f, ident.keys if rng.random() < 0.8 else None), True
    else:
        i = rng.randrange(len(b) + 1)
        b[i:i] = bytes((rng.randrange(256),))
    return bytes(b), False


def test_fuzzed_frames_never_raise_and_always_get_an_error_code(tmp_path):
    rng = random.Random(20261124)
    h, dev, log, ident = make_band(tmp_path, records=20)
    c = BandClient(KEY)
    seeds = [c.request(op, pl).frame for op, pl in (
        (P.OP_INFO, b""), (P.OP_STATUS, b""), (P.OP_TIME_SET, bytes(P.TimeSet(0, 123))),
        (P.OP_TASK_SET, bytes(P.TaskSet([(0, 1), (5000, 3)]))), (P.OP_CALIBRATE, bytes(P.Calibrate(5000))),
        (P.OP_CONFIG_SET, bytes(P.ConfigValues([(1, 60)]))), (P.OP_LOG_READ, bytes(P.LogRead(1, 300))),
        (P.OP_LOG_ACK, bytes(P.LogAck(3))), (P.OP_PROVISION, bytes(P.Provision(KEY, 1, "P01"))))]
    seeds.append(seal(P.Frame(P.OP_INFO, b"", 1, 0), None))
    n, t0, codes, damaged_ok = 100_000, time.perf_counter(), {}, 0
    for i in range(n):
        data, resealed = _mutate(rng, seeds[i % len(seeds)], ident)
        out = h.handle(data, P.BLE if i & 1 else P.USB)
        rsp = P.Frame.from_bytes(out)  # always a well-formed response
        assert rsp.flags & P.FLAG_RESP
        codes[rsp.status] = codes.get(rsp.status, 0) + 1
        damaged_ok += not resealed and rsp.status == P.OK
    dt = time.perf_counter() - t0
    print(f"\n{n} mutated frames in {dt:.2f} s ({n / dt:,.0f}/s); status codes {sorted(codes.items())}")
    assert damaged_ok == 0  # every damaged frame was answered with an error
    assert P.ERR_INTERNAL not in codes
    for code in (P.ERR_BAD_FRAME, P.ERR_BAD_VERSION, P.ERR_BAD_LENGTH, P.ERR_BAD_TAG, P.ERR_REPLAY,
                 P.ERR_UNKNOWN_OP, P.ERR_RANGE, P.ERR_AUTH_REQUIRED, P.ERR_TRANSPORT, P.ERR_CONFIRM):
        assert codes.get(code, 0) > 0, code
    # no mutant changed the identity (a re-provisioning needs its confirmation token)
    assert ident.key == KEY and ident.patient == "P01"
