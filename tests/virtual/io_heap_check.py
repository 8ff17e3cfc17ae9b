# Runs inside MicroPython (unix port or 32-bit wasm port), firmware on sys.path.
# The DRDY path (Sampler.irq -> ADS1292R.read_into) and the IMU path
# (Sampler.take_imu -> LSM6DSOX.read_fifo) with fake SPI/I2C/pins, under
# micropython.heap_lock(): any allocation (or a small int growing into a big
# int on a 31-bit port) raises MemoryError. Prints "OK samples imu" or "FAIL".
import micropython

from mbfw.ads1292r import ADS1292R
from mbfw.lsm6dsox import FIFO_DATA_OUT_TAG, FIFO_STATUS1, LSM6DSOX
from mbfw.sampler import Sampler


class FakePin:
    IRQ_FALLING = 1

    def __init__(self):
        self.v = 1

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v

    def irq(self, handler=None, trigger=0):
        self.h = handler


class FakeSPI:
    # frames: status C0 00 00, ch1 = -8388607 (0x800001), ch2 = +5000000
    def __init__(self):
        self.frame = bytearray(b"\xc0\x00\x00\x80\x00\x01\x4c\x4b\x40")

    def write(self, b):
        pass

    def readinto(self, buf, w=0):
        f = self.frame
        for i in range(len(buf)):
            buf[i] = f[i] if i < 9 else 0


class FakeI2C:
    # FIFO: 2 words per slot (gyro, acc), level 24 words
    def __init__(self):
        self.n = 0
        self.st = bytearray(b"\x18\x00")

    def readfrom_mem_into(self, addr, reg, buf):
        if reg == FIFO_STATUS1:
            buf[0] = 24
            buf[1] = 0
        elif reg == FIFO_DATA_OUT_TAG:
            slot = self.n >> 1
            tag = 1 if self.n & 1 == 0 else 2
            buf[0] = (tag << 3) | ((slot & 3) << 1)
            for i in range(1, 7):
                buf[i] = 0x7F if i & 1 == 0 else 0xFF  # +32767 on every axis
            self.n += 1
        else:
            for i in range(len(buf)):
                buf[i] = 0

    def writeto_mem(self, addr, reg, buf):
        pass


spi = FakeSPI()
drdy = FakePin()
ads = ADS1292R(spi, FakePin(), drdy)
imu = LSM6DSOX(FakeI2C())
s = Sampler(ads, imu)
s.start(0)
ads.streaming = True
irq = s.irq
where = "irq"
micropython.heap_lock()
try:
    for _ in range(300):
        irq(drdy)
    where = "take"
    slot = s.take()
    where = "imu"
    m = s.take_imu(0, 10)
    s.release()
    m2 = s.take_imu(10, 10)
    where = ""
except MemoryError:
    pass
finally:
    micropython.heap_unlock()
if where:
    print("FAIL allocation in", where)
else:
    v = s.views[slot]
    print("OK", s.samples, s.pending(), v[0], v[100], m, m2, s.imu_buf[1], s.imu_buf[4])
