# Runs inside MicroPython (unix port, -X heapsize=64K); the firmware (mpy-cross
# compiled) must be on sys.path. The caller sets the log directory and calls
# run(root, nrec) for the check or fill(root, ...) / recover_only(root, ...) for the bench.
# Prints lines of "KEY value" pairs and a final "OK" (or raises).
import gc
import time

import micropython

from mbfw import events
from mbfw.eventlog import EventLog
from mbfw.fsio import OsFS
from mbfw.logrec import MAX_REC, T_EVENT, T_SNIPPET, parse_records, snippet_payload


def _event(k):
    ev = [k & 1, events.KIND_MIRROR, 0, 0, k, k + 400, 100, k, 10, 5, 1]
    return events.pack(ev)


def _count(log):
    # download everything through read_into + parse_records; -> (records, last seq)
    buf = bytearray(1024)
    s = 1
    n = 0
    while True:
        used = log.read_into(s, buf)
        if not used:
            return n, s - 1
        for seq, _t, _p in parse_records(memoryview(buf)[:used]):
            n += 1
            s = seq + 1


def run(root, nrec):
    gc.collect()
    base = gc.mem_alloc()
    log = EventLog(OsFS(), root=root, seg_size=4096, nseg=16)
    log.recover()
    gc.collect()
    print("STATE", gc.mem_alloc() - base)
    ev = _event(7)
    sn = snippet_payload(0, 1000, 1, bytes(200))
    log.append(T_EVENT, ev)     # opens the active segment
    log.append(T_SNIPPET, sn)
    # allocation per append, steady state (no segment rotation inside the window)
    k = 40
    gc.collect()
    a = gc.mem_alloc()
    for _ in range(k):
        log.append(T_EVENT, ev)
    b = gc.mem_alloc()
    print("ALLOC_PER_APPEND", (b - a) // k)
    # the same under heap_lock: any allocation raises MemoryError
    locked = 0
    micropython.heap_lock()
    try:
        for _ in range(20):
            log.append(T_EVENT, ev)
            locked += 1
    except MemoryError:
        pass
    finally:
        micropython.heap_unlock()
    print("LOCKED_APPENDS", locked)
    # many appends with rotation: the heap must not grow
    gc.collect()
    a = gc.mem_alloc()
    t = time.ticks_ms()
    for i in range(nrec):
        log.append(T_SNIPPET if i % 10 == 9 else T_EVENT, sn if i % 10 == 9 else ev)
    dt = time.ticks_diff(time.ticks_ms(), t)
    gc.collect()
    print("APPENDS", nrec, "MS", dt, "HEAP_GROWTH", gc.mem_alloc() - a)
    st = log.status()
    print("USED", st[0], "RECORDS", st[2], "NEXT", st[4])
    # reboot: recover and read everything back
    gc.collect()
    log2 = EventLog(OsFS(), root=root, seg_size=4096, nseg=16)
    t = time.ticks_ms()
    log2.recover()
    print("RECOVER_MS", time.ticks_diff(time.ticks_ms(), t))
    assert log2.status() == st, (log2.status(), st)
    n, last = _count(log2)
    print("READ", n, "LAST", last)
    # torn tail: half a record of garbage at the end of the active event segment
    seg = root + "/" + sorted(x for x in OsFS().listdir(root) if x[0] == "e")[-1]
    size = OsFS().size(seg)
    f = open(seg, "ab")
    f.write(b"\x4d\xb1\x18\x00garbage")
    f.close()
    log3 = EventLog(OsFS(), root=root, seg_size=4096, nseg=16)
    log3.recover()
    assert OsFS().size(seg) == size, "torn tail not truncated"
    assert log3.status() == st
    s = log3.append(T_EVENT, ev)
    assert s == st[4], (s, st[4])
    gc.collect()
    print("HEAP_IN_USE", gc.mem_alloc(), "FREE", gc.mem_free())
    print("OK")


def fill(root, seg_size, nseg):
    # fill the log until LogFull (events, one snippet in ten)
    from mbfw.logrec import LogFull
    log = EventLog(OsFS(), root=root, seg_size=seg_size, nseg=nseg)
    log.recover()
    ev = _event(3)
    sn = snippet_payload(0, 1000, 1, bytes(200))
    n = 0
    t = time.ticks_ms()
    try:
        while True:
            log.append(T_SNIPPET if n % 10 == 9 else T_EVENT, sn if n % 10 == 9 else ev)
            n += 1
    except LogFull:
        pass
    print("FILLED", n, "MS", time.ticks_diff(time.ticks_ms(), t))
    print("OK")


def recover_only(root, seg_size, nseg):
    gc.collect()
    log = EventLog(OsFS(), root=root, seg_size=seg_size, nseg=nseg)
    t = time.ticks_ms()
    log.recover()
    dt = time.ticks_diff(time.ticks_ms(), t)
    st = log.status()
    print("RECOVER_MS", dt, "USED", st[0], "RECORDS", st[2], "NEXT", st[4])
    t = time.ticks_ms()
    n, _ = _count(log)
    print("READ", n, "MS", time.ticks_diff(time.ticks_ms(), t))
    gc.collect()
    print("HEAP_IN_USE", gc.mem_alloc())
    print("OK")


if MAX_REC > 1024:
    raise SystemExit("read buffer too small")
