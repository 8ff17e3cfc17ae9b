"""The radio hub as a separate process, reached over Bumble HCI transports on 127.0.0.1;
a central process that dies mid-connection; the hub keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner

from mirrorband.sim.vradio import mpble
from mirrorband.sim.vradio.bleak_backend import BumbleAdapter

from .tiny_peripheral import CONTROL_UUID, DATA_UUID, SERVICE_UUID, TinyPeripheral

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "host"), str(REPO / "firmware"), str(REPO)])}

CENTRAL = textwrap.dedent(
    """
    import asyncio, sys
    from bleak import BleakClient, BleakScanner
    from mirrorband.sim.vradio.bleak_backend import BumbleAdapter

    async def main():
        adapter = BumbleAdapter(sys.argv[1], name="doomed")
        dev = await BleakScanner.find_device_by_name("MB-P", timeout=5, backend=adapter.scanner_backend)
        client = BleakClient(dev, backend=adapter.client_backend)
        await client.connect()
        print("connected", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


async def start_hub(*names: str) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mirrorband.sim.vradio.hub",
        *names,
        "--untimed",
        stdout=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdout is not None
    specs: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        if line == "ready":
            return proc, specs
        assert line, "hub exited before ready"
        name, spec = line.split()
        assert spec.startswith("tcp-client:127.0.0.1:")
        specs[name] = spec


async def stop(proc: asyncio.subprocess.Process) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 10)


async def until(predicate, timeout: float = 5.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)


async def test_hub_process_serves_band_and_host_and_survives_a_dying_central() -> None:
    hub, specs = await start_hub("host", "host2", "band")
    try:
        ble = mpble.BLE(specs["band"], name="band-P")
        p = TinyPeripheral(mpble, ble, "MB-P")
        p.advertise()
        await ble.settle()
        assert ble.errors == []

        # A central in another process connects, then dies without disconnecting.
        central = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CENTRAL, specs["host2"], stdout=subprocess.PIPE, env=ENV
        )
        assert central.stdout is not None
        line = await asyncio.wait_for(central.stdout.readline(), 30)
        assert line.strip() == b"connected"
        await until(lambda: len(p.connections) == 1)
        central.kill()
        await central.wait()
        await until(lambda: not p.connections)  # the band sees the link drop
        assert p.events.count(2) == 1

        # The band advertises again; a central on the same controller port connects.
        p.advertise()
        await ble.settle()
        for spec in (specs["host2"], specs["host"]):
            adapter = BumbleAdapter(spec)
            dev = await BleakScanner.find_device_by_filter(
                lambda _d, adv: adv.local_name == "MB-P",
                timeout=5,
                service_uuids=[SERVICE_UUID],
                backend=adapter.scanner_backend,
            )
            assert dev is not None
            got: list[bytes] = []
            async with BleakClient(dev, backend=adapter.client_backend) as client:
                assert client.mtu_size == 247
                assert await client.read_gatt_char(DATA_UUID) == b"hello"
                await client.start_notify(CONTROL_UUID, lambda _c, d: got.append(bytes(d)))  # noqa: B023
                await client.write_gatt_char(CONTROL_UUID, b"over-tcp", response=True)
                await until(lambda: got)  # noqa: B023
                assert got == [b"ack:over-tcp"]
            await adapter.close()
            await until(lambda: not p.connections)
            p.advertise()
            await ble.settle()
        await ble.close()
    finally:
        assert await stop(hub) == 0


async def test_hub_process_refuses_duplicate_names() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mirrorband.sim.vradio.hub",
        "a",
        "a",
        stderr=subprocess.PIPE,
        env=ENV,
    )
    _out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode().strip() == "error: controller names must be unique"
