"""One virtual band (firmware on emulated hardware) and the world that drives them.

A :class:`VirtualBand` boots the unchanged firmware (``mbfw.main.build``)
on the board of ``boards/virtual/board.py``; the firmware's asyncio tasks run
on the caller's event loop. A :class:`World` holds the simulation's reference
time and moves the emulated chips forward:

* **fast** mode: while a band samples, time advances 100 ms at a time, as fast
  as the bands process it (a band more than :data:`MAX_BACKLOG` blocks behind
  holds the others back; nothing is dropped); while no band samples, time
  runs at the host's pace so that consoles and tools see a live band;
* **real-time** mode: time follows the host clock; every 5 ms each band's
  ADS1292R does the conversions due by then, so the sample count never drifts
  from 1000 per second of band time.

Per sample, the path is the chip's: a conversion latches a frame and pulls
DRDY low, which calls the firmware's IRQ handler, which reads the frame over
SPI into the ring buffer; no asyncio scheduling per sample.

Peer activity before BLE: :func:`connect_peers` wires the two bands' activity
directly (``PeerLink`` in lockstep), which gives exactly the classification
``mirrorband replay`` computes. When a band goes down, the other one goes on
with the peer unknown (as when the beacon is lost).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from mbfw.app import ST_CALIBRATING, ST_RUNNING, App, PeerLink
from mbfw.config import HAND_L, HAND_R, Config
from mbfw.fsio import PowerCut
from mbfw.logrec import T_EVENT, T_SESSION, parse_records, unpack_session
from mbfw.main import build, build_console, build_handler, build_radio
from mbfw.main import run as run_firmware
from mirrorband.sim.virtual.clock import TrueTime, VirtualClock
from mirrorband.sim.virtual.flash import Flash
from mirrorband.sim.virtual.signals import BandSignals, Session

REPO = Path(__file__).resolve().parents[4]
BOARD_PY = REPO / "boards" / "virtual" / "board.py"
MAX_BACKLOG = 3  # blocks a band may lag in fast mode before time waits for it
FAST_STEP_US = 100_000
REAL_TICK_S = 0.005


def board_module() -> ModuleType:
    """boards/virtual/board.py, the virtual board's factory (loaded once, as module ``board``)."""
    mod = sys.modules.get("mirrorband_virtual_board")
    if mod is None:
        spec = importlib.util.spec_from_file_location("mirrorband_virtual_board", BOARD_PY)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {BOARD_PY}")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["mirrorband_virtual_board"] = mod
    return mod


