# TI ADS1292R driver: 2-channel 24-bit biopotential ADC on SPI with DRDY.
# Register and command names as in the datasheet (SBAS502, section 9.5/9.6).
#
# Hardware objects are injected: spi (machine.SPI, mode 1: polarity 0,
# phase 1, <= 4 MHz at 1 kSPS), cs (Pin, output, idle high), drdy (Pin,
# input, falling edge when a conversion is ready), optional start and reset
# pins (Pin outputs; without them the START/RESET commands are used).
#
# Firmware unit: 0.5 uV per count (what mbfw.emg expects). A 24-bit code is
# converted with a multiplier computed once from VREF and the PGA gain and a
# three-step Horner product, so every intermediate stays below 2**30 and a
# frame decodes without allocation (read_into is called from the DRDY IRQ).
from micropython import const

# SPI commands
WAKEUP = const(0x02)
STANDBY = const(0x04)
RESET = const(0x06)
START = const(0x08)
STOP = const(0x0A)
OFFSETCAL = const(0x1A)
RDATAC = const(0x10)
SDATAC = const(0x11)
RDATA = const(0x12)
RREG = const(0x20)
WREG = const(0x40)

# registers
ID = const(0x00)
CONFIG1 = const(0x01)
CONFIG2 = const(0x02)
LOFF = const(0x03)
CH1SET = const(0x04)
CH2SET = const(0x05)
RLD_SENS = const(0x06)
LOFF_SENS = const(0x07)
LOFF_STAT = const(0x08)
RESP1 = const(0x09)
RESP2 = const(0x0A)
GPIO = const(0x0B)
NREG = const(12)

ID_ADS1292R = const(0x73)

# CONFIG1: DR[2:0] data rate
DR_125 = const(0)
DR_250 = const(1)
DR_500 = const(2)
DR_1K = const(3)
DR_2K = const(4)
# CONFIG2 bits (bit 7 must be 1)
CONFIG2_ONE = const(0x80)
PDB_LOFF_COMP = const(0x40)
PDB_REFBUF = const(0x20)
VREF_4V = const(0x10)
CLK_EN = const(0x08)
INT_TEST = const(0x02)
# CHnSET: PD bit 7, GAIN[6:4], MUX[3:0]
CH_PD = const(0x80)
MUX_NORMAL = const(0x00)
MUX_SHORTED = const(0x01)
MUX_TEST = const(0x05)
# RLD_SENS
PDB_RLD = const(0x20)
RLD_LOFF_SENS = const(0x10)
# LOFF_STAT / status word lead-off bits: IN1P, IN1N, IN2P, IN2N, RLD
LOFF_IN1P = const(0x01)
LOFF_IN1N = const(0x02)
LOFF_IN2P = const(0x04)
LOFF_IN2N = const(0x08)
LOFF_RLD = const(0x10)

FRAME = const(9)        # RDATAC frame: 24-bit status + 2 x 24-bit channels
CODE_MAX = const(0x7FFFFF)
EMG_MAX = const((1 << 19) - 1)
_MUL_MAX = const(1 << 21)

# PGA gain -> GAIN[2:0]
_GAINS = (6, 1, 2, 3, 4, 8, 12)


class ADS1292RError(Exception):
    pass


def gain_bits(gain):
    for i in range(len(_GAINS)):
        if _GAINS[i] == gain:
            return i << 4
    raise ADS1292RError("unsupported gain %d" % gain)


def multiplier(gain, vref_4v=False):
    # counts (0.5 uV) per code, x 2**24: LSB = VREF / (gain * (2**23 - 1))
    vref_uv = 4033000 if vref_4v else 2420000
    m = int(2.0 * vref_uv / (gain * CODE_MAX) * (1 << 24) + 0.5)
    if m >= _MUL_MAX:
        raise ADS1292RError("gain %d too low for 0.5 uV counts" % gain)
    return m


