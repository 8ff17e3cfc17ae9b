"""The band's event log under CPython: round trips, power cuts at random byte
offsets (appends and erases), corrupted pages into the host parser, LogFull and
snippet eviction. The same EventLog runs on MicroPython (tests/micropython)."""

from __future__ import annotations

import random
import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbfw import events
from mbfw.eventlog import EventLog
from mbfw.fsio import OsFS, PowerCut, PowerCutFS
from mbfw.logrec import (
    MAX_REC,
    OVH,
    SESSION_START,
    SESSION_STOP,
    T_EVENT,
    T_SESSION,
    T_SNIPPET,
    LogError,
    LogFull,
    parse_records,
    session_payload,
    snippet_payload,
    unpack_session,
    unpack_snippet,
)

EV_REC = OVH + events.SIZE  # 38 bytes on flash per event


class MemFS:
    """In-memory filesystem with the fsio interface: what is in `files` is on flash."""

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.dirs: set[str] = set()

    def open(self, path: str, mode: str) -> _MemFile:
        if "r" in mode:
            if path not in self.files:
                raise OSError(2, "no such file", path)
            return _MemFile(self.files[path], 0)
        if mode.startswith("w"):
            self.files[path] = bytearray()
        else:
            self.files.setdefault(path, bytearray())
        data = self.files[path]
        return _MemFile(data, len(data), append=mode.startswith("a"))

    def listdir(self, path: str) -> list[str]:
        p = path.rstrip("/") + "/"
        return [k[len(p):] for k in self.files if k.startswith(p) and "/" not in k[len(p):]]

    def remove(self, path: str) -> None:
        if path not in self.files:
            raise OSError(2, "no such file", path)
        del self.files[path]

    def rename(self, old: str, new: str) -> None:
        self.files[new] = self.files.pop(old)

    def mkdir(self, path: str) -> None:
        self.dirs.add(path)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def size(self, path: str) -> int:
        return len(self.files[path])

    def free(self, path: str) -> int:
        return 1 << 24

    def snapshot(self) -> dict[str, bytes]:
        return {k: bytes(v) for k, v in self.files.items()}