class VirtualBand:
    """One band: hardware (emulated chips, clock, flash) and its firmware across boots."""

    def __init__(self, hand: str, signals: BandSignals, true: TrueTime, flash_dir: str | Path,
                 offset_us: int = 0, drift_ppm: float = 0.0, settings: dict[str, int] | None = None,
                 bluetooth: Callable[[], Any] | None = None, session: Session | None = None) -> None:
        self.hand = hand
        self.signals = signals
        # the simulated patient both bands observe: a task set with other points re-simulates
        # it for them (Session.for_points, shared cache: both bands get the same signals)
        self.session = session
        self.notes: list[str] = []  # what the band could not follow (shown by the sim)
        self.true = true
        self.clock = VirtualClock(true, offset_us, drift_ppm)
        self.flash = Flash(flash_dir)
        self.settings = dict(settings or {})
        self.bluetooth = bluetooth  # factory -> (bluetooth module, BLE object), see virtual_radio()
        self.radio: tuple[Any, Any] | None = None  # (BleService, beacon.PeerRadio) of this boot
        self._ble_closing: asyncio.Task | None = None
        self.board: Any = None
        self.app: App | None = None
        self.console: Any = None  # mbfw.console.Console of the running firmware
        self.task: asyncio.Task | None = None
        self.peer: VirtualBand | None = None
        self.pty: Any = None  # the PtyConsole serving this band, if any
        self.boots = 0
        self.power_cuts = 0
        self.on_boot: list[Callable[[VirtualBand], None]] = []
        self.crash: BaseException | None = None

    # --- life cycle --------------------------------------------------------------------------
    async def wait_radio_down(self) -> None:
        """Wait until the radio of the previous boot is released (before booting again)."""
        t, self._ble_closing = self._ble_closing, None
        if t is not None:
            try:
                await t
            except Exception:  # noqa: BLE001 - already gone
                pass

    async def shutdown(self) -> None:
        """Power off for good (end of a simulation): firmware stopped, radio released."""
        if self.alive:
            await self.power_cut()
        await self.wait_radio_down()

    def boot(self, fs_budget: int = -1) -> App:
        """Power on: build the board, run the firmware's start-up (log recovery), start its tasks."""
        self.board = board_module().make(self.hand, self.signals, self.clock, self.flash,
                                         fs_budget=fs_budget, bluetooth=self.bluetooth)
        app = build(self.board)
        app.cfg = Config(hand=HAND_L if self.hand == "L" else HAND_R, **self.settings)
        app.peer_in = PeerLink()  # lockstep once a peer is wired (connect_peers)
        if self.session is not None:
            self._follow_tasks(app)
        handler = build_handler(app, self.board.fs)
        self.console = build_console(app, self.board.fs, handler)
        self.radio = build_radio(app, self.board, handler) if self.bluetooth is not None else None
        self.app = app
        self.boots += 1
        self.crash = None
        self._wire()
        self.task = asyncio.get_running_loop().create_task(self._run(app))
        for f in self.on_boot:
            f(self)
        return app

    def _follow_tasks(self, app: App) -> None:
        # the patient does what the task asks: when the firmware accepts a task (TASK_SET over
        # BLE, the console or the sim), the sensors' inputs become the patient simulated for
        # exactly those steps; they play from the start when the task starts (ADS1292R START,
        # LSM6DSOX FIFO). A recording plays unchanged whatever the task (docs/virtual.md).
        accept = app.set_task

        def set_task(points: Any) -> None:
            accept(points)  # validates; refuses while a task runs (nothing changes then)
            self.follow(list(points))

        setattr(app, "set_task", set_task)  # noqa: B010 - instance hook, the firmware is unchanged

    def follow(self, points: list[tuple[int, int]]) -> bool:
        """Feed the chips the session's patient doing the task ``points``; False if unchanged."""
        if self.session is None:
            return False
        from mirrorband.recording import RecordingError

        try:
            variant = self.session.for_points(points)
        except RecordingError as e:
            self.notes.append(f"band {self.hand}: the simulated patient cannot follow this task ({e})")
            return False
        if variant is None or variant.bands[self.hand] is self.signals:
            return False
        self.signals = variant.bands[self.hand]
        if self.board is not None:
            feed_signals(self.board, self.signals)
        return True

    async def _run(self, app: App) -> None:
        try:
            await run_firmware(app, self.radio)
        except PowerCut:
            self._down()
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the firmware crashed: the band would reset
            self.crash = e
            self._down()
            raise
        if app.reboot_requested:
            self._down()
            await self.wait_radio_down()
            self.boot()

    def _down(self) -> None:
        if self.board is not None:
            self.board.ads_emu.converting = False
        if self.radio is not None:
            # the radio goes down with the band: its links drop, advertising stops
            service = self.radio[0]
            service.stop()
            self.radio = None
            self._ble_closing = asyncio.get_running_loop().create_task(service.ble.close())
        if self.peer is not None and self.peer.app is not None:
            self.peer.app.peer_out = []
            if self.peer.app.peer_in is not None:
                self.peer.app.peer_in.close()
        self.app = None
        self.console = None

    def _wire(self) -> None:
        p = self.peer
        if self.app is None or p is None or p.app is None:
            return
        assert self.app.peer_in is not None and p.app.peer_in is not None
        self.app.peer_in.lockstep = True
        p.app.peer_in.lockstep = True
        self.app.peer_out = [p.app.peer_in.put]
        p.app.peer_out = [self.app.peer_in.put]

    @property
    def alive(self) -> bool:
        return self.app is not None

    async def power_cut(self) -> None:
        """Cut the power now: the firmware stops between two instructions, the flash keeps what it has."""
        self.flash.cut()
        self.power_cuts += 1
        t = self.task
        self._down()
        if t is not None and not t.done():
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, PowerCut):
                pass

    async def soft_reboot(self) -> App:
        """Ctrl-D / machine.soft_reset(): the firmware restarts; the flash stays powered."""
        t = self.task
        if self.app is not None:
            self.app.stopped = True
        self._down()
        if t is not None and not t.done():
            t.cancel()
            try:
                await t
            except (asyncio.CancelledError, PowerCut):
                pass
        await self.wait_radio_down()
        return self.boot()

    # --- hardware time ------------------------------------------------------------------------
    def advance_to(self, true_us: int) -> int:
        if self.board is None or self.app is None:
            return 0
        return self.board.ads_emu.run_until(self.clock.band_us(true_us))

    @property
    def sampling(self) -> bool:
        return self.app is not None and self.board.ads_emu.converting

    def backlog(self) -> int:
        return self.app.sampler.pending() if self.app is not None else 0

    @property
    def state(self) -> int:
        return self.app.state if self.app is not None else -1

    # --- session -------------------------------------------------------------------------------
    def start_session(self, points: list[tuple[int, int]], duration_ms: int, session_id: int = 1) -> None:
        if self.app is None:
            raise RuntimeError("band is off")
        self.app.set_task(points)
        self.app.start_task(session_id, duration_ms)

    def log_records(self) -> list[tuple[int, int, bytes]]:
        """Every record in the band's log (reads its flash through the firmware's EventLog)."""
        from mbfw.eventlog import EventLog

        log = self.app.log if self.app is not None else None
        if log is None:
            log = EventLog(self.flash.inner, "/log")
            log.recover()
        out: list[tuple[int, int, bytes]] = []
        buf = bytearray(4096)
        seq = 1
        while True:
            n = log.read_into(seq, buf)
            if n == 0:
                break
            recs = list(parse_records(bytes(buf[:n])))
            out.extend(recs)
            seq = recs[-1][0] + 1
        return out


