# The band's append-only event log (record layout, segments, recovery, guarantees:
# docs/storage.md). API, used by the boot code, the pipeline and the command handler:
#   log = EventLog(fs, root="/log", seg_size=16384, nseg=64)   # fs: mbfw.fsio.OsFS()
#   log.recover()    # once at boot, before anything else: scans the segments, truncates a
#                    # torn tail, restores next_seq and acked_seq (LogError if unusable)
#   seq = log.append(rtype, payload)  # T_EVENT (24-byte mbfw.events record), T_SESSION
#       # (session_payload()), T_SNIPPET (snippet_payload()); durable when it returns. LogFull:
#       # no room without dropping undownloaded events/sessions (snippets also get it when only
#       # the reserve kept for events is left); LogError: bad record, storage error.
#   n = log.read_into(seq_from, buf)  # whole raw records with seq >= seq_from, in seq order,
#       # into buf (len >= MAX_REC); bytes used, 0 = nothing newer. Host: parse_records().
#       # Seqs increase with gaps (evicted snippets, a seq burnt by a failed write).
#   log.ack(seq)     # host holds every record <= seq; persisted; lower: no-op; > last: LogError
#   freed = log.erase_acked()   # deletes the segments whose records are all acknowledged
#   log.status() -> (used_bytes, free_bytes, undownloaded_records, first_seq, next_seq, acked_seq)
#   log.dropped      # snippet records evicted to make room for events, since boot
# T_* types, payload helpers, LogError/LogFull, parse_records: mbfw.logrec (pure, host too).
import binascii
import struct
from array import array

from mbfw.fsio import copy_prefix
from mbfw.logrec import (
    HDR,
    MAGIC,
    MAX_REC,
    OVH,
    SEQ_LIMIT,
    STATE_SIZE,
    T_SNIPPET,
    LogError,
    LogFull,
    check_record,
    len_ok,
    pack_state,
    scan_segment,
    unpack_state,
)

_HFMT = "<HHIBB"


