"""The virtual band's hardware: what ``boards/virtual/board.py`` hands the firmware.

A :class:`VirtualBoard` carries the same attributes a real board factory
provides (see ``boards/virtual/board.json``): ``spi`` with the ADS1292R on
``ads_cs``/``ads_drdy``, ``i2c`` with the LSM6DSOX (absent when the signal
source has no IMU: the firmware then finds no device, as on a band whose IMU
failed), ``led``, ``motor`` (PWM), ``battery`` (ADC), ``button``, ``fs`` (the
flash), ``clock``, ``uid``; and, for the simulation, the emulated chips.
``bluetooth`` is the hook for the radio: ``None`` until the BLE layer provides
a factory (``bluetooth()`` returning a MicroPython-compatible ``BLE``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mbfw import lsm6dsox
from mirrorband.sim.virtual.ads1292r_emu import ADS1292REmu
from mirrorband.sim.virtual.clock import VirtualClock
from mirrorband.sim.virtual.flash import Flash
from mirrorband.sim.virtual.lsm6dsox_emu import LSM6DSOXEmu
from mirrorband.sim.virtual.machine import ADC, I2C, PWM, SPI, Pin
from mirrorband.sim.virtual.signals import BandSignals

BOARD_NAME = "virtual"


@dataclass
class VirtualBoard:
    name: str
    hand: str
    uid: bytes
    clock: VirtualClock
    spi: SPI
    ads_cs: Pin
    ads_drdy: Pin
    ads_start: Pin | None
    ads_reset: Pin | None
    i2c: I2C
    imu_int1: Pin
    led: Pin
    motor: PWM
    battery: ADC
    button: Pin
    fs: Any
    flash: Flash
    ads_emu: ADS1292REmu
    imu_emu: LSM6DSOXEmu | None
    bluetooth: Callable[[], Any] | None = None
    led_log: list[tuple[int, int]] = field(default_factory=list)
    reset_requested: bool = False

    def reset(self) -> None:
        """machine.reset(): the band restarts (the simulation reboots the firmware)."""
        self.reset_requested = True


def band_uid(hand: str, flash_root: str) -> bytes:
    return hashlib.sha256(f"mirrorband-virtual:{hand}:{flash_root}".encode()).digest()[:8]


def build_board(hand: str, signals: BandSignals, clock: VirtualClock, flash: Flash,
                battery_mv: float = 3950.0, fs_budget: int = -1, bluetooth: Callable[[], Any] | None = None,
                ) -> VirtualBoard:
    """Wire the emulated chips to virtual buses and pins for one band (one boot)."""
    spi = SPI(1, baudrate=2_000_000, polarity=0, phase=1)
    drdy = Pin("ADS_DRDY", Pin.IN, 1)
    ads = ADS1292REmu(signals.emg_uv, drdy, clock.ticks_us)
    if not signals.has_ext:
        ads.set_electrodes_off(0x0C)  # no EXT electrodes: IN2P/IN2N lead-off
    cs = spi.attach(ads, "ADS_CS")
    i2c = I2C(0, freq=400_000)
    int1 = Pin("IMU_INT1", Pin.IN, 0)
    imu = None
    if signals.acc_g is not None and signals.gyr_dps is not None:
        imu = LSM6DSOXEmu(signals.acc_g, signals.gyr_dps, clock.ticks_us, int1)
        i2c.attach(lsm6dsox.ADDR, imu)
    led_log: list[tuple[int, int]] = []
    led = Pin("LED", Pin.OUT, 0, lambda v: led_log.append((clock.ticks_ms(), v)) or None)
    return VirtualBoard(
        name=BOARD_NAME, hand=hand, uid=band_uid(hand, str(flash.root)), clock=clock,
        spi=spi, ads_cs=cs, ads_drdy=drdy, ads_start=None, ads_reset=None,
        i2c=i2c, imu_int1=int1, led=led, motor=PWM("MOTOR", clock), battery=ADC("VBAT", lambda: battery_mv / 2),
        button=Pin("BUTTON", Pin.IN, 1), fs=flash.boot(fs_budget), flash=flash, ads_emu=ads, imu_emu=imu,
        bluetooth=bluetooth, led_log=led_log,
    )
