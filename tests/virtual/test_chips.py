"""The firmware's ADS1292R and LSM6DSOX drivers against the register-level emulations."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from mbfw import ads1292r as A
from mbfw import lsm6dsox as L
from mirrorband.sim.virtual.ads1292r_emu import ADS1292REmu
from mirrorband.sim.virtual.lsm6dsox_emu import FIFO_WORDS, LSM6DSOXEmu
from mirrorband.sim.virtual.machine import I2C, SPI, Pin


class Now:
    def __init__(self) -> None:
        self.us = 0

    def __call__(self) -> int:
        return self.us


def ads_pair(emg_uv, **kw):
    now = Now()
    spi = SPI(1, polarity=0, phase=1)
    emu = ADS1292REmu(np.asarray(emg_uv, dtype=float), Pin("DRDY", Pin.IN, 1), now)
    cs = spi.attach(emu, "CS")
    drv = A.ADS1292R(spi, cs, emu.drdy, **kw)
    return drv, emu, now


def test_ads_init_configures_registers_over_spi():
    drv, emu, _ = ads_pair(np.zeros((2, 10)))
    drv.init()
    assert emu.regs[A.ID] == A.ID_ADS1292R
    assert emu.regs[A.CONFIG1] & 7 == A.DR_1K
    assert emu.regs[A.CONFIG2] & (A.CONFIG2_ONE | A.PDB_REFBUF | A.PDB_LOFF_COMP) == 0xE0
    assert emu.regs[A.CH1SET] == emu.regs[A.CH2SET] == 0x00  # gain 6, normal input
    assert emu.regs[A.LOFF_SENS] == 0x0F
    assert not emu.rdatac  # SDATAC after the reset, so registers can be written


def test_ads_ignores_register_access_in_rdatac_mode():
    drv, emu, _ = ads_pair(np.zeros((2, 10)))
    drv.init()
    drv.command(A.RDATAC)
    drv._hdr[0] = A.WREG | A.CH1SET
    drv.cs.value(0)
    drv.spi.write(bytes([A.WREG | A.CH1SET, 0, 0x81]))
    drv.cs.value(1)
    assert emu.regs[A.CH1SET] == 0x00  # ignored, as on the chip
    drv.command(A.SDATAC)
    drv.write_reg(A.CH1SET, 0x81)
    assert drv.read_reg(A.CH1SET) == 0x81


def test_ads_wrong_chip_id_is_refused():
    drv, emu, _ = ads_pair(np.zeros((2, 10)))
    emu.regs[A.ID] = 0x53  # an ADS1292 (no R)
    # a RESET restores the emulated ID: patch the reset values path instead
    orig = emu.power_on

    def power_on():
        orig()
        emu.regs[A.ID] = 0x53

    emu.power_on = power_on
    with pytest.raises(A.ADS1292RError, match="not found"):
        drv.init()


def test_ads_counts_round_trip_exactly():
    # every 0.5 uV count the firmware uses comes back exactly through 24-bit codes
    rng = np.random.default_rng(1)
    counts = np.concatenate([np.arange(-3000, 3000), rng.integers(-(1 << 19) + 1, 1 << 19, 20000),
                             [A.EMG_MAX, -A.EMG_MAX, 1 << 18, -(1 << 18)]])
    n = len(counts)
    emg = np.stack([counts / 2.0, -counts[::-1] / 2.0])
    drv, emu, now = ads_pair(emg)
    drv.init()
    out = array("i", bytes(4 * 2 * n))
    got = [0]

    def irq(pin):
        i = got[0]
        assert drv.read_into(out, i, n) == 0
        got[0] = i + 1

    drv.drdy.irq(handler=irq, trigger=Pin.IRQ_FALLING)
    drv.start()
    assert emu.run_until(n * 1000) == n
    assert got[0] == n and emu.missed == 0
    res = np.frombuffer(out, dtype=np.int32).reshape(2, n)
    assert np.array_equal(res[0], counts)
    assert np.array_equal(res[1], -counts[::-1])


def test_ads_lead_off_bits_in_the_status_word():
    drv, emu, _ = ads_pair(np.ones((2, 50)) * 100.0)
    drv.init()
    out = array("i", bytes(8))
    seen = []
    drv.drdy.irq(handler=lambda p: seen.append(drv.read_into(out, 0, 1)), trigger=Pin.IRQ_FALLING)
    drv.start()
    emu.run_until(3000)
    emu.set_electrodes_off(A.LOFF_IN2P | A.LOFF_IN2N)
    emu.run_until(6000)
    assert seen == [0, 0, 0, 0x0C, 0x0C, 0x0C]
    assert out[0] == 200 and out[1] == 0  # a disconnected input reads 0
    drv.stop()
    assert drv.read_reg(A.LOFF_STAT) == 0x0C


def test_ads_unread_frames_are_counted_and_drdy_pulses():
    drv, emu, _ = ads_pair(np.zeros((2, 20)))
    drv.init()
    edges = []
    drv.drdy.irq(handler=lambda p: edges.append(1), trigger=Pin.IRQ_FALLING)
    drv.start()
    emu.run_until(5000)
    assert len(edges) == 5  # one falling edge per conversion even when nobody reads
    assert emu.missed == 4


def test_ads_gain_too_low_for_the_unit():
    with pytest.raises(A.ADS1292RError):
        A.multiplier(1)


# --- LSM6DSOX -----------------------------------------------------------------------------------

def imu_pair(m=400, seed=0):
    rng = np.random.default_rng(seed)
    acc_mg = rng.integers(-15990, 15990, (m, 3))
    gyr = rng.integers(-8191, 8192, (m, 3))
    now = Now()
    i2c = I2C(0)
    emu = LSM6DSOXEmu(acc_mg / 1000.0, gyr / 10.0, now, Pin("INT1", Pin.IN, 0))
    i2c.attach(L.ADDR, emu)
    drv = L.LSM6DSOX(i2c, int1=emu.int1)
    return drv, emu, now, acc_mg, gyr


def test_lsm_init_and_who_am_i():
    drv, emu, *_ = imu_pair()
    drv.init(wtm=20)
    assert emu.regs[L.CTRL1_XL] == 0x44 and emu.regs[L.CTRL2_G] == 0x4C  # 104 Hz, 16 g, 2000 dps
    assert emu.regs[L.CTRL3_C] == L.BDU | L.IF_INC
    assert emu.regs[L.FIFO_CTRL3] == 0x44 and emu.regs[L.FIFO_CTRL1] == 20


def test_lsm_missing_device_is_reported():
    drv = L.LSM6DSOX(I2C(0))
    with pytest.raises(L.LSM6DSOXError, match="does not answer"):
        drv.init()


def test_lsm_fifo_samples_round_trip_with_tags_and_watermark():
    drv, emu, now, acc, gyr = imu_pair()
    drv.init(wtm=40)
    drv.fifo_start()
    now.us = 99_000  # slots 0..10 (104 Hz)
    assert drv.fifo_level() == 22
    assert not drv.status2 & L.FIFO_WTM_IA and emu.int1.value() == 0
    now.us = 200_000
    assert drv.fifo_level() == 2 * 21
    assert drv.status2 & L.FIFO_WTM_IA and emu.int1.value() == 1
    out = array("i", bytes(4 * 6 * 64))
    k = drv.read_fifo(out, 0, 64)
    assert k == 21
    got = np.frombuffer(out, dtype=np.int32)[:6 * k].reshape(k, 6)
    assert np.array_equal(got[:, :3], acc[:k]) and np.array_equal(got[:, 3:], gyr[:k])


def test_lsm_tags_carry_sensor_and_slot_counter():
    drv, emu, now, *_ = imu_pair()
    drv.init()
    drv.fifo_start()
    now.us = 30_000
    tags = []
    for _ in range(drv.fifo_level()):
        drv.i2c.readfrom_mem_into(L.ADDR, L.FIFO_DATA_OUT_TAG, drv.word)
        tags.append((drv.word[0] >> 3, (drv.word[0] >> 1) & 3))
    assert tags == [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3)]


def test_lsm_continuous_mode_overrun_keeps_newest():
    drv, emu, now, acc, _ = imu_pair(m=2000)
    drv.init()
    drv.fifo_start()
    now.us = 5_000_000  # 521 slots > FIFO capacity
    assert drv.fifo_level() == FIFO_WORDS
    assert drv.status2 & L.FIFO_OVR_IA and drv.overruns == 1
    out = array("i", bytes(4 * 6 * 4))
    assert drv.read_fifo(out, 0, 4) == 4
    first = 521 - FIFO_WORDS // 2
    assert list(out[:3]) == list(acc[first])