class EventLog:
    def __init__(self, fs, root="/log", seg_size=16384, nseg=64):
        if seg_size < 2 * MAX_REC or nseg < 3 or seg_size * nseg > SEQ_LIMIT:
            raise LogError("bad log geometry")
        self.fs = fs
        self.root = root
        self.seg_size = seg_size
        self.nseg = nseg
        # segment table, ordered by first sequence number (= file name)
        self._first = array("i", bytes(4 * nseg))
        self._head = array("i", bytes(4 * nseg))   # seq of the first record (0 = empty)
        self._last = array("i", bytes(4 * nseg))   # seq of the last record (0 = empty)
        self._size = array("i", bytes(4 * nseg))   # valid bytes
        self._count = array("i", bytes(4 * nseg))
        self._cls = bytearray(nseg)                 # 0 events+sessions, 1 snippets
        self._n = 0
        self._act = array("i", [-1, -1])            # active segment (table index) per class
        self._af = [None, None]                     # its append handle
        self._hdr = bytearray(HDR)
        self._crc = bytearray(4)
        self._st = bytearray(STATE_SIZE)
        self._rh = bytearray(HDR)
        self._rf = [None, None]                     # read handles per class (read_into)
        self._rj = array("i", [-1, -1])
        self._cf = array("i", [0, 0])               # read cursor: segment first seq,
        self._co = array("i", [0, 0])               # offset, seq of the record before it
        self._cp = array("i", [0, 0])
        self._rl = self._rh_seq = 0
        self.next_seq = 1
        self.acked = self._floor = self._gen = self.dropped = 0
        self._ready = False

    # ---- boot ----
    def _path(self, i):
        return "%s/%s%08x" % (self.root, "es"[self._cls[i]], self._first[i])

    def recover(self):
        self._close_all()
        self._ready = False
        fs = self.fs
        root = self.root
        if not fs.exists(root):
            fs.mkdir(root)
        self._load_state()
        names = fs.listdir(root)
        if "tmp" in names:
            fs.remove(root + "/tmp")   # an interrupted truncation; the original is intact
        self._n = 0
        self._act[0] = self._act[1] = -1
        self._cf[0] = self._cf[1] = 0
        for name in names:
            if len(name) == 9 and name[0] in "es":
                try:
                    first = int(name[1:], 16)
                except ValueError:
                    continue
                self._insert(first, 0 if name[0] == "e" else 1)
        top = 0
        i = 0
        buf = bytearray(2 * MAX_REC)
        while i < self._n:
            path = self._path(i)
            f = fs.open(path, "rb")
            try:
                valid, self._head[i], self._last[i], self._count[i] = \
                    scan_segment(f, buf, self._first[i], self._cls[i])
            finally:
                f.close()
            self._size[i] = valid
            if valid == 0:
                fs.remove(path)   # torn before its first record was complete
                self._delete(i)
                continue
            if valid < fs.size(path):
                # MicroPython has no truncate: copy the valid prefix, rename (atomic on littlefs)
                copy_prefix(fs, path, root + "/tmp", valid, buf)
                fs.rename(root + "/tmp", path)
            if self._last[i] > top:
                top = self._last[i]
            i += 1
        for i in range(self._n):
            self._act[self._cls[i]] = i    # newest of each class
        self.next_seq = max(top + 1, self.acked + 1, self._floor, 1)
        self._ready = True

    def _load_state(self):
        self.acked = self._floor = self._gen = 0
        for k in range(2):
            p = "%s/state%d" % (self.root, k)
            if self.fs.exists(p):
                f = self.fs.open(p, "rb")
                try:
                    st = unpack_state(self._st) if f.readinto(self._st) == STATE_SIZE else None
                finally:
                    f.close()
                if st and st[0] > self._gen:
                    self._gen, self.acked, self._floor = st

    def _save(self, acked, floor):
        # two state files written alternately: a torn write leaves the other one valid
        gen = self._gen + 1
        pack_state(self._st, gen, acked, floor)
        try:
            f = self.fs.open("%s/state%d" % (self.root, gen & 1), "wb")
            try:
                f.write(self._st)
                f.flush()
            finally:
                f.close()
        except OSError as e:
            raise LogError("storage write failed (%s)" % e) from None
        self._gen, self.acked, self._floor = gen, acked, floor

    # ---- segment table ----
    def _insert(self, first, cls):
        if self._n >= self.nseg:
            raise LogError("more segments than nseg in " + self.root)
        i = self._n
        while i > 0 and self._first[i - 1] > first:
            i -= 1
        for t in (self._first, self._head, self._last, self._size, self._count, self._cls):
            for k in range(self._n, i, -1):
                t[k] = t[k - 1]
        self._first[i], self._cls[i] = first, cls
        self._head[i] = self._last[i] = self._size[i] = self._count[i] = 0
        self._n += 1
        return i

    def _delete(self, i):
        self._n -= 1
        for t in (self._first, self._head, self._last, self._size, self._count, self._cls):
            for k in range(i, self._n):
                t[k] = t[k + 1]
        for c in range(2):
            a = self._act[c]
            if a == i:
                self._act[c] = -1
            elif a > i:
                self._act[c] = a - 1

    def _close_all(self):
        for c in range(2):
            self._close(c)
            self._close_read(c)

    def _close(self, c, hs=None):
        hs = hs or self._af
        f, hs[c] = hs[c], None
        if f is not None:
            f.close()

    def _close_read(self, c):
        self._rj[c] = -1
        self._close(c, self._rf)

    def _need(self):
        if not self._ready:
            raise LogError("recover() first")

    def _drop(self, i):
        # remove segment i (caller persisted the floor first)
        c = self._cls[i]
        if self._act[c] == i:
            self._close(c)
        if self._last[i] > self.acked:
            self.dropped += self._count_above(i, self.acked)
        self.fs.remove(self._path(i))
        self._delete(i)

    def _room(self, cls):
        # a free table slot for a new segment of cls; snippets keep one slot for events
        need = 1 if cls == 0 else 2
        while self.nseg - self._n < need:
            v = -1
            for i in range(self._n):
                if self._last[i] <= self.acked:
                    v = i  # fully acknowledged (or empty)
                    break
            if v < 0 and cls == 0:
                for i in range(self._n):
                    if self._cls[i]:
                        v = i  # oldest snippets make way for events
                        break
            if v < 0:
                raise LogFull("log full: %d records not downloaded" % self.status()[2])
            if self._floor < self.next_seq:
                self._save(self.acked, self.next_seq)
            self._drop(v)

    # ---- append ----
    def append(self, rtype, payload):
        self._need()
        n = len(payload)
        if not len_ok(rtype, n):
            raise LogError("bad record type or length")
        seq = self.next_seq
        if seq > SEQ_LIMIT:
            raise LogError("sequence numbers exhausted")
        cls = 1 if rtype == T_SNIPPET else 0
        i = self._act[cls]
        if i < 0 or self._size[i] + OVH + n > self.seg_size:
            i = self._rotate(cls, seq)
        f = self._af[cls]
        if f is None:
            try:
                f = self._af[cls] = self.fs.open(self._path(i), "ab")
            except OSError as e:
                raise LogError("cannot open a segment (%s)" % e) from None
        hdr = self._hdr
        struct.pack_into(_HFMT, hdr, 0, MAGIC, n, seq, rtype, 0)
        struct.pack_into("<I", self._crc, 0, binascii.crc32(payload, binascii.crc32(hdr)))
        self.next_seq = seq + 1  # burnt even if the write fails: never reused
        try:
            f.write(hdr)
            f.write(payload)
            f.write(self._crc)
            f.flush()
        except OSError as e:
            # the segment's tail is now unknown: stop appending to it (recover() truncates it)
            self._close(cls)
            self._act[cls] = -1
            raise LogError("storage write failed (%s)" % e) from None
        self._size[i] += OVH + n
        self._last[i] = seq
        if not self._count[i]:
            self._head[i] = seq
        self._count[i] += 1
        return seq

    def _rotate(self, cls, seq):
        self._close(cls)
        self._act[cls] = -1
        self._room(cls)
        i = self._insert(seq, cls)   # newest: goes to the end of the table
        try:
            f = self.fs.open(self._path(i), "wb")
        except OSError as e:
            self._delete(i)
            raise LogError("cannot create a segment (%s)" % e) from None
        self._af[cls] = f
        self._act[cls] = i
        return i

    # ---- download ----
    def _hdr_at(self, c, i, off):
        # seq of the record at offset off of segment i (0 if unreadable); sets _rl
        if self._rj[c] != self._first[i]:
            self._close_read(c)
            self._rf[c] = self.fs.open(self._path(i), "rb")
            self._rj[c] = self._first[i]
        f = self._rf[c]
        f.seek(off)
        h = self._rh
        if f.readinto(h) != HDR:
            return 0
        magic, n, seq, typ, rsv = struct.unpack(_HFMT, h)
        if magic != MAGIC or rsv or not len_ok(typ, n):
            return 0
        self._rl = OVH + n
        self._rh_seq = seq
        return seq

    def _locate(self, c, s):
        # first record of class c with seq >= s -> (seq, segment index, offset); seq 0 = none
        for i in range(self._n):
            if self._cls[i] != c or self._last[i] < s:
                continue
            off = 0
            if self._cf[c] == self._first[i] and self._cp[c] < s:
                off = self._co[c]
            while off < self._size[i]:
                q = self._hdr_at(c, i, off)
                if not q:
                    break  # unreadable (flash corruption): rest of this segment is skipped
                if q >= s:
                    return q, i, off
                off += self._rl
                self._cf[c], self._co[c], self._cp[c] = self._first[i], off, q
        return 0, -1, 0

    def read_into(self, seq_from, buf):
        self._need()
        if len(buf) < MAX_REC:
            raise LogError("buffer smaller than MAX_REC")
        mv = memoryview(buf)
        s = max(seq_from, 1)
        pos = 0
        try:
            while True:
                q, i, off = self._locate(0, s)
                c = 0
                q1, i1, o1 = self._locate(1, s)
                if q1 and (not q or q1 < q):
                    c, q, i, off = 1, q1, i1, o1
                if not q:
                    break
                self._hdr_at(c, i, off)
                rl = self._rl
                f = self._rf[c]
                if f is None or pos + rl > len(mv):
                    break
                f.seek(off)
                if f.readinto(mv[pos:pos + rl]) == rl and check_record(mv, pos, pos + rl, q - 1) == rl:
                    pos += rl  # else: corrupted on flash since it was written; skipped
                s = q + 1
                self._cf[c], self._co[c], self._cp[c] = self._first[i], off + rl, q
        finally:
            self._close_read(0)
            self._close_read(1)
        return pos

    def _count_above(self, i, a):
        # records of segment i with seq > a
        if self._head[i] > a or self._last[i] <= a:
            return self._count[i] if self._head[i] > a else 0
        n = off = 0
        c = self._cls[i]
        try:
            while off < self._size[i] and self._hdr_at(c, i, off):
                n += self._rh_seq > a
                off += self._rl
        finally:
            self._close_read(c)
        return n

    # ---- acknowledgement and space ----
    def ack(self, seq):
        self._need()
        if seq >= self.next_seq:
            raise LogError("ack beyond the last record")
        if seq > self.acked:
            self._save(seq, self._floor)

    def erase_acked(self):
        self._need()
        freed = 0
        i = 0
        while i < self._n:
            if self._last[i] <= self.acked:
                if self._floor < self.next_seq:
                    self._save(self.acked, self.next_seq)
                freed += self._size[i]
                self._drop(i)
            else:
                i += 1
        return freed

    def status(self):
        used = undl = 0
        first = self.next_seq
        for i in range(self._n):
            used += self._size[i]
            undl += self._count_above(i, self.acked)
            if self._count[i] and self._head[i] < first:
                first = self._head[i]
        return used, self.nseg * self.seg_size - used, undl, first, self.next_seq, self.acked
