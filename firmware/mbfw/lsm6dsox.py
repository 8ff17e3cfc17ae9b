# ST LSM6DSOX driver: accelerometer + gyroscope batched into the FIFO.
# Register names as in the datasheet (DS12814, section 8/9).
#
# Hardware objects are injected: i2c (machine.I2C), optional int1 (Pin, FIFO
# watermark interrupt). Both sensors run at the same ODR and are batched at the
# same rate; FIFO words (tag + 6 bytes) are read one at a time and paired by
# their TAG_CNT into samples in firmware units: acc in mg, gyro in 0.1 deg/s.
from micropython import const

ADDR = const(0x6A)          # SDO/SA0 low; 0x6B when high

FUNC_CFG_ACCESS = const(0x01)
FIFO_CTRL1 = const(0x07)    # WTM[7:0]
FIFO_CTRL2 = const(0x08)    # WTM8 (bit 0), STOP_ON_WTM (bit 7)
FIFO_CTRL3 = const(0x09)    # BDR_GY[7:4], BDR_XL[3:0]
FIFO_CTRL4 = const(0x0A)    # DEC_TS_BATCH[7:6], ODR_T_BATCH[5:4], FIFO_MODE[2:0]
INT1_CTRL = const(0x0D)
WHO_AM_I = const(0x0F)
CTRL1_XL = const(0x10)      # ODR_XL[7:4], FS_XL[3:2], LPF2_XL_EN
CTRL2_G = const(0x11)       # ODR_G[7:4], FS_G[3:2], FS_125
CTRL3_C = const(0x12)       # BOOT, BDU, H_LACTIVE, PP_OD, SIM, IF_INC, -, SW_RESET
CTRL4_C = const(0x13)
CTRL5_C = const(0x14)
CTRL6_C = const(0x15)
CTRL7_G = const(0x16)
STATUS_REG = const(0x1E)
OUTX_L_G = const(0x22)
OUTX_L_A = const(0x28)
FIFO_STATUS1 = const(0x3A)  # DIFF_FIFO[7:0]
FIFO_STATUS2 = const(0x3B)  # WTM_IA, OVR_IA, FULL_IA, COUNTER_BDR_IA, OVR_LATCHED, DIFF_FIFO[9:8]
FIFO_DATA_OUT_TAG = const(0x78)

WHO_AM_I_VALUE = const(0x6C)

# CTRL3_C
BOOT = const(0x80)
BDU = const(0x40)
IF_INC = const(0x04)
SW_RESET = const(0x01)
# FIFO_MODE
FIFO_BYPASS = const(0)
FIFO_MODE_FIFO = const(1)
FIFO_CONTINUOUS = const(6)
# FIFO_STATUS2
FIFO_WTM_IA = const(0x80)
FIFO_OVR_IA = const(0x40)
FIFO_FULL_IA = const(0x20)
# INT1_CTRL
INT1_FIFO_TH = const(0x08)
# TAG_SENSOR (FIFO_DATA_OUT_TAG[7:3])
TAG_GYRO_NC = const(0x01)
TAG_XL_NC = const(0x02)
TAG_TEMP = const(0x03)
TAG_TIMESTAMP = const(0x04)
TAG_CFG_CHANGE = const(0x05)

# ODR / BDR code for 104 Hz (the band's IMU rate)
ODR_104 = const(0x4)

SAMPLE = const(6)           # ints per sample: ax ay az (mg), gx gy gz (0.1 deg/s)

# full scale -> (FS bits, sensitivity): acc ug/LSB, gyro 0.01 mdps/LSB
_XL_FS = ((2, 0, 61), (16, 1, 488), (4, 2, 122), (8, 3, 244))
_G_FS = ((250, 0, 875), (500, 1, 1750), (1000, 2, 3500), (2000, 3, 7000))


class LSM6DSOXError(Exception):
    pass


def _fs(table, fs):
    for full, bits, sens in table:
        if full == fs:
            return bits, sens
    raise LSM6DSOXError("unsupported full scale %d" % fs)