class _MemFile:
    def __init__(self, data: bytearray, pos: int, append: bool = False) -> None:
        self.data, self.pos, self.append = data, pos, append

    def write(self, b) -> int:
        b = bytes(b)
        if self.append:
            self.pos = len(self.data)
        self.data[self.pos:self.pos + len(b)] = b
        self.pos += len(b)
        return len(b)

    def readinto(self, b) -> int:
        mv = memoryview(b)
        chunk = self.data[self.pos:self.pos + len(mv)]
        mv[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out = bytes(self.data[self.pos:end])
        self.pos += len(out)
        return out

    def seek(self, off: int, whence: int = 0) -> int:
        self.pos = off if whence == 0 else (self.pos + off if whence == 1 else len(self.data) + off)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def event_payload(k: int) -> bytes:
    ev = array("i", [k & 1, events.KIND_MIRROR + k % 3, 0, 0, 1000 * k, 1000 * k + 400,
                     100 + k % 900, k, k % 100, k % 50, 1 + k % 3])
    if ev[events.EV_KIND] != events.KIND_ARTIFACT:
        ev[events.EV_ART] = events.ART_NONE
    return events.pack(ev)


def snip(k: int, n: int = 100) -> bytes:
    return snippet_payload(k, 1000, 1, struct.pack(f"<{n}h", *[(k + i) % 3000 - 1500 for i in range(n)]))


def download(log: EventLog, seq_from: int = 1, page: int = MAX_REC) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    buf = bytearray(page)
    s = seq_from
    while True:
        n = log.read_into(s, buf)
        if not n:
            return out
        recs = list(parse_records(buf[:n]))
        assert recs and recs[0][0] >= s
        out.extend(recs)
        s = recs[-1][0] + 1


def new_log(fs, **kw) -> EventLog:
    kw.setdefault("seg_size", 1024)
    kw.setdefault("nseg", 8)
    log = EventLog(fs, root="/log", **kw)
    log.recover()
    return log


# ---------------------------------------------------------------- round trips

def test_round_trip_all_types_and_reboot():
    fs = MemFS()
    log = new_log(fs)
    sess = session_payload(7, SESSION_START, 1, 3, 123456, 1_700_000_000)
    written = [(log.append(T_SESSION, sess), T_SESSION, sess)]
    for k in range(40):
        p = event_payload(k)
        written.append((log.append(T_EVENT, p), T_EVENT, p))
        if k % 5 == 0:
            s = snip(k, 20)
            written.append((log.append(T_SNIPPET, s), T_SNIPPET, s))
    stop = session_payload(7, SESSION_STOP, 1, 3, 223456, 1_700_000_100)
    written.append((log.append(T_SESSION, stop), T_SESSION, stop))
    assert [w[0] for w in written] == list(range(1, len(written) + 1))
    assert download(log) == written
    assert download(log, seq_from=20) == [w for w in written if w[0] >= 20]
    assert unpack_session(written[0][2]) == (7, SESSION_START, 1, 3, 123456, 1_700_000_000)
    t0, rate, nch, samples = unpack_snippet(written[2][2])
    assert (t0, rate, nch, len(samples)) == (0, 1000, 1, 40)
    assert events.unpack(written[1][2])[events.EV_ONSET] == 0
    used, free, undl, first, nxt, acked = log.status()
    assert (undl, first, nxt, acked) == (len(written), 1, len(written) + 1, 0)
    assert used + free == 8 * 1024 and used == sum(OVH + len(w[2]) for w in written)

    log2 = new_log(fs)  # reboot
    assert download(log2) == written
    assert log2.status() == log.status()
    assert log2.append(T_EVENT, event_payload(99)) == len(written) + 1


def test_small_pages_and_interleaved_classes():
    fs = MemFS()
    log = new_log(fs, seg_size=600, nseg=20)
    rng = random.Random(3)
    written = []
    for k in range(120):
        if rng.random() < 0.4:
            p = snip(k, rng.randrange(0, 60))
            written.append((log.append(T_SNIPPET, p), T_SNIPPET, p))
        else:
            p = event_payload(k)
            written.append((log.append(T_EVENT, p), T_EVENT, p))
    for page in (MAX_REC, 300, 1000, 5000):
        assert download(log, page=page) == written
    # arbitrary start points (not just sequential paging)
    for s in rng.sample(range(1, 130), 30):
        assert download(log, s)[:1] == [w for w in written if w[0] >= s][:1]


def test_ack_erase_and_status():
    fs = MemFS()
    log = new_log(fs)
    seqs = [log.append(T_EVENT, event_payload(k)) for k in range(100)]  # 3800 bytes: 4 segments
    assert len(fs.listdir("/log")) == 4
    log.ack(50)
    assert log.status()[2] == 50
    log.ack(10)  # lower: no-op
    assert log.status()[5] == 50
    with pytest.raises(LogError):
        log.ack(seqs[-1] + 1)
    freed = log.erase_acked()
    assert freed == 26 * EV_REC  # the first segment (records 1-26) is all acknowledged
    assert download(log)[0][0] == 27
    assert download(log, 51)[0][0] == 51
    log2 = new_log(fs)
    assert log2.status()[2:] == (50, 27, 101, 50)
    log2.ack(100)
    assert log2.erase_acked() == 100 * EV_REC - freed
    assert log2.status() == (0, 8 * 1024, 0, 101, 101, 100)
    log3 = new_log(fs)  # everything erased: seq continues from the persisted floor
    assert log3.append(T_EVENT, event_payload(1)) == 101


def test_bad_records_and_calls():
    fs = MemFS()
    log = EventLog(fs, root="/log", seg_size=1024, nseg=8)
    with pytest.raises(LogError):
        log.append(T_EVENT, event_payload(1))  # recover() first
    log.recover()
    for rtype, p in ((T_EVENT, b"x" * 23), (T_SESSION, b"x" * 15), (9, b"x" * 24),
                     (T_SNIPPET, b"x" * 7), (T_SNIPPET, b"x" * 9), (T_SNIPPET, b"x" * 250)):
        with pytest.raises(LogError):
            log.append(rtype, p)
    with pytest.raises(LogError):
        log.read_into(1, bytearray(MAX_REC - 1))
    with pytest.raises(LogError):
        EventLog(fs, seg_size=100)
    with pytest.raises(LogError):
        session_payload(1, 3, 0, 0, 0, 0)
    with pytest.raises(LogError):
        snippet_payload(0, 1000, 2, b"\0" * 6)
    assert log.status()[4] == 1  # rejected appends burn no sequence number


def test_real_filesystem(tmp_path):
    log = EventLog(OsFS(), root=str(tmp_path / "log"), seg_size=1024, nseg=8)
    log.recover()
    written = [(log.append(T_EVENT, event_payload(k)), T_EVENT, event_payload(k)) for k in range(60)]
    log2 = EventLog(OsFS(), root=str(tmp_path / "log"), seg_size=1024, nseg=8)
    log2.recover()
    assert download(log2) == written
    assert sorted(p.name for p in (tmp_path / "log").iterdir()) == ["e00000001", "e0000001b", "e00000035"]


# ---------------------------------------------------------------- power cuts

class Model:
    """What the band's callers were told before the power went."""

    def __init__(self) -> None:
        self.committed: dict[int, tuple[int, bytes]] = {}  # seq -> (type, payload): append returned
        self.acked = 0           # highest ack() that returned
        self.pending: tuple[int, int, bytes] | None = None  # append in flight at the cut
        self.ack_pending = 0     # ack() in flight at the cut


def workload(log: EventLog, m: Model, rng: random.Random, nops: int, erase_bias: float = 0.03) -> None:
    for _ in range(nops):
        r = rng.random()
        if r < erase_bias:
            log.erase_acked()
        elif r < erase_bias + 0.06 and m.committed:
            target = rng.randrange(m.acked, max(m.committed) + 1)
            m.ack_pending = target
            log.ack(target)
            m.acked = max(m.acked, target)
        else:
            if r < 0.75:
                rtype, p = T_EVENT, event_payload(rng.randrange(10**6))
            elif r < 0.8:
                rtype, p = T_SESSION, session_payload(rng.randrange(1 << 20), SESSION_START, 0, 1, 0, 0)
            else:
                rtype, p = T_SNIPPET, snip(rng.randrange(1000), rng.randrange(0, 100))
            m.pending = (log.next_seq, rtype, p)
            try:
                seq = log.append(rtype, p)
            except LogFull:
                m.pending = None
                continue
            m.committed[seq] = (rtype, p)
            m.pending = None


def verify_after_reboot(fs: MemFS, m: Model, dropped: int, rng: random.Random) -> EventLog:
    log = EventLog(fs, root="/log", seg_size=512, nseg=12)
    if rng.random() < 0.3:  # the power may go again during recovery itself
        cut = PowerCutFS(fs, rng.randrange(0, 200), junk=rng.choice((0, 16)), seed=rng.randrange(1 << 15))
        try:
            EventLog(cut, root="/log", seg_size=512, nseg=12).recover()
        except PowerCut:
            pass
    log.recover()
    recs = download(log)  # parse_records raises on any corrupt record
    seen = {}
    for seq, rtype, p in recs:
        if seq in m.committed:
            assert m.committed[seq] == (rtype, p), f"record {seq} changed"
        else:
            assert m.pending is not None and (seq, rtype, p) == m.pending, f"unknown record {seq}"
        seen[seq] = rtype
    _, _, undl, _, nxt, acked = log.status()
    assert m.acked <= acked <= max(m.acked, m.ack_pending)
    missing_snippets = 0
    for seq, (rtype, _p) in m.committed.items():
        if seq > acked and seq not in seen:
            assert rtype == T_SNIPPET, f"committed {'event' if rtype == T_EVENT else 'session'} {seq} lost"
            missing_snippets += 1
    assert missing_snippets <= dropped
    assert undl == sum(1 for s in seen if s > acked)
    top = max([*m.committed, *seen, 0])
    assert nxt > top
    # sequence numbers continue: never reused after the reboot
    s1 = log.append(T_EVENT, event_payload(1))
    assert s1 > top
    assert download(log, s1) == [(s1, T_EVENT, event_payload(1))]
    again = EventLog(fs, root="/log", seg_size=512, nseg=12)  # and the next boot keeps all of it
    again.recover()
    assert download(again) == download(log)
    return log


def run_cut_trial(seed: int, budget: int | None, junk: int, prefill: int, nops: int,
                  erase_bias: float) -> tuple[bool, int]:
    """(power was cut, bytes written); checks the log after the reboot."""
    rng = random.Random(seed)
    fs = MemFS()
    m = Model()
    log = EventLog(fs, root="/log", seg_size=512, nseg=12)
    log.recover()
    workload(log, m, rng, prefill, erase_bias=0.0)
    cutfs = PowerCutFS(fs, -1 if budget is None else budget, junk=junk, seed=seed)
    log = EventLog(cutfs, root="/log", seg_size=512, nseg=12)
    log.recover()
    cutfs.written = 0
    try:
        workload(log, m, rng, nops, erase_bias=erase_bias)
    except PowerCut:
        pass
    else:
        return False, cutfs.written  # the budget outlasted the work
    verify_after_reboot(fs, m, log.dropped, rng)
    return True, cutfs.written


@pytest.mark.parametrize("phase", ["appends", "erases"])
def test_power_cut_at_random_byte_offsets(phase):
    # appends: a mixed workload (events, sessions, snippets, some acks and erases);
    # erases: a pre-filled log, then mostly acks and erase_acked (and appends that
    # reclaim acknowledged segments), so the cuts land in the erase paths.
    prefill, nops, bias = (5, 120, 0.03) if phase == "appends" else (110, 40, 0.35)
    rng = random.Random(1234 if phase == "appends" else 5678)
    cuts = 0
    offsets = set()
    while cuts < 1000:
        seed = rng.randrange(1 << 30)
        _, total = run_cut_trial(seed, None, 0, prefill, nops, bias)  # what this workload writes
        budget = rng.randrange(total)
        # same seed -> same workload; the budget decides where the power goes
        cut, _ = run_cut_trial(seed, budget, (0, 16)[cuts % 2], prefill, nops, bias)
        assert cut
        cuts += 1
        offsets.add((total, budget))
    assert len(offsets) >= 990


# ---------------------------------------------------------------- full log, snippets first

def fill_events(log: EventLog, upto_segments: int) -> list[int]:
    out = []
    while len([n for n in log.fs.listdir("/log") if n[0] == "e"]) < upto_segments or \
            log._size[log._act[0]] + EV_REC <= log.seg_size:
        out.append(log.append(T_EVENT, event_payload(len(out))))
    return out


def test_log_full_keeps_every_undownloaded_event():
    fs = MemFS()
    log = new_log(fs, seg_size=512, nseg=4)
    seqs = []
    with pytest.raises(LogFull):
        while True:
            seqs.append(log.append(T_EVENT, event_payload(len(seqs))))
    assert len(seqs) == 4 * (512 // EV_REC)
    nxt = log.status()[4]
    with pytest.raises(LogFull):
        log.append(T_SNIPPET, snip(1))
    with pytest.raises(LogFull):
        log.append(T_SESSION, session_payload(1, SESSION_STOP, 0, 0, 0, 0))
    assert log.status()[4] == nxt  # refused appends burn nothing
    assert [r[0] for r in download(log)] == seqs
    log.ack(seqs[20])  # acknowledged segments are reclaimed without erase_acked()
    s = log.append(T_EVENT, event_payload(0))
    assert s == nxt and download(log)[0][0] == 14  # only the first segment (1-13) went
    assert [r[0] for r in download(log)] == seqs[13:] + [s]


def test_snippets_are_evicted_before_events_and_keep_a_reserve():
    fs = MemFS()
    log = new_log(fs, seg_size=512, nseg=6)
    e = [log.append(T_EVENT, event_payload(0))]
    sn = []
    with pytest.raises(LogFull):  # snippets never take the last free segment
        while True:
            sn.append(log.append(T_SNIPPET, snip(len(sn), 60)))
    assert len(fs.listdir("/log")) == 5
    while len(e) < 60:  # events keep coming: oldest snippet segments make way
        e.append(log.append(T_EVENT, event_payload(len(e))))
    got = download(log)
    assert [r[0] for r in got if r[1] == T_EVENT] == e  # no event lost
    kept = [r[0] for r in got if r[1] == T_SNIPPET]
    assert kept == sn[len(sn) - len(kept):] and len(kept) < len(sn)  # the oldest went first
    assert log.dropped == len(sn) - len(kept)
    assert log.status()[2] == len(got)


def eviction_scenario(fs) -> tuple[EventLog, list[int]]:
    # newest records are snippets in the segment that an event append evicts
    log = EventLog(fs, root="/log", seg_size=512, nseg=3)
    log.recover()
    log.append(T_EVENT, event_payload(0))
    sn = [log.append(T_SNIPPET, snip(0, 40))]
    while log._size[log._act[0]] + EV_REC <= 512 or log._n < 3:
        log.append(T_EVENT, event_payload(1))
    while log._size[log._act[1]] + OVH + 88 <= 512:
        sn.append(log.append(T_SNIPPET, snip(1, 40)))
    return log, sn


def test_power_cut_around_an_eviction_never_reuses_sequence_numbers():
    dry = MemFS()
    log, sn = eviction_scenario(dry)
    probe = PowerCutFS(dry, -1)
    log.fs = probe
    log.append(T_EVENT, event_payload(2))  # evicts the newest snippets
    assert log.dropped == len(sn)
    span = probe.written
    assert span > 20
    for budget in range(span):
        for junk in (0, 16):
            fs = MemFS()
            log, sn = eviction_scenario(fs)
            log.fs = PowerCutFS(fs, budget, junk=junk)
            with pytest.raises(PowerCut):
                log.append(T_EVENT, event_payload(2))
            log = EventLog(fs, root="/log", seg_size=512, nseg=3)
            log.recover()
            assert log.status()[4] > sn[-1], budget  # evicted seqs are not handed out again
            assert log.append(T_EVENT, event_payload(3)) > sn[-1]


# ---------------------------------------------------------------- corrupted pages (host parser)

def sample_pages(n: int = 40) -> list[tuple[bytes, list[tuple[int, int, bytes]]]]:
    fs = MemFS()
    log = new_log(fs, seg_size=1024, nseg=16)
    rng = random.Random(77)
    for k in range(200):
        if rng.random() < 0.25:
            log.append(T_SNIPPET, snip(k, rng.randrange(0, 110)))
        elif rng.random() < 0.05:
            log.append(T_SESSION, session_payload(k, SESSION_START, k & 1, k, -k, k * 1000))
        else:
            log.append(T_EVENT, event_payload(k))
    pages = []
    buf = bytearray(1024)
    for _ in range(n):
        s = rng.randrange(1, 200)
        used = log.read_into(s, buf)
        page = bytes(buf[:used])
        pages.append((page, list(parse_records(page))))
    return pages


def test_ten_thousand_corrupted_pages_only_raise_logerror():
    pages = sample_pages()
    rng = random.Random(2024)
    rejected = accepted = 0
    originals = {r[0]: r for p in pages for r in p[1]}
    for i in range(12000):
        page, good = pages[i % len(pages)]
        b = bytearray(page)
        kind = i % 6
        if kind == 0:  # flip bits
            for _ in range(rng.randrange(1, 4)):
                j = rng.randrange(len(b))
                b[j] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncate anywhere
            b = b[:rng.randrange(len(b))]
        elif kind == 2:  # random bytes over a run
            j = rng.randrange(len(b))
            b[j:j + rng.randrange(1, 40)] = rng.randbytes(rng.randrange(1, 40))
        elif kind == 3:  # splice two pages
            other = pages[rng.randrange(len(pages))][0]
            b = b[:rng.randrange(len(b))] + other[rng.randrange(len(other)):]
        elif kind == 4:  # header fields set to extremes
            j = rng.randrange(0, max(1, len(b) - 10))
            b[j:j + 4] = rng.choice((b"\xff\xff\xff\xff", b"\0\0\0\0", b"\x4d\xb1\xff\xff"))
        else:  # pure noise
            b = bytearray(rng.randbytes(rng.randrange(0, 600)))
        out = []
        try:
            for rec in parse_records(b):
                out.append(rec)
        except LogError:
            rejected += 1
        else:
            accepted += 1
        # whatever came out before the error is a record the band wrote, unchanged
        for rec in out:
            assert originals.get(rec[0]) == rec
    assert rejected + accepted == 12000 and rejected > 10000


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_parse_records_on_arbitrary_bytes(data):
    try:
        list(parse_records(data))
    except LogError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([T_EVENT, T_SESSION, T_SNIPPET]), st.integers(0, 117)),
                min_size=1, max_size=80),
       st.integers(1, 90))
def test_any_sequence_of_appends_reads_back(ops, seq_from):
    fs = MemFS()
    log = new_log(fs, seg_size=512, nseg=40)
    written = []
    for rtype, k in ops:
        if rtype == T_EVENT:
            p = event_payload(k)
        elif rtype == T_SESSION:
            p = session_payload(k, SESSION_START, 0, 0, 0, 0)
        else:
            p = snip(k, k)
        written.append((log.append(rtype, p), rtype, p))
    expect = [w for w in written if w[0] >= seq_from]
    assert download(log, seq_from) == expect
    assert download(new_log(fs, seg_size=512, nseg=40), seq_from) == expect
