"""Virtual board objects with the subset of MicroPython's ``machine`` API the firmware uses.

``Pin`` (value/on/off, ``irq`` with IRQ_FALLING/IRQ_RISING), ``SPI`` (write,
readinto, write_readinto; devices selected by their chip-select pins),
``I2C`` (readfrom_mem_into, readfrom_mem, writeto_mem, scan; a missing device
raises ``OSError(19)`` like MicroPython's ENODEV), ``ADC`` (read_u16),
``PWM`` (duty_u16, freq; every change is recorded with the band time) and
``Timer`` (periodic/one-shot callbacks on the asyncio loop).

Threading model: everything runs on the band's asyncio loop thread. A pin IRQ
handler is called synchronously when the emulated chip drives the pin (like a
hard IRQ on the band), so the firmware's handler must be short and must not
await.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from mirrorband.sim.virtual.clock import VirtualClock

ENODEV = 19


class Pin:
    """A GPIO. Outputs are set by the firmware, inputs driven by an emulated chip."""

    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 1
    IRQ_RISING = 2

    def __init__(self, name: str, mode: int = OUT, value: int = 0,
                 on_change: Callable[[int], None] | None = None) -> None:
        self.name = name
        self.mode = mode
        self._v = value
        self.on_change = on_change
        self._handler: Callable[[Pin], Any] | None = None
        self._trigger = 0
        self.edges = 0

    def init(self, mode: int = -1, pull: int = -1, value: int | None = None) -> None:
        if mode != -1:
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v: int | None = None) -> int:
        if v is None:
            return self._v
        v = 1 if v else 0
        if v != self._v:
            self._v = v
            if self.on_change is not None:
                self.on_change(v)
        return v

    __call__ = value

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)

    def irq(self, handler: Callable[[Pin], Any] | None = None, trigger: int = 3, hard: bool = False) -> None:
        self._handler = handler
        self._trigger = trigger if handler is not None else 0

    def drive(self, v: int) -> None:
        """Emulator side: drive an input pin; calls the IRQ handler on a matching edge."""
        old = self._v
        self._v = v
        if old != v:
            self.edges += 1
            h = self._handler
            if h is not None and self._trigger & (self.IRQ_RISING if v else self.IRQ_FALLING):
                h(self)

    def __repr__(self) -> str:
        return f"Pin({self.name!r}, value={self._v})"


class SpiDevice(Protocol):
    def select(self, active: bool) -> None: ...
    def spi_write(self, data: Any) -> None: ...
    def spi_read(self, buf: Any, write: int = 0) -> None: ...


class SPI:
    """An SPI bus; a device takes part while its chip-select pin is low."""

    def __init__(self, bus_id: int = 1, baudrate: int = 1_000_000, polarity: int = 0, phase: int = 0,
                 **_: Any) -> None:
        self.id = bus_id
        self.baudrate = baudrate
        self.polarity = polarity
        self.phase = phase
        self.sel: SpiDevice | None = None

    def init(self, baudrate: int | None = None, polarity: int | None = None, phase: int | None = None,
             **_: Any) -> None:
        if baudrate is not None:
            self.baudrate = baudrate
        if polarity is not None:
            self.polarity = polarity
        if phase is not None:
            self.phase = phase

    def attach(self, device: SpiDevice, name: str) -> Pin:
        """Connect a device; returns its chip-select pin (active low, idle high)."""
        return CsPin(name, self, device)

    def write(self, buf: Any) -> None:
        if self.sel is not None:
            self.sel.spi_write(buf)

    def readinto(self, buf: Any, write: int = 0) -> None:
        if self.sel is not None:
            self.sel.spi_read(buf)
        else:
            for i in range(len(buf)):
                buf[i] = 0xFF  # MISO pulled up: nobody answers

    def read(self, n: int, write: int = 0) -> bytes:
        b = bytearray(n)
        self.readinto(b, write)
        return bytes(b)

    def write_readinto(self, wbuf: Any, rbuf: Any) -> None:
        self.write(wbuf)
        self.readinto(rbuf)


class CsPin(Pin):
    """Chip select of an SPI device: low routes the bus's transfers to the device.

    While selected, the bus's ``write``/``readinto`` are the device's own
    methods (one call per transfer on the per-sample path).
    """

    def __init__(self, name: str, bus: SPI, device: SpiDevice) -> None:
        super().__init__(name, Pin.OUT, 1)
        self.bus = bus
        self.device = device

    def value(self, v: int | None = None) -> int:
        if v is None:
            return self._v
        bus = self.bus
        if v:
            if not self._v:
                self._v = 1
                if bus.sel is self.device:
                    self.device.select(False)
                    bus.sel = None
                    del bus.write, bus.readinto
        elif self._v:
            self._v = 0
            if bus.sel is not None and bus.sel is not self.device:
                raise OSError(5, "two SPI devices selected")
            bus.sel = self.device
            self.device.select(True)
            bus.write = self.device.spi_write  # type: ignore[method-assign]
            bus.readinto = self.device.spi_read  # type: ignore[method-assign]
        return self._v

    __call__ = value


class I2cDevice(Protocol):
    def i2c_read(self, reg: int, buf: Any) -> None: ...
    def i2c_write(self, reg: int, data: Any) -> None: ...


class I2C:
    """An I2C bus with register-addressed devices."""

    def __init__(self, bus_id: int = 0, freq: int = 400_000, **_: Any) -> None:
        self.id = bus_id
        self.freq = freq
        self.devices: dict[int, I2cDevice] = {}

    def attach(self, addr: int, device: I2cDevice) -> None:
        self.devices[addr] = device

    def scan(self) -> list[int]:
        return sorted(self.devices)

    def _dev(self, addr: int) -> I2cDevice:
        d = self.devices.get(addr)
        if d is None:
            raise OSError(ENODEV)
        return d

    def readfrom_mem_into(self, addr: int, memaddr: int, buf: Any, addrsize: int = 8) -> None:
        self._dev(addr).i2c_read(memaddr, buf)

    def readfrom_mem(self, addr: int, memaddr: int, nbytes: int, addrsize: int = 8) -> bytes:
        b = bytearray(nbytes)
        self._dev(addr).i2c_read(memaddr, b)
        return bytes(b)

    def writeto_mem(self, addr: int, memaddr: int, buf: Any, addrsize: int = 8) -> None:
        self._dev(addr).i2c_write(memaddr, bytes(buf))


class ADC:
    """An analog input; ``source()`` returns the voltage in millivolts at the pin."""

    def __init__(self, name: str, source: Callable[[], float], vref_mv: int = 3300) -> None:
        self.name = name
        self.source = source
        self.vref_mv = vref_mv

    def read_u16(self) -> int:
        mv = max(0.0, min(float(self.vref_mv), self.source()))
        return int(mv * 65535 / self.vref_mv)

    def read_uv(self) -> int:
        return int(self.source() * 1000)


class PWM:
    """A PWM output (the vibration motor); changes are recorded as (band ms, duty)."""

    def __init__(self, name: str, clock: VirtualClock, freq: int = 200, duty_u16: int = 0) -> None:
        self.name = name
        self.clock = clock
        self._freq = freq
        self._duty = duty_u16
        self.history: list[tuple[int, int]] = []

    def freq(self, f: int | None = None) -> int:
        if f is not None:
            self._freq = f
        return self._freq

    def duty_u16(self, d: int | None = None) -> int:
        if d is not None and d != self._duty:
            if not 0 <= d <= 65535:
                raise ValueError("duty out of range")
            self._duty = d
            self.history.append((self.clock.ticks_ms(), d))
            del self.history[:-256]
        return self._duty

    def deinit(self) -> None:
        self.duty_u16(0)


class Timer:
    """machine.Timer on the asyncio loop (host time; callbacks get the timer)."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, timer_id: int = -1, **kw: Any) -> None:
        self.id = timer_id
        self._handle: asyncio.TimerHandle | None = None
        if kw:
            self.init(**kw)

    def init(self, mode: int = PERIODIC, period: int = 1000, callback: Callable[[Timer], Any] | None = None,
             freq: float | None = None) -> None:
        self.deinit()
        if freq:
            period = int(1000 / freq)
        loop = asyncio.get_event_loop()

        def fire() -> None:
            if mode == Timer.PERIODIC:
                self._handle = loop.call_later(period / 1000, fire)
            else:
                self._handle = None
            if callback is not None:
                callback(self)

        self._handle = loop.call_later(period / 1000, fire)

    def deinit(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
