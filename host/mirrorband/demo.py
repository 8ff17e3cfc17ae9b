"""``mirrorband demo``: the whole product with no hardware.

One process, one asyncio loop, nothing left behind: it starts the virtual radio hub
(:class:`mirrorband.vradio.hub.Radio`, in-process), two virtual bands on it (left and right
wrist) and opens the terminal UI with a :class:`mirrorband.blecontroller.BleController`
on the radio's host controller -- the same BLE code path as real bands.

Each band runs the firmware's BLE service (``mbfw.bleservice`` on the virtual radio's
MicroPython ``bluetooth``), protocol handler (``mbfw.handler``), key identity
(``mbfw.identity``) and event log (``mbfw.eventlog``, on disk under the demo data
directory). Its task runner replays a simulated patient with moderate mirror dystonia of
the right hand (``mirrorband simulate`` scenario ``moderate-R``, recorded for the protocol
the host configured) through the firmware's detector (exact host port) and, in real time,
logs each detected burst with session markers and streams it live to the host, as the
band app does.

The bands are provisioned on first use with fresh 256-bit keys kept in the demo's own
keystore (``<data dir>/demo/keys.json``), never in the user's keystore or store unless
``--data-dir`` says so. Quitting the UI (q), Ctrl-C or a crash stops the bands, the
host adapter and the hub (``finally``); no process is started.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .keystore import BandKey, Keystore

SCENARIO = "moderate-R"
PATIENT = "demo-001"
_KINDS = {1: "REST", 2: "WRITE L", 3: "WRITE R"}


def demo_dir(data_dir: str | Path | None = None) -> Path:
    """Where the demo keeps its keys, band logs and store (``<user data>/demo`` by default)."""
    from .keystore import data_dir as user_data

    return Path(data_dir) if data_dir is not None else user_data() / "demo"


class _Patient:
    """Detected events of the simulated patient per task protocol (computed once per protocol)."""

    def __init__(self, scenario: str, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self._cache: dict[tuple[tuple[int, int], ...], list[tuple[int, ...]]] = {}
        self._lock = asyncio.Lock()

    async def events(self, points: list[tuple[int, int]]) -> list[tuple[int, ...]]:
        key = tuple(points)
        async with self._lock:
            if key not in self._cache:
                self._cache[key] = await asyncio.to_thread(self._compute, points)
        return self._cache[key]

    def _compute(self, points: list[tuple[int, int]]) -> list[tuple[int, ...]]:
        from .replay import replay_events
        from .simulate import simulate

        proto = [(_KINDS[k], (points[i + 1][0] - t) / 1000.0) for i, (t, k) in enumerate(points[:-1])
                 if k in _KINDS]
        rec = simulate(self.scenario, seed=self.seed, protocol=proto)
        return sorted(replay_events(rec, "numpy"), key=lambda e: e[5])


class _DemoDevice:
    """The band app interface of ``mbfw.handler`` for one virtual band (see the module docstring)."""

    def __init__(self, band: DemoBand) -> None:
        from mbfw.config import Config

        self.band = band
        self.cfg = Config()
        self.points: list[tuple[int, int]] = []
        self.session: int | None = None
        self.step = 0
        self.offset_us = 0
        self.runner: asyncio.Task[None] | None = None
        self.battery = 92 - 7 * band.hand

    def info(self) -> tuple[bytes, str, str]:
        from mbfw import VERSION

        return self.band.band_id, "virtual", VERSION

    def status(self) -> tuple[int, int, int]:
        return (2 if self.session is not None else 0), self.step, self.battery

    def now_us(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def set_time(self, us: int) -> None:
        self.offset_us += us - self.now_us()

    def set_task(self, points: list[tuple[int, int]]) -> None:
        from mbfw.protocol import ERR_BUSY, CommandError

        if self.session is not None:
            raise CommandError(ERR_BUSY, "task running")
        self.points = list(points)

    def start_task(self, session: int) -> None:
        from mbfw.protocol import ERR_BUSY, CommandError

        if self.session is not None:
            raise CommandError(ERR_BUSY, "task running")
        if not self.points:
            raise ValueError("no task set")
        self.session = session
        self.runner = asyncio.get_running_loop().create_task(self._run(session, list(self.points)))

    def stop_task(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def calibrate(self, ms: int) -> None:
        pass

    def get_config(self) -> Any:
        return self.cfg

    def set_config(self, cfg: Any) -> None:
        self.cfg = cfg

    def reboot(self) -> None:
        pass

    async def _run(self, session: int, points: list[tuple[int, int]]) -> None:
        from mbfw.events import pack
        from mbfw.logrec import SESSION_START, SESSION_STOP, T_EVENT, T_SESSION, session_payload

        b = self.band
        t0 = self.now_us() // 1000
        mask = 0x3FFFFFFF
        b.log.append(T_SESSION, session_payload(session, SESSION_START, b.hand, len(points), t0 & mask,
                                                self.now_us() // 1_000_000))
        try:
            mine = [e for e in await b.patient.events(points) if e[0] == b.hand]
            end = points[-1][0]
            for e in mine:
                await self._until(t0, e[5], points)
                ev = pack([e[0], e[1], e[2], e[3], (t0 + e[4]) & mask, (t0 + e[5]) & mask, *e[6:]])
                b.log.append(T_EVENT, ev)
                b.service.live_event(ev)
            await self._until(t0, end, points)
        finally:
            now = self.now_us() // 1000
            b.log.append(T_SESSION, session_payload(session, SESSION_STOP, b.hand, len(points), now & mask, 0))
            self.session, self.step, self.runner = None, 0, None
            b.service.refresh()

    async def _until(self, t0: int, t_ms: int, points: list[tuple[int, int]]) -> None:
        while True:
            el = self.now_us() // 1000 - t0
            self.step = max((k for t, k in points if t <= el), default=0) if el < points[-1][0] else 0
            if el >= t_ms:
                return
            await asyncio.sleep(min(0.25, (t_ms - el) / 1000))


class DemoBand:
    """One virtual band on ``radio``: firmware BLE service, handler, identity, event log."""

    def __init__(self, radio: Any, hand: int, root: Path, key: bytes, patient: _Patient) -> None:
        from mbfw.bleservice import BleService
        from mbfw.eventlog import EventLog
        from mbfw.fsio import OsFS
        from mbfw.handler import Handler
        from mbfw.identity import Identity, MemStore

        from .client import aes_ctr
        from .vradio import mpble

        self.hand = hand
        self.name = f"Mirrorband {'LR'[hand]}"
        self.band_id = hashlib.sha256(b"mirrorband-demo" + bytes((hand,))).digest()[:8]
        self.patient = patient
        root.mkdir(parents=True, exist_ok=True)
        self.ble = mpble.BLE(radio.endpoint(f"band-{'LR'[hand]}"), name=self.name)
        self.device = _DemoDevice(self)
        self.log = EventLog(OsFS(), str(root), seg_size=16384, nseg=64)
        self.log.recover()
        self.identity = Identity(MemStore())
        self.identity.provision(key, hand, PATIENT)
        self.handler = Handler(self.device, self.log, self.identity, ctr=aes_ctr)
        self.service = BleService(mpble, self.ble, self.handler, self.name, hand, secure=True)
        self.task: asyncio.Task[Any] | None = None

    async def start(self) -> DemoBand:
        self.task = asyncio.get_running_loop().create_task(self.service.run())
        await asyncio.sleep(0)
        await self.ble.settle()
        return self

    async def stop(self) -> None:
        self.device.stop_task()
        self.service.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 2.0)
            except (TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001 - shutting down
                self.task.cancel()
        await self.ble.close()


def _keys(ks: Keystore) -> dict[int, bytes]:
    # provision on first use: a new key per band, kept in the demo's keystore
    out = {}
    for hand in (0, 1):
        band_id = hashlib.sha256(b"mirrorband-demo" + bytes((hand,))).digest()[:8].hex()
        rec = ks.get(band_id)
        if rec is None or not rec.active:
            rec = BandKey(band_id, secrets.token_bytes(32), "LR"[hand], PATIENT, counter=0, active=True)
            ks.put(rec)
        out[hand] = rec.key
    return out


async def run_demo(data_dir: str | Path | None = None, *, seed: int = 7, scenario: str = SCENARIO,
                   body: Callable[[Any, Path], Awaitable[int]] | None = None,
                   progress: Callable[[str], object] | None = None) -> int:
    """Start hub and bands, run ``body(controller, store_dir)`` (default: the TUI), stop everything."""
    from .blecontroller import BleController
    from .vradio.bleak_backend import BumbleAdapter
    from .vradio.hub import Radio

    say = progress or (lambda _m: None)
    root = demo_dir(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    ks = Keystore(root / "keys.json")
    keys = _keys(ks)
    store_dir = root / "store"
    radio = Radio()
    bands: list[DemoBand] = []
    ctl: BleController | None = None
    try:
        say(f"starting the virtual radio and two virtual bands (data in {root})")
        patient = _Patient(scenario, seed)
        for hand in (0, 1):
            bands.append(await DemoBand(radio, hand, root / "bands" / "LR"[hand], keys[hand], patient).start())
        adapter = BumbleAdapter(radio.endpoint("host"))
        ctl = BleController(store_dir=store_dir, keystore=ks, scanner_backend=adapter.scanner_backend,
                            client_backend=adapter.client_backend, adapter=adapter,
                            description=f"demo: virtual bands, simulated patient {scenario}")
        if body is None:
            body = _tui
        return await body(ctl, store_dir)
    finally:
        if ctl is not None:
            await ctl.close()
        for b in bands:
            await b.stop()
        await radio.close()


async def _tui(ctl: Any, store_dir: Path) -> int:
    from .tui import MirrorbandApp

    app = MirrorbandApp(ctl, store_dir)
    await app.run_async()
    return app.return_code or 0


def main(data_dir: str | Path | None = None, seed: int = 7) -> int:
    """Run the demo with the TUI (needs a terminal)."""
    def say(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    return asyncio.run(run_demo(data_dir, seed=seed, progress=say))
