"""Register-level emulation of the ST LSM6DSOX as seen over I2C.

What is modelled (datasheet DS12814):

* WHO_AM_I (0x6C), CTRL1_XL / CTRL2_G (ODR and full scale), CTRL3_C (BDU,
  IF_INC address auto-increment, SW_RESET and BOOT which self-clear), the
  output registers OUTX_L_G.. / OUTX_L_A.. (latest sample) and STATUS_REG;
* the FIFO: FIFO_CTRL1/2 (watermark, 9 bits), FIFO_CTRL3 (batch data rates
  BDR_XL/BDR_GY), FIFO_CTRL4 (FIFO_MODE: bypass, FIFO, continuous),
  FIFO_STATUS1/2 (DIFF_FIFO, FIFO_WTM_IA, FIFO_OVR_IA, FIFO_FULL_IA,
  FIFO_OVR_LATCHED), FIFO_DATA_OUT_TAG + 6 data bytes per word with TAG_SENSOR
  (gyroscope 0x01, accelerometer 0x02), TAG_CNT (2-bit time-slot counter) and
  TAG_PARITY; reading the 7 bytes at FIFO_DATA_OUT_TAG pops one word;
  capacity :data:`FIFO_WORDS` words, continuous mode drops the oldest;
* the INT1 pin (FIFO watermark when INT1_CTRL.INT1_FIFO_TH).

Samples are produced lazily from the band clock whenever a register is read:
slot ``s`` (gyroscope word, then accelerometer word) exists once the band time
reaches ``t_fifo_start + s / ODR``. Only the batch rate equal to the ODR
(104 Hz, what the firmware uses) is exact; other rates pick the source sample
nearest in time. The inputs are acceleration in g and angular rate in deg/s,
(m, 3) arrays at 104 Hz.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from mbfw import lsm6dsox as L
from mirrorband.sim.virtual.machine import Pin

FIFO_WORDS = 512  # 3.5 KB of uncompressed words
SOURCE_RATE = 104.0
ODR_HZ = {1: 12.5, 2: 26.0, 3: 52.0, 4: 104.0, 5: 208.0, 6: 416.0, 7: 833.0, 8: 1666.0, 9: 3332.0, 10: 6667.0}
XL_SENS_MG = {0: 0.061, 1: 0.488, 2: 0.122, 3: 0.244}
G_SENS_DPS = {0: 0.00875, 1: 0.0175, 2: 0.035, 3: 0.070}
REG_DEFAULTS = {L.WHO_AM_I: L.WHO_AM_I_VALUE, L.CTRL3_C: 0x04, L.FIFO_CTRL2: 0x00}


def _parity(tag: int) -> int:
    return bin(tag >> 1).count("1") & 1


class LSM6DSOXEmu:
    """The chip: I2C side (i2c_read/i2c_write), INT1 pin, inertial inputs."""

    def __init__(self, acc_g: np.ndarray, gyr_dps: np.ndarray, now_us: Callable[[], int],
                 int1: Pin | None = None) -> None:
        self.acc_g = np.asarray(acc_g, dtype=np.float64)
        self.gyr_dps = np.asarray(gyr_dps, dtype=np.float64)
        if self.acc_g.ndim != 2 or self.acc_g.shape[1] != 3 or self.gyr_dps.shape != self.acc_g.shape:
            raise ValueError("acc_g and gyr_dps must both have shape (m, 3)")
        self.now_us = now_us
        self.int1 = int1 if int1 is not None else Pin("INT1", Pin.IN, 0)
        self.words_read = 0
        self.reset()

    def reset(self) -> None:
        self.regs = bytearray(0x80)
        for r, v in REG_DEFAULTS.items():
            self.regs[r] = v
        self.fifo: deque[bytes] = deque()
        self.ovr = False
        self.ovr_latched = False
        self.t_fifo_us = 0
        self.slot = 0  # next time slot to batch
        self._now = -1
        self._words: np.ndarray | None = None
        self._key: tuple | None = None
        self.last = (bytes(6), bytes(6))  # latest gyro, acc data bytes

    # --- data -------------------------------------------------------------------------------
    def _codes(self) -> np.ndarray:
        """(m, 2, 6) little-endian bytes: gyro then accelerometer words of each source sample."""
        xs = (self.regs[L.CTRL1_XL] >> 2) & 3
        gs = (self.regs[L.CTRL2_G] >> 2) & 3
        key = (xs, gs, self.regs[L.CTRL2_G] & 2)
        if key != self._key or self._words is None:
            gsens = 0.004375 if self.regs[L.CTRL2_G] & 2 else G_SENS_DPS[gs]
            acc = np.clip(np.rint(self.acc_g * 1000.0 / XL_SENS_MG[xs]), -32768, 32767)
            gyr = np.clip(np.rint(self.gyr_dps / gsens), -32768, 32767)
            words = np.stack([gyr, acc], axis=1).astype("<i2")  # (m, 2, 3)
            self._words = words.view(np.uint8).reshape(len(words), 2, 6)
            self._key = key
        return self._words

    def _fifo_mode(self) -> int:
        return self.regs[L.FIFO_CTRL4] & 7

    def _batching(self) -> tuple[float, float]:
        r = self.regs
        bdr_xl = ODR_HZ.get(r[L.FIFO_CTRL3] & 0x0F, 0.0) if ODR_HZ.get(r[L.CTRL1_XL] >> 4) else 0.0
        bdr_g = ODR_HZ.get(r[L.FIFO_CTRL3] >> 4, 0.0) if ODR_HZ.get(r[L.CTRL2_G] >> 4) else 0.0
        return bdr_xl, bdr_g

    def _update(self) -> None:
        """Batch every slot due by now into the FIFO."""
        mode = self.regs[L.FIFO_CTRL4] & 7
        if mode == L.FIFO_BYPASS:
            return
        now = self.now_us()
        if now == self._now:
            return
        self._now = now
        bdr_xl, bdr_g = self._batching()
        rate = max(bdr_xl, bdr_g)
        if rate <= 0:
            return
        due = int((now - self.t_fifo_us) * rate // 1_000_000) + 1
        if due <= self.slot:
            return
        words = self._codes()
        m = len(words)
        fifo = self.fifo
        for s in range(self.slot, due):
            if mode == L.FIFO_MODE_FIFO and len(fifo) + 2 > FIFO_WORDS:
                self.ovr = True
                break
            src = int(s * SOURCE_RATE / rate)
            cnt = s & 3
            g, a = (bytes(words[src, 0]), bytes(words[src, 1])) if src < m else (bytes(6), bytes(6))
            self.last = (g, a)
            if bdr_g:
                tag = (L.TAG_GYRO_NC << 3) | (cnt << 1)
                fifo.append(bytes([tag | _parity(tag)]) + g)
            if bdr_xl:
                tag = (L.TAG_XL_NC << 3) | (cnt << 1)
                fifo.append(bytes([tag | _parity(tag)]) + a)
            while len(fifo) > FIFO_WORDS:  # continuous: the oldest go
                fifo.popleft()
                self.ovr = True
                self.ovr_latched = True
        self.slot = due
        if self.regs[L.INT1_CTRL] & L.INT1_FIFO_TH:
            self.int1.drive(1 if self._wtm_reached() else 0)

    def _wtm(self) -> int:
        return self.regs[L.FIFO_CTRL1] | ((self.regs[L.FIFO_CTRL2] & 1) << 8)

    def _wtm_reached(self) -> bool:
        w = self._wtm()
        return w > 0 and len(self.fifo) >= w

    # --- registers --------------------------------------------------------------------------
    def _read_reg(self, reg: int) -> int:
        if reg == L.FIFO_STATUS1:
            return len(self.fifo) & 0xFF
        if reg == L.FIFO_STATUS2:
            n = len(self.fifo)
            v = (n >> 8) & 3
            if self._wtm_reached():
                v |= L.FIFO_WTM_IA
            if self.ovr:
                v |= L.FIFO_OVR_IA
            if n >= FIFO_WORDS:
                v |= L.FIFO_FULL_IA
            if self.ovr_latched:
                v |= 0x08
                self.ovr_latched = False  # cleared by reading FIFO_STATUS2
            return v
        if L.OUTX_L_G <= reg < L.OUTX_L_G + 6:
            return self.last[0][reg - L.OUTX_L_G]
        if L.OUTX_L_A <= reg < L.OUTX_L_A + 6:
            return self.last[1][reg - L.OUTX_L_A]
        if reg == L.STATUS_REG:
            return 0x03 if self.slot else 0
        return self.regs[reg & 0x7F]

    def i2c_read(self, reg: int, buf: Any) -> None:
        self._update()
        if reg == L.FIFO_DATA_OUT_TAG:
            # one FIFO word per read of the 7 output registers
            if self.fifo:
                w = self.fifo.popleft()
                self.words_read += 1
                if self.ovr and self._fifo_mode() == L.FIFO_CONTINUOUS:
                    self.ovr = False
            else:
                w = bytes(7)
            n = min(len(buf), 7)
            buf[:n] = w[:n]
            for i in range(n, len(buf)):
                buf[i] = 0
            return
        inc = self.regs[L.CTRL3_C] & L.IF_INC
        for i in range(len(buf)):
            buf[i] = self._read_reg(reg + (i if inc else 0))

    def i2c_write(self, reg: int, data: Any) -> None:
        self._update()
        inc = self.regs[L.CTRL3_C] & L.IF_INC
        for i, v in enumerate(data):
            self._write_reg(reg + (i if inc else 0), v)

    def _write_reg(self, reg: int, v: int) -> None:
        if reg in (L.WHO_AM_I, L.FIFO_STATUS1, L.FIFO_STATUS2, L.STATUS_REG) or reg >= 0x78:
            return  # read-only
        if reg == L.CTRL3_C and v & (L.SW_RESET | L.BOOT):
            self.reset()  # the reset bits self-clear
            return
        if reg == L.FIFO_CTRL4:
            old = self._fifo_mode()
            self.regs[reg] = v
            new = v & 7
            if new == L.FIFO_BYPASS:
                self.fifo.clear()
                self.ovr = False
            elif old == L.FIFO_BYPASS:
                self.t_fifo_us = self.now_us()
                self.slot = 0
                self._now = -1
            return
        self.regs[reg] = v