class LSM6DSOX:
    def __init__(self, i2c, addr=ADDR, int1=None, fs_xl=16, fs_g=2000):
        self.i2c = i2c
        self.addr = addr
        self.int1 = int1
        self.xl_bits, self.xl_sens = _fs(_XL_FS, fs_xl)
        self.g_bits, self.g_sens = _fs(_G_FS, fs_g)
        self.word = bytearray(7)
        self._st = bytearray(2)
        self._one = bytearray(1)
        self.gyro = [0, 0, 0]       # gyro of the pending time slot
        self.gcnt = -1              # its TAG_CNT, -1 = none
        self.status2 = 0            # FIFO_STATUS2 flags of the last level read
        self.overruns = 0

    def read_reg(self, reg):
        self.i2c.readfrom_mem_into(self.addr, reg, self._one)
        return self._one[0]

    def write_reg(self, reg, value):
        self._one[0] = value
        self.i2c.writeto_mem(self.addr, reg, self._one)

    def init(self, wtm=32):
        # reset, check WHO_AM_I, 104 Hz both sensors, FIFO batching at 104 Hz
        try:
            who = self.read_reg(WHO_AM_I)
        except OSError:
            raise LSM6DSOXError("LSM6DSOX does not answer on I2C") from None
        if who != WHO_AM_I_VALUE:
            raise LSM6DSOXError("LSM6DSOX not found (WHO_AM_I 0x%02x)" % who)
        self.write_reg(CTRL3_C, SW_RESET | IF_INC)
        for _ in range(100):
            if not self.read_reg(CTRL3_C) & SW_RESET:
                break
        else:
            raise LSM6DSOXError("LSM6DSOX reset did not finish")
        self.write_reg(CTRL3_C, BDU | IF_INC)
        self.write_reg(CTRL1_XL, (ODR_104 << 4) | (self.xl_bits << 2))
        self.write_reg(CTRL2_G, (ODR_104 << 4) | (self.g_bits << 2))
        self.write_reg(FIFO_CTRL1, wtm & 0xFF)
        self.write_reg(FIFO_CTRL2, (wtm >> 8) & 1)
        self.write_reg(FIFO_CTRL3, (ODR_104 << 4) | ODR_104)
        self.write_reg(FIFO_CTRL4, FIFO_BYPASS)
        self.write_reg(INT1_CTRL, INT1_FIFO_TH if self.int1 is not None else 0)

    def fifo_start(self):
        # bypass empties the FIFO; continuous mode keeps the newest words
        self.write_reg(FIFO_CTRL4, FIFO_BYPASS)
        self.write_reg(FIFO_CTRL4, FIFO_CONTINUOUS)
        self.gcnt = -1

    def fifo_stop(self):
        self.write_reg(FIFO_CTRL4, FIFO_BYPASS)

    def fifo_level(self):
        # unread FIFO words (DIFF_FIFO); flags kept in status2
        self.i2c.readfrom_mem_into(self.addr, FIFO_STATUS1, self._st)
        s2 = self._st[1]
        self.status2 = s2
        if s2 & FIFO_OVR_IA:
            self.overruns += 1
        return self._st[0] | ((s2 & 3) << 8)

    def read_fifo(self, out, off, maxn):
        # read FIFO words until maxn complete samples (gyro + acc of the same
        # time slot) are in out[off + SAMPLE*k ...] or the FIFO is empty;
        # returns k. Words left in the FIFO are read next time.
        n = self.fifo_level()
        w = self.word
        k = 0
        g = self.gyro
        while n > 0 and k < maxn:
            n -= 1
            self.i2c.readfrom_mem_into(self.addr, FIFO_DATA_OUT_TAG, w)
            tag = w[0] >> 3
            cnt = (w[0] >> 1) & 3
            x = w[1] | (w[2] << 8)
            y = w[3] | (w[4] << 8)
            z = w[5] | (w[6] << 8)
            if x > 32767:
                x -= 65536
            if y > 32767:
                y -= 65536
            if z > 32767:
                z -= 65536
            if tag == TAG_GYRO_NC:
                s = self.g_sens
                g[0] = (x * s + 5000) // 10000
                g[1] = (y * s + 5000) // 10000
                g[2] = (z * s + 5000) // 10000
                self.gcnt = cnt
            elif tag == TAG_XL_NC:
                if self.gcnt != cnt:
                    continue        # no gyro for this slot: drop
                s = self.xl_sens
                b = off + k * SAMPLE
                out[b] = (x * s + 500) // 1000
                out[b + 1] = (y * s + 500) // 1000
                out[b + 2] = (z * s + 500) // 1000
                out[b + 3] = g[0]
                out[b + 4] = g[1]
                out[b + 5] = g[2]
                self.gcnt = -1
                k += 1
        return k
