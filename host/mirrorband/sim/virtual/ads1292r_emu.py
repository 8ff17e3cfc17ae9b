"""Register-level emulation of the TI ADS1292R as seen over SPI.

What is modelled (datasheet SBAS502):

* the SPI command set: WAKEUP, STANDBY, RESET, START, STOP, OFFSETCAL,
  RDATAC, SDATAC, RDATA, RREG and WREG (opcode | address, then n - 1, then the
  data bytes); in RDATAC mode RREG/WREG are ignored, as on the chip;
* the registers ID (0x73) ... GPIO with their reset values; LOFF_STAT is
  read-only and reflects the lead-off comparators;
* conversions at the CONFIG1 data rate after START, each latching a 72-bit
  frame (24-bit status ``1100 LOFF_STAT[4:0] GPIO[1:0] 0...``, then channel 1
  and channel 2 as 24-bit two's complement) and pulling DRDY low (it returns
  high when the frame is clocked out or just before the next conversion);
* the channels' PGA gain, power-down and input mux (normal electrode input,
  shorted input, 1 Hz internal test signal) and VREF (2.42 V or 4.033 V);
* lead-off: electrodes marked off (:meth:`set_electrodes_off`) set their
  LOFF_STAT bits when the comparators are powered (CONFIG2.PDB_LOFF_COMP) and
  enabled for that input (LOFF_SENS); a disconnected input reads 0.

Conversions happen when the simulation calls :meth:`run_until` with the band
time: one per sample period, in order, each driving DRDY (which calls the
firmware's pin IRQ handler synchronously). The analog input is a signal in
microvolts per channel at 1 kHz; codes are computed for the whole signal at
START (numpy), so a conversion only copies 6 bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mbfw import ads1292r as A
from mirrorband.sim.virtual.machine import Pin

RESET_VALUES = bytes([A.ID_ADS1292R, 0x02, 0x80, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x0C])
RATES = (125, 250, 500, 1000, 2000, 4000, 8000)
GAINS = (6, 1, 2, 3, 4, 8, 12)
SOURCE_RATE = 1000
READ_ONLY = (A.ID, A.LOFF_STAT)


class ADS1292REmu:
    """The chip: SPI side (select/spi_write/spi_read), DRDY pin, analog inputs."""

    def __init__(self, emg_uv: np.ndarray, drdy: Pin | None = None,
                 now_us: Callable[[], int] | None = None) -> None:
        emg_uv = np.asarray(emg_uv, dtype=np.float64)
        if emg_uv.ndim != 2 or emg_uv.shape[0] != 2:
            raise ValueError("emg_uv must have shape (2, n): channel 1 and channel 2 in uV")
        self.emg_uv = emg_uv
        self.drdy = drdy if drdy is not None else Pin("DRDY", Pin.IN, 1)
        self.drdy._v = 1
        self.regs = bytearray(RESET_VALUES)
        self.electrodes_off = 0
        self.now_us = now_us if now_us is not None else (lambda: 0)
        self.power_on()

    # --- state ------------------------------------------------------------------------
    def power_on(self) -> None:
        self.regs[:] = RESET_VALUES
        self.rdatac = True  # the chip starts in RDATAC mode
        self.converting = False
        self.standby = False
        self.i = 0  # conversions since START
        self.t_start_us = 0
        self.period_us = 1000
        self.next_us = 0
        self.frame = bytearray(A.FRAME)
        self.frame[0] = 0xC0
        self._data: memoryview | None = None
        self._data_key: tuple | None = None
        self._n = 0
        self._status = bytes(3)
        self._status_dirty = True
        self._reset_spi()
        self.conversions = 0
        self.missed = 0  # frames overwritten before they were read
        self._unread = False

    def _reset_spi(self) -> None:
        self._op = 0  # 0 idle, 1 RREG count, 2 RREG data, 3 WREG count, 4 WREG data
        self._addr = 0
        self._left = 0
        self._pos = 0
        self._rdata = False

    def set_electrodes_off(self, mask: int) -> None:
        """Mark electrodes off: bits IN1P, IN1N, IN2P, IN2N, RLD (as LOFF_STAT)."""
        self.electrodes_off = mask & 0x1F
        self._status_dirty = True

    def loff_stat(self) -> int:
        r = self.regs
        if not r[A.CONFIG2] & A.PDB_LOFF_COMP:
            return 0
        bits = self.electrodes_off & r[A.LOFF_SENS] & 0x0F
        if r[A.RLD_SENS] & A.RLD_LOFF_SENS:
            bits |= self.electrodes_off & A.LOFF_RLD
        return bits

    def _status_bytes(self) -> bytes:
        lo = self.loff_stat()
        gpio = self.regs[A.GPIO] & 0x03
        word = (0xC << 20) | (lo << 15) | (gpio << 13)
        return word.to_bytes(3, "big")

    # --- codes ------------------------------------------------------------------------
    def _channel_codes(self, ch: int, n: int, rate: int) -> np.ndarray:
        r = self.regs
        chset = r[A.CH1SET + ch]
        vref_uv = 4.033e6 if r[A.CONFIG2] & A.VREF_4V else 2.42e6
        gain = GAINS[(chset >> 4) & 7] if (chset >> 4) & 7 < len(GAINS) else 6
        mux = chset & 0x0F
        if chset & A.CH_PD or mux == A.MUX_SHORTED:
            return np.zeros(n, dtype=np.int64)
        if mux == A.MUX_TEST and r[A.CONFIG2] & A.INT_TEST:
            t = np.arange(n) / rate
            uv = np.where((t % 1.0) < 0.5, 1.0, -1.0) * vref_uv / 2420.0  # +-1 mV square, 1 Hz
        elif mux == A.MUX_NORMAL:
            idx = (np.arange(n, dtype=np.int64) * SOURCE_RATE) // rate
            src = self.emg_uv[ch]
            uv = np.zeros(n)
            ok = idx < len(src)
            uv[ok] = src[idx[ok]]
            off = A.LOFF_IN1P << (2 * ch) | A.LOFF_IN1N << (2 * ch)
            if self.electrodes_off & off:
                uv[:] = 0.0
        else:
            uv = np.zeros(n)
        codes = np.rint(uv * gain * A.CODE_MAX / vref_uv).astype(np.int64)
        return np.clip(codes, -A.CODE_MAX - 1, A.CODE_MAX)

    def _prepare(self) -> None:
        rate = RATES[self.regs[A.CONFIG1] & 7] if self.regs[A.CONFIG1] & 7 < len(RATES) else 500
        self.period_us = 1_000_000 // rate
        n = (self.emg_uv.shape[1] * rate) // SOURCE_RATE
        key = (bytes(self.regs), self.electrodes_off)
        if key != self._data_key:
            codes = np.stack([self._channel_codes(c, n, rate) for c in (0, 1)], axis=1)
            b = (codes & 0xFFFFFF).astype(">u4").view(np.uint8).reshape(n, 2, 4)[:, :, 1:]
            self._data = memoryview(b.tobytes())
            self._data_key = key
            self._n = n

    # --- SPI side -----------------------------------------------------------------------
    def select(self, active: bool) -> None:
        if not active:  # CS high resets the serial interface
            self._op = 0
            self._pos = 0
            self._rdata = False

    def spi_write(self, data: Any) -> None:
        for b in data:
            self._byte(b)

    def _byte(self, b: int) -> None:
        op = self._op
        if op == 1 or op == 3:
            self._left = (b & 0x1F) + 1
            self._op = op + 1
            return
        if op == 4:
            if self._left > 0:
                a = self._addr
                if a < A.NREG and a not in READ_ONLY:
                    self.regs[a] = b
                    self._status_dirty = True
                self._addr += 1
                self._left -= 1
            return
        if op == 2:
            return  # bytes clocked out during an RREG read
        if b == A.SDATAC:
            self.rdatac = False
        elif b == A.RDATAC:
            self.rdatac = True
        elif b == A.START:
            self._start()
        elif b == A.STOP:
            self.converting = False
        elif b == A.RESET:
            self.power_on()
        elif b == A.STANDBY:
            self.standby = True
        elif b == A.WAKEUP:
            self.standby = False
        elif b == A.RDATA:
            self._rdata = True
            self._pos = 0
        elif b == A.OFFSETCAL:
            pass
        elif b & 0xE0 == A.RREG and not self.rdatac:
            self._addr = b & 0x1F
            self._op = 1
        elif b & 0xE0 == A.WREG and not self.rdatac:
            self._addr = b & 0x1F
            self._op = 3

    def spi_read(self, buf: Any, write: int = 0) -> None:
        if self._op == 2:
            for i in range(len(buf)):
                a = self._addr
                if self._left > 0 and a < A.NREG:
                    v = self.loff_stat() if a == A.LOFF_STAT else self.regs[a]
                else:
                    v = 0
                buf[i] = v
                self._addr += 1
                self._left -= 1
            return
        if self.rdatac or self._rdata:
            n = len(buf)
            pos = self._pos
            if pos == 0 and n == A.FRAME:
                buf[:] = self.frame
            else:
                f = self.frame
                for i in range(n):
                    buf[i] = f[pos + i] if pos + i < A.FRAME else 0
            self._pos = pos + n
            self._unread = False
            d = self.drdy
            if d._v == 0:  # DRDY returns high on the first SCLK
                if d._trigger & Pin.IRQ_RISING:
                    d.drive(1)
                else:
                    d._v = 1
            return
        for i in range(len(buf)):
            buf[i] = 0

    # --- conversions ----------------------------------------------------------------------
    def _start(self) -> None:
        self._prepare()
        self.converting = True
        self.i = 0
        self.t_start_us = self.now_us()
        self.next_us = self.t_start_us + self.period_us

    def run_until(self, band_us: int) -> int:
        """Do every conversion due up to ``band_us``; returns how many."""
        if not self.converting or self.standby:
            return 0
        done = 0
        frame = self.frame
        drdy = self.drdy
        data = self._data
        assert data is not None
        n = self._n
        period = self.period_us
        i = self.i
        t = self.next_us
        while t <= band_us:
            if self._status_dirty:  # electrodes or registers changed
                self._status = self._status_bytes()
                self._status_dirty = False
                frame[0:3] = self._status
                self._prepare()
                data = self._data
                assert data is not None
                n = self._n
            if i < n:
                frame[3:9] = data[6 * i:6 * i + 6]
            else:
                frame[3:9] = b"\0\0\0\0\0\0"
            i += 1
            t += period
            self.i = i
            self.next_us = t
            if self._unread:
                self.missed += 1
                drdy._v = 1
            self._unread = True
            self._pos = 0
            drdy.drive(0)
            done += 1
            if not self.converting:
                break
        self.conversions += done
        return done
