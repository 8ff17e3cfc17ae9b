"""Band-side harness for BLE tests: the firmware's BleService on mpble (the virtual
radio's MicroPython `bluetooth`), the real Handler, Identity and EventLog, and a small
device standing in for the app (clock, status, task)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
from pathlib import Path

from mbfw import events
from mbfw import protocol as P
from mbfw.bleservice import BleService
from mbfw.config import Config
from mbfw.eventlog import EventLog
from mbfw.fsio import OsFS
from mbfw.handler import Handler
from mbfw.identity import Identity, MemStore
from mbfw.logrec import T_EVENT
from mirrorband.bands.client import aes_ctr
from mirrorband.sim.vradio import mpble
from mirrorband.sim.vradio.hub import Radio

KEY = bytes(range(32))


class Device:
    """The band app interface of mbfw.handler, with a clock the test controls."""

    def __init__(self, band_id: bytes, now_us=None) -> None:  # noqa: ANN001
        self.band_id = band_id
        self.cfg = Config()
        self.points: list = []
        self.session = None
        self._now = now_us
        self._set_offset = 0

    def info(self):  # noqa: ANN201
        return self.band_id, "virtual", "0.1.0"

    def status(self):  # noqa: ANN201
        return (2 if self.session is not None else 0), 0, 87

    def now_us(self) -> int:
        base = self._now() if self._now is not None else int(asyncio.get_running_loop().time() * 1e6)
        return base + self._set_offset

    def set_time(self, us: int) -> None:
        self._set_offset += us - self.now_us()

    def set_task(self, points) -> None:  # noqa: ANN001
        self.points = list(points)

    def start_task(self, session: int) -> None:
        self.session = session

    def stop_task(self) -> None:
        self.session = None

    def calibrate(self, ms: int) -> None:
        pass

    def get_config(self) -> Config:
        return self.cfg

    def set_config(self, cfg: Config) -> None:
        self.cfg = cfg

    def reboot(self) -> None:
        pass


def random_event(rng: random.Random, hand: int) -> bytes:
    ev = [hand, rng.randint(1, 3), rng.randint(0, 1), 0, rng.randint(0, 1 << 29),
          rng.randint(0, 1 << 29), rng.randint(0, 65535), rng.randint(0, 1 << 20),
          rng.randint(-1, 100), rng.randint(-1, 900), rng.randint(0, 3)]
    return events.pack(ev)


class Band:
    """One virtual band on ``radio``: BLE service + handler + event log on disk."""

    def __init__(self, radio: Radio | None, name: str, root: Path, *, hand: int = 0, secure: bool = True,
                 mtu: int = 247, key: bytes | None = KEY, now_us=None, hci=None) -> None:  # noqa: ANN001
        self.name = name
        self.ble = mpble.BLE(hci if hci is not None else radio.endpoint(name), name=name)
        self.device = Device(hashlib.sha256(name.encode()).digest()[:8], now_us)
        root.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(OsFS(), str(root), seg_size=16384, nseg=64)
        self.log.recover()
        self.identity = Identity(MemStore())
        if key is not None:
            self.identity.provision(key, hand, "P01")
        self.handler = Handler(self.device, self.log, self.identity, ctr=aes_ctr)
        self.service = BleService(mpble, self.ble, self.handler, name, hand, secure=secure, mtu=mtu)
        self.task: asyncio.Task | None = None
        self.hashes: dict[int, str] = {}

    async def start(self) -> Band:
        self.task = asyncio.get_running_loop().create_task(self.service.run())
        await asyncio.sleep(0)
        await self.ble.settle()
        assert self.ble.errors == []
        return self

    def fill(self, n: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            payload = random_event(rng, 0)
            seq = self.log.next_seq
            self.log.append(T_EVENT, payload)
            self.hashes[seq] = hashlib.sha256(struct.pack("<IB", seq, T_EVENT) + payload).hexdigest()

    async def stop(self) -> None:
        self.service.stop()
        if self.task is not None:
            await self.task
        await self.ble.close()


def record_hash(seq: int, rtype: int, payload: bytes) -> str:
    return hashlib.sha256(struct.pack("<IB", seq, rtype) + payload).hexdigest()


__all__ = ["KEY", "Band", "Device", "P", "record_hash"]
