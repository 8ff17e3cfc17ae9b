"""Download benchmark on the virtual radio: N events under the link timing model.

``run_download_bench(n)`` builds one band (the firmware's BleService, Handler and
EventLog on the virtual radio's MicroPython ``bluetooth``), fills its log with ``n``
events, and downloads them with :func:`mirrorband.sessions.download.download` over bleak on
the Bumble backend, as the CLI does. Returns the figures as a dict (for ``mirrorband
bench``); ``python -m mirrorband.benchmarks.ble [N]`` prints them.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import sys
import tempfile
from pathlib import Path
from typing import Any


class _Device:
    # the app interface of mbfw.handler, enough for INFO/STATUS/LOG_* requests
    def __init__(self, band_id: bytes) -> None:
        from mbfw.config import Config

        self.band_id = band_id
        self.cfg = Config()

    def info(self) -> tuple[bytes, str, str]:
        return self.band_id, "virtual", "bench"

    def status(self) -> tuple[int, int, int]:
        return 0, 0, 100

    def now_us(self) -> int:
        return int(asyncio.get_running_loop().time() * 1e6)

    def get_config(self) -> Any:
        return self.cfg


async def _bench(n: int, interval_ms: float, packets: int, mtu: int, root: Path) -> dict[str, Any]:
    from bleak import BleakScanner

    from mbfw import bleservice as S
    from mbfw import events
    from mbfw.eventlog import EventLog
    from mbfw.fsio import OsFS
    from mbfw.handler import Handler
    from mbfw.identity import Identity, MemStore
    from mbfw.logrec import T_EVENT
    from mirrorband.bands.ble.link import BandLink
    from mirrorband.bands.client import BandClient, aes_ctr
    from mirrorband.sessions.download import download
    from mirrorband.sim.vradio import mpble
    from mirrorband.sim.vradio.bleak_backend import BumbleAdapter
    from mirrorband.sim.vradio.hub import LinkTiming, Radio

    key = hashlib.sha256(b"mirrorband bench").digest()
    radio = Radio(LinkTiming(interval_ms=interval_ms, packets_per_event=packets))
    ble = mpble.BLE(radio.endpoint("MB-B"), name="MB-B")
    log = EventLog(OsFS(), str(root), seg_size=16384, nseg=64)
    log.recover()
    ident = Identity(MemStore())
    ident.provision(key, 0, "BENCH")
    handler = Handler(_Device(b"benchbnd"), log, ident, ctr=aes_ctr)
    service = S.BleService(mpble, ble, handler, "MB-B", 0, secure=True, mtu=mtu)
    rng = random.Random(1)
    for _ in range(n):
        t = rng.randint(0, 1 << 28)
        log.append(T_EVENT, events.pack([0, rng.randint(1, 3), 0, 0, t, t + rng.randint(150, 2000),
                                         rng.randint(0, 65535), rng.randint(0, 1 << 20), 50, 30, 3]))
    task = asyncio.get_running_loop().create_task(service.run())
    adapter = BumbleAdapter(radio.endpoint("host"))
    try:
        await ble.settle()
        dev = await BleakScanner.find_device_by_name("MB-B", timeout=5.0, service_uuids=[S.SERVICE_UUID],
                                                     backend=adapter.scanner_backend)
        if dev is None:
            raise RuntimeError("the bench band was not found on the virtual radio")
        link = BandLink(dev, BandClient(key, require_encryption=True), backend=adapter.client_backend)
        async with link:
            got = [0]
            res = await download(link, lambda _r: got.__setitem__(0, got[0] + 1))
        st = link.stats
        return {"events": n, "received": got[0], "seconds": round(res.seconds, 2),
                "events_per_s": round(n / res.seconds), "pages": res.pages, "mtu": link.mtu,
                "interval_ms": interval_ms, "packets_per_event": packets,
                "efficiency_data": round(st.data_frame_bytes / (st.data_notifications * (link.mtu - 3)), 3),
                "efficiency_all": round(st.frame_bytes / (st.notifications * (link.mtu - 3)), 3)}
    finally:
        await adapter.close()
        service.stop()
        await task
        await ble.close()
        await radio.close()


def run_download_bench(n: int = 10_000, interval_ms: float = 15.0, packets: int = 4,
                       mtu: int = 247) -> dict[str, Any]:
    """Download ``n`` events from a virtual band under the timing model; the figures as a dict."""
    with tempfile.TemporaryDirectory() as d:
        return asyncio.run(_bench(n, interval_ms, packets, mtu, Path(d)))


if __name__ == "__main__":  # pragma: no cover - manual use
    out = run_download_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
    print(" ".join(f"{k}={v}" for k, v in out.items()))
