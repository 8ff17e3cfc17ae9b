# Sensor sampling: DRDY-driven EMG frames into a ring of preallocated blocks,
# IMU samples from the LSM6DSOX FIFO assigned to the blocks' 10 ms windows.
#
# EMG: the ADS1292R's DRDY falls at 1 kSPS; irq() (the pin handler, also the
# hard-IRQ-safe path: no allocation) reads one frame into the current block
# slot. A slot holds FLEX then EXT (stride = the block's length, so a slot is
# exactly what mbfw.pipeline.Hand.analyse takes). When a block is complete,
# notify() is called (the app sets its asyncio flag there).
# IMU: the app calls take_imu() when it takes a block; IMU sample j (counted
# from start) belongs to window (j * 25) // 26 (104 Hz against 10 ms windows);
# samples past the block are carried to the next one.
from array import array

from micropython import const

from mbfw.imu import IMU_FIELDS

BLOCK = const(100)          # EMG samples per block (100 ms)
NBLK = const(8)             # blocks in the ring (power of two)
MAX_IMU = const(24)         # IMU samples per block at most (10 or 11 at 104 Hz)
_CARRY = const(32)          # IMU samples held between blocks
_CHUNK = const(12)          # IMU samples read per FIFO pass (a block holds <= 11)
_SAMPLE = const(6)          # ints per driver sample


class SamplerError(Exception):
    pass


class Sampler:
    def __init__(self, ads, imu=None, block=BLOCK, nblk=NBLK, notify=None):
        if block % 10 or nblk & (nblk - 1):
            raise SamplerError("bad ring geometry")
        self.ads = ads
        self.imu = imu
        self.block = block
        self.mask = nblk - 1
        self.ring = array("i", bytes(4 * 2 * block * nblk))
        mv = memoryview(self.ring)
        self.views = [mv[s * 2 * block:(s + 1) * 2 * block] for s in range(nblk)]
        self.size = array("i", bytes(4 * nblk))
        self.loff_or = bytearray(nblk)
        self.loff_and = bytearray(nblk)
        self.imu_buf = array("i", bytes(4 * MAX_IMU * IMU_FIELDS))
        self.raw = array("i", bytes(4 * _CHUNK * _SAMPLE))
        self.carry = array("i", bytes(4 * _CARRY * IMU_FIELDS))
        self.notify = notify
        self._irq = self.irq    # bound once: registering it allocates nothing later
        self.running = False
        self._reset(0)

    def _reset(self, nsamples):
        self.head = 0           # blocks completed
        self.tail = 0           # blocks taken by the app
        self.i = 0              # samples in the current block
        self.left = nsamples    # samples still wanted; 0 = until stop()
        self.bounded = nsamples > 0
        self.blen = self.block if not self.bounded or nsamples > self.block else nsamples
        self.samples = 0        # samples delivered
        self.overruns = 0       # samples lost to a full ring
        self.bad = 0            # frames without a valid status word
        self.lo_or = 0
        self.lo_and = 0xFF
        self.jw = 0             # window of the next IMU sample
        self.jn = 0             # 25 * j mod 26
        self.ncarry = 0
        self.imu_lost = 0
        self.done = False

    # --- control (app context) --------------------------------------------
    def start(self, nsamples=0):
        # sample nsamples (0 = until stop()); the last block may be shorter
        self._reset(nsamples)
        if self.imu is not None:
            self.imu.fifo_start()
        self.running = True
        drdy = self.ads.drdy
        drdy.irq(handler=self._irq, trigger=drdy.IRQ_FALLING)
        self.ads.start()

    def stop(self):
        self.running = False
        self.ads.drdy.irq(handler=None)
        self.ads.stop()
        if self.imu is not None:
            self.imu.fifo_stop()

    def pending(self):
        return self.head - self.tail

    # --- EMG (DRDY IRQ context) ------------------------------------------
    def irq(self, pin):
        if not self.running or self.done:
            return
        if self.head - self.tail > self.mask:
            self.ads.read_into(self.raw, 0, 1)     # clear DRDY, drop the frame
            self.overruns += 1
            return
        s = self.head & self.mask
        i = self.i
        blen = self.blen
        lo = self.ads.read_into(self.ring, s * 2 * self.block + i, blen)
        if lo < 0:
            self.bad += 1
            lo = 0
        self.lo_or |= lo
        self.lo_and &= lo
        i += 1
        self.samples += 1
        if i < blen:
            self.i = i
            return
        self.size[s] = blen
        self.loff_or[s] = self.lo_or
        self.loff_and[s] = self.lo_and
        self.lo_or = 0
        self.lo_and = 0xFF
        self.i = 0
        self.head += 1
        if self.bounded:
            left = self.left - blen
            self.left = left
            if left <= 0:
                self.done = True
            elif left < self.block:
                self.blen = left
        if self.notify is not None:
            self.notify()

    # --- blocks (app context) --------------------------------------------
    def take(self):
        # slot of the oldest complete block (-1 if none): its samples are
        # views[slot][0:2*size[slot]]; release() when done with it
        if self.head == self.tail:
            return -1
        return self.tail & self.mask

    def release(self):
        self.tail += 1

    def take_imu(self, first_window, nw):
        # IMU samples of windows first_window .. first_window+nw-1 into imu_buf
        # (window index within the block first); returns how many
        imu = self.imu
        if imu is None:
            return 0
        carry = self.carry
        end = first_window + nw
        # read until a sample past the block is held or the FIFO is empty
        while self.ncarry == 0 or carry[(self.ncarry - 1) * IMU_FIELDS] < end:
            room = _CARRY - self.ncarry
            if room <= 0:
                break
            k = imu.read_fifo(self.raw, 0, room if room < _CHUNK else _CHUNK)
            if k == 0:
                break
            raw = self.raw
            for q in range(k):
                b = self.ncarry * IMU_FIELDS
                carry[b] = self.jw
                # window of the next sample: floor(25 * j / 26), incrementally
                self.jn += 25
                if self.jn >= 26:
                    self.jn -= 26
                    self.jw += 1
                r = q * _SAMPLE
                for f in range(_SAMPLE):
                    carry[b + 1 + f] = raw[r + f]
                self.ncarry += 1
        out = self.imu_buf
        m = 0
        used = 0
        n = self.ncarry
        while used < n:
            b = used * IMU_FIELDS
            w = carry[b]
            if w >= end:
                break
            used += 1
            if w < first_window or m >= MAX_IMU:
                self.imu_lost += 1
                continue
            o = m * IMU_FIELDS
            out[o] = w - first_window
            for f in range(1, IMU_FIELDS):
                out[o + f] = carry[b + f]
            m += 1
        if used:
            rest = (n - used) * IMU_FIELDS
            src = used * IMU_FIELDS
            for f in range(rest):
                carry[f] = carry[src + f]
            self.ncarry = n - used
        return m