def feed_signals(board: Any, signals: BandSignals) -> None:
    """Replace the analog inputs of an idle band's emulated chips (they play from their next start)."""
    ads = board.ads_emu
    ads.emg_uv = np.asarray(signals.emg_uv, dtype=np.float64)
    ads._data_key = None  # noqa: SLF001 - the codes are computed again at START
    ads._status_dirty = True  # noqa: SLF001
    imu = board.imu_emu
    if imu is not None and signals.acc_g is not None and signals.gyr_dps is not None:
        imu.acc_g = np.asarray(signals.acc_g, dtype=np.float64)
        imu.gyr_dps = np.asarray(signals.gyr_dps, dtype=np.float64)
        imu._key = None  # noqa: SLF001 - the FIFO words are computed again


def connect_peers(a: VirtualBand, b: VirtualBand) -> None:
    """The pre-BLE peer path: each band's activity goes straight to the other (lockstep)."""
    a.peer = b
    b.peer = a
    a._wire()


def session_events(records: list[tuple[int, int, bytes]]) -> list[tuple[tuple[int, ...], int]]:
    """(event fields, session t0 ms) for every event record, with the start of its session."""
    from mbfw.events import unpack

    t0 = 0
    out = []
    for _, typ, payload in records:
        if typ == T_SESSION:
            s = unpack_session(payload)
            if s[1] == 1:
                t0 = s[4]
        elif typ == T_EVENT:
            out.append((tuple(unpack(payload)), t0))
    return out


class World:
    """The bands' common reference time and the driver that moves their hardware."""

    def __init__(self, fast: bool = True) -> None:
        self.true = TrueTime(fast)
        self.fast = fast
        self.bands: list[VirtualBand] = []
        self.stopping = False
        self.samples = 0
        self.wall_s = 0.0

    def add(self, band: VirtualBand) -> VirtualBand:
        self.bands.append(band)
        return band

    def busy(self) -> bool:
        return any(b.alive and b.state in (ST_CALIBRATING, ST_RUNNING) for b in self.bands)

    async def run(self, until: Callable[[], bool] | None = None) -> None:
        """Drive the hardware until ``until()`` is true or :meth:`stop` is called."""
        t0 = time.monotonic()
        try:
            if self.fast:
                await self._run_fast(until)
            else:
                await self._run_real(until)
        finally:
            self.wall_s += time.monotonic() - t0

    def stop(self) -> None:
        self.stopping = True

    async def _run_fast(self, until: Callable[[], bool] | None) -> None:
        true = self.true
        idle_since = None
        while not self.stopping and not (until is not None and until()):
            live = [b for b in self.bands if b.sampling]
            if not live:
                # nothing streams: let time pass at the host's pace
                now = time.monotonic()
                if idle_since is not None:
                    true.advance_to(true.now_us() + int((now - idle_since) * 1e6))
                idle_since = now
                await asyncio.sleep(0.01)
                continue
            idle_since = None
            if any(b.backlog() >= MAX_BACKLOG for b in live):
                await asyncio.sleep(0)
                continue
            t = true.now_us() + FAST_STEP_US
            true.advance_to(t)
            for b in live:
                self.samples += b.advance_to(t)
            await asyncio.sleep(0)

    async def _run_real(self, until: Callable[[], bool] | None) -> None:
        while not self.stopping and not (until is not None and until()):
            t = self.true.now_us()
            for b in self.bands:
                self.samples += b.advance_to(t)
            await asyncio.sleep(REAL_TICK_S)
