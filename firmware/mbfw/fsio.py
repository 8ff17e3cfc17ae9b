# Tiny filesystem interface used by the event log (an I/O module: the board
# factory or the test builds the FS object and injects it; nothing here is a
# module-level singleton).
#
#   fs.open(path, mode)      -> file: write(b), readinto(b), read(n), seek(off), tell(), flush(), close()
#                               modes used: "rb", "wb", "ab"
#   fs.listdir(path)         -> list of names
#   fs.remove(path), fs.rename(old, new), fs.mkdir(path)
#   fs.exists(path)          -> bool
#   fs.size(path)            -> bytes in the file
#   fs.free(path)            -> bytes free on the filesystem holding path
#
# OsFS works on MicroPython (littlefs on the band, VfsPosix on the unix port)
# and on CPython. PowerCutFS wraps any FS and simulates a power cut after a
# budget of written bytes (see the model below); the tests and the virtual
# band's flash directory use it.
import os

from micropython import const


class OsFS:
    # the real filesystem through `os`
    def open(self, path, mode):
        return open(path, mode)

    def listdir(self, path):
        return os.listdir(path)

    def remove(self, path):
        os.remove(path)

    def rename(self, old, new):
        os.rename(old, new)

    def mkdir(self, path):
        os.mkdir(path)

    def exists(self, path):
        try:
            os.stat(path)
            return True
        except OSError:
            return False

    def size(self, path):
        return os.stat(path)[6]

    def free(self, path):
        st = os.statvfs(path)
        return st[0] * st[4]


def copy_prefix(fs, src, dst, n, buf):
    # write the first n bytes of file src to a new file dst, through buf
    fi = fs.open(src, "rb")
    fo = fs.open(dst, "wb")
    try:
        mv = memoryview(buf)
        while n > 0:
            k = fi.readinto(mv[:min(n, len(buf))])
            if not k:
                raise OSError(5)  # EIO: src is shorter than promised
            fo.write(mv[:k])
            n -= k
        fo.flush()
    finally:
        fi.close()
        fo.close()


class PowerCut(Exception):
    # raised by PowerCutFS when the budget is spent: the band has lost power.
    # Deliberately not an OSError, so code that handles storage errors cannot
    # swallow it by mistake.
    pass


# Power-cut model (worst case honestly allowed by littlefs and more):
# * every written byte reaches storage in order, immediately (no write-back
#   cache that could reorder); a cut in the middle of write(b) keeps exactly
#   the bytes of b before the cut and loses the rest;
# * with junk > 0 the torn write is followed by up to `junk` bytes of garbage
#   (a partially programmed flash page, as FAT or raw flash would leave); the
#   garbage stays inside the file being written;
# * metadata operations (create/truncate on open "wb", remove, rename, mkdir)
#   are atomic, as littlefs guarantees; each costs one unit of the budget so
#   a cut can fall just before or just after any of them;
# * after the cut every operation raises PowerCut until a new PowerCutFS (the
#   next boot) is built over the same inner FS.
# littlefs itself is stronger (an unsynced write is lost as a whole, rename
# and remove are atomic); this model includes all of its outcomes.
_OP_COST = const(1)


class PowerCutFS:
    def __init__(self, inner, budget, junk=0, seed=1):
        self.inner = inner
        self.budget = budget   # bytes (and metadata ops) left before the cut; -1 = never
        self.junk = junk
        self.seed = seed & 0x7FFF or 1
        self.dead = False
        self.written = 0

    def _rand(self):
        # small LCG (no `random` needed on MicroPython)
        self.seed = (self.seed * 1103 + 12345) & 0x7FFF
        return self.seed

    def _alive(self):
        if self.dead:
            raise PowerCut("power is off")

    def _spend(self, n):
        # how many of n units may still happen; marks the cut when spent
        self._alive()
        if self.budget < 0 or n < self.budget:
            if self.budget >= 0:
                self.budget -= n
            self.written += n
            return n
        k = self.budget
        self.budget = 0
        self.written += k
        self.dead = True
        return k

    def _meta(self):
        if self._spend(_OP_COST) < _OP_COST:
            raise PowerCut("power cut before a metadata operation")

    def open(self, path, mode):
        self._alive()
        if "r" not in mode:
            self._meta()  # create / truncate
        return _CutFile(self, self.inner.open(path, mode))

    def listdir(self, path):
        self._alive()
        return self.inner.listdir(path)

    def remove(self, path):
        self._meta()
        self.inner.remove(path)

    def rename(self, old, new):
        self._meta()
        self.inner.rename(old, new)

    def mkdir(self, path):
        self._meta()
        self.inner.mkdir(path)

    def exists(self, path):
        self._alive()
        return self.inner.exists(path)

    def size(self, path):
        self._alive()
        return self.inner.size(path)

    def free(self, path):
        self._alive()
        return self.inner.free(path)


class _CutFile:
    def __init__(self, fs, f):
        self.fs = fs
        self.f = f

    def write(self, b):
        fs = self.fs
        n = len(b)
        k = fs._spend(n)
        if k == n:
            return self.f.write(b)
        if k:
            self.f.write(memoryview(b)[:k])
        j = fs._rand() % (fs.junk + 1) if fs.junk else 0
        if j:
            g = bytearray(j)
            for i in range(j):
                g[i] = fs._rand() & 0xFF
            self.f.write(g)
        self.f.flush()
        raise PowerCut("power cut during a write")

    def readinto(self, b):
        self.fs._alive()
        return self.f.readinto(b)

    def read(self, n=-1):
        self.fs._alive()
        return self.f.read(n)

    def seek(self, off, whence=0):
        self.fs._alive()
        return self.f.seek(off, whence)

    def tell(self):
        self.fs._alive()
        return self.f.tell()

    def flush(self):
        self.fs._alive()
        self.f.flush()

    def close(self):
        # closing after the cut is allowed (it writes nothing more): the test
        # tidies the inner FS's handles this way
        self.f.close()