class ADS1292R:
    def __init__(self, spi, cs, drdy, start=None, reset=None, gain=6, vref_4v=False):
        self.spi = spi
        self.cs = cs
        self.drdy = drdy
        self.start_pin = start
        self.reset_pin = reset
        self.gain = gain
        self.vref_4v = vref_4v
        self.mul = multiplier(gain, vref_4v)
        self.frame = bytearray(FRAME)
        self._cmd = bytearray(1)
        self._hdr = bytearray(2)
        self._one = bytearray(1)
        self.loff = 0           # lead-off bits of the last frame
        self.streaming = False
        cs.value(1)

    # --- low level -------------------------------------------------------
    def command(self, c):
        self._cmd[0] = c
        self.cs.value(0)
        self.spi.write(self._cmd)
        self.cs.value(1)

    def read_reg(self, addr):
        if self.streaming:
            raise ADS1292RError("SDATAC first")
        self._hdr[0] = RREG | addr
        self._hdr[1] = 0         # n - 1
        self.cs.value(0)
        self.spi.write(self._hdr)
        self.spi.readinto(self._one, 0)
        self.cs.value(1)
        return self._one[0]

    def write_reg(self, addr, value):
        if self.streaming:
            raise ADS1292RError("SDATAC first")
        self._hdr[0] = WREG | addr
        self._hdr[1] = 0
        self._one[0] = value
        self.cs.value(0)
        self.spi.write(self._hdr)
        self.spi.write(self._one)
        self.cs.value(1)

    # --- set-up ----------------------------------------------------------
    def reset(self):
        if self.reset_pin is not None:
            self.reset_pin.value(0)
            self.reset_pin.value(1)
        else:
            self.command(RESET)
        self.streaming = True   # the chip powers up in RDATAC mode
        self.command(SDATAC)
        self.streaming = False

    def init(self, rate=DR_1K, leadoff=True, mux=MUX_NORMAL):
        # reset, check the ID, configure both channels for EMG
        self.reset()
        chip = self.read_reg(ID)
        if chip != ID_ADS1292R:
            raise ADS1292RError("ADS1292R not found (ID 0x%02x)" % chip)
        self.write_reg(CONFIG1, rate & 7)
        c2 = CONFIG2_ONE | PDB_REFBUF
        if leadoff:
            c2 |= PDB_LOFF_COMP
        if self.vref_4v:
            c2 |= VREF_4V
        self.write_reg(CONFIG2, c2)
        self.write_reg(LOFF, 0x10)                  # 95 % comparator, 6 nA DC lead-off
        g = gain_bits(self.gain) | (mux & 0x0F)
        self.write_reg(CH1SET, g)
        self.write_reg(CH2SET, g)
        self.write_reg(RLD_SENS, PDB_RLD | 0x03 | (RLD_LOFF_SENS if leadoff else 0))
        self.write_reg(LOFF_SENS, 0x0F if leadoff else 0)
        self.write_reg(RESP1, 0x02)                 # respiration off
        self.write_reg(RESP2, 0x03)                 # RLDREF internal
        for addr, want in ((CONFIG1, rate & 7), (CONFIG2, c2), (CH1SET, g), (CH2SET, g)):
            if self.read_reg(addr) != want:
                raise ADS1292RError("register 0x%02x did not take" % addr)

    def start(self):
        # continuous conversions; frames are read on DRDY with read_into()
        self.command(RDATAC)
        self.streaming = True
        if self.start_pin is not None:
            self.start_pin.value(1)
        else:
            self.command(START)

    def stop(self):
        if self.start_pin is not None:
            self.start_pin.value(0)
        else:
            self.command(STOP)
        self.command(SDATAC)
        self.streaming = False

    # --- data (DRDY IRQ context: no allocation) ---------------------------
    def read_into(self, out, i, stride):
        # one RDATAC frame: channel 1 -> out[i], channel 2 -> out[i + stride]
        # (0.5 uV counts, clipped to +-EMG_MAX); returns the lead-off bits,
        # or -1 when the status word lacks its 1100 header (a bad frame)
        f = self.frame
        self.cs.value(0)
        self.spi.readinto(f, 0)
        self.cs.value(1)
        if f[0] & 0xF0 != 0xC0:
            return -1
        m = self.mul
        b = f[3]
        t = (f[5] * m) >> 8
        t = (t + f[4] * m) >> 8
        v = (t + (b - 256 if b > 127 else b) * m + 128) >> 8
        out[i] = EMG_MAX if v > EMG_MAX else (-EMG_MAX if v < -EMG_MAX else v)
        b = f[6]
        t = (f[8] * m) >> 8
        t = (t + f[7] * m) >> 8
        v = (t + (b - 256 if b > 127 else b) * m + 128) >> 8
        out[i + stride] = EMG_MAX if v > EMG_MAX else (-EMG_MAX if v < -EMG_MAX else v)
        lo = ((f[0] & 0x0F) << 1) | (f[1] >> 7)
        self.loff = lo
        return lo
