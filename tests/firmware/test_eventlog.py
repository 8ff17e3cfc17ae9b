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
