"""Virtual radio, in-process: a MicroPython-style peripheral (tiny_peripheral.py on
mirrorband.sim.vradio.mpble) and a central written with bleak's public API through the
Bumble backend, on one Radio hub."""

from __future__ import annotations

import asyncio
import errno
import struct
import time

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError, BleakGATTProtocolErrorCode

from mirrorband.sim.vradio import mpble
from mirrorband.sim.vradio.bleak_backend import BumbleAdapter
from mirrorband.sim.vradio.hub import LinkTiming, Radio

from .tiny_peripheral import (
    BEACON_COMPANY,
    CONTROL_UUID,
    DATA_UUID,
    MITM_UUID,
    SECRET_UUID,
    SERVICE_UUID,
    TinyPeripheral,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(60)]

DIS_MAKER = "00002a29-0000-1000-8000-00805f9b34fb"
DIS_FW = "00002a26-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"


async def band(radio: Radio, name: str, **kwargs: object) -> TinyPeripheral:
    ble = mpble.BLE(radio.endpoint(name), name=name)
    peripheral = TinyPeripheral(mpble, ble, name, **kwargs)  # type: ignore[arg-type]
    peripheral.advertise()
    await ble.settle()
    assert ble.errors == []
    return peripheral


async def find(adapter: BumbleAdapter, name: str, timeout: float = 3.0) -> BLEDevice:
    device = await BleakScanner.find_device_by_name(
        name, timeout=timeout, service_uuids=[SERVICE_UUID], backend=adapter.scanner_backend
    )
    assert device is not None, f"{name} not found"
    return device


async def until(predicate, timeout: float = 3.0) -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


async def test_scan_connect_read_write_notify_mtu247_and_reconnect() -> None:
    radio = Radio()
    p = await band(radio, "MB-L")
    other = mpble.BLE(radio.endpoint("noise"), name="noise")
    other.active(True)
    other.gap_advertise(100000, adv_data=b"\x02\x01\x06\x06\x09NOISE")
    await other.settle()
    adapter = BumbleAdapter(radio.endpoint("host"))

    # The service UUID filter keeps the other advertiser out.
    devices = await BleakScanner.discover(
        timeout=0.5, return_adv=True, service_uuids=[SERVICE_UUID], backend=adapter.scanner_backend
    )
    assert [adv.local_name for _d, adv in devices.values()] == ["MB-L"]
    ((dev, adv),) = devices.values()
    assert SERVICE_UUID in adv.service_uuids
    assert "0000180f-0000-1000-8000-00805f9b34fb" in adv.service_uuids  # merged scan response
    assert dev.address == bytes(p.ble.config("mac")[1]).hex(":").upper()

    disconnected: list[BleakClient] = []
    for attempt in range(2):  # connect, disconnect, reconnect (with rediscovery)
        received: list[bytes] = []
        async with BleakClient(
            dev, disconnected_callback=disconnected.append, backend=adapter.client_backend
        ) as c:
            assert c.mtu_size == 247
            await until(lambda: 247 in p.mtus.values())
            assert await c.read_gatt_char(DIS_MAKER) == b"Mirrorband"
            assert await c.read_gatt_char(DIS_FW) == b"0.1.0"
            assert await c.read_gatt_char(BATTERY_LEVEL) == bytes([87])
            assert await c.read_gatt_char(DATA_UUID) == b"hello"
            await c.start_notify(CONTROL_UUID, lambda _ch, data: received.append(bytes(data)))  # noqa: B023 - used within the iteration
            command = bytes(range(200)) + bytes([attempt])
            await c.write_gatt_char(CONTROL_UUID, command, response=True)
            await c.write_gatt_char(CONTROL_UUID, b"nr", response=False)
            await until(lambda: len(received) == 2)  # noqa: B023
            assert received == [b"ack:" + command, b"ack:nr"]
            assert p.writes[-2:] == [(p.h_control, command), (p.h_control, b"nr")]
            # A full-MTU notification (244 bytes) arrives whole.
            conn = next(iter(p.connections))
            p.ble.gatts_notify(conn, p.h_data, bytes(244))
            got: list[bytes] = []
            await c.start_notify(DATA_UUID, lambda _ch, data: got.append(bytes(data)))  # noqa: B023
            p.ble.gatts_notify(conn, p.h_data, bytes(range(244)))
            await until(lambda: got)  # noqa: B023
            assert got == [bytes(range(244))]
            await c.stop_notify(DATA_UUID)
        await until(lambda: not p.connections)
        p.advertise()  # like MicroPython, advertising stops on connection
        await p.ble.settle()
    assert disconnected == []  # the callback is for unsolicited disconnections only
    assert p.events.count(1) == 2 and p.events.count(2) == 2
    await adapter.close()
    await radio.close()


async def test_mtu_23_central_and_short_buffer() -> None:
    radio = Radio()
    p = await band(radio, "MB-R", mtu=23)
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-R")
    received: list[bytes] = []
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        assert c.mtu_size == 23  # the band caps the exchange at its configured MTU
        await c.start_notify(CONTROL_UUID, lambda _ch, data: received.append(bytes(data)))
        await c.write_gatt_char(CONTROL_UUID, b"0123456789abcdef", response=True)
        await until(lambda: received)
        assert received == [b"ack:0123456789abcdef"[:20]]  # MTU - 3
        # A long value is read with blob reads at MTU 23.
        p.ble.gatts_write(p.h_data, bytes(range(100)))
        assert await c.read_gatt_char(DATA_UUID) == bytes(range(100))
    # Without gatts_set_buffer a written value is cut at 20 bytes, as on MicroPython.
    assert p.ble.gatts_read(p.h_control) == b"0123456789abcdef"
    # A central that does not exchange the MTU stays at 23 with a 247 band.
    q = await band(radio, "MB-X")
    dev_x = await find(adapter, "MB-X")
    got: list[bytes] = []
    async with BleakClient(dev_x, backend=adapter.client_backend, mtu=23) as c:
        assert c.mtu_size == 23
        await c.start_notify(DATA_UUID, lambda _ch, data: got.append(bytes(data)))
        q.ble.gatts_notify(next(iter(q.connections)), q.h_data, bytes(range(100)))
        await until(lambda: got)
        assert got == [bytes(range(20))]
    assert q.mtus == {}
    await adapter.close()
    await radio.close()


async def test_default_buffer_truncates_long_writes() -> None:
    radio = Radio()
    p = await band(radio, "MB-L")
    h_dis = p.h_maker  # no gatts_set_buffer: 20-byte buffer (but written locally: grown)
    assert p.ble.gatts_read(h_dis) == b"Mirrorband"
    p.ble.gatts_set_buffer(p.h_control, 20)
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        await c.write_gatt_char(CONTROL_UUID, bytes(range(50)), response=True)
        await until(lambda: p.writes)
    assert p.writes[-1] == (p.h_control, bytes(range(20)))
    await adapter.close()
    await radio.close()


async def test_two_peripherals_one_after_the_other() -> None:
    radio = Radio()
    left = await band(radio, "MB-L")
    right = await band(radio, "MB-R")
    adapter = BumbleAdapter(radio.endpoint("host"))
    devices = await BleakScanner.discover(
        timeout=0.4, service_uuids=[SERVICE_UUID], backend=adapter.scanner_backend
    )
    assert sorted(d.name for d in devices if d.name) == ["MB-L", "MB-R"]
    by_name = {d.name: d for d in devices}
    got: dict[str, list[bytes]] = {"MB-L": [], "MB-R": []}
    async with BleakClient(by_name["MB-L"], backend=adapter.client_backend) as cl:
        async with BleakClient(by_name["MB-R"], backend=adapter.client_backend) as cr:
            await cl.start_notify(CONTROL_UUID, lambda _c, d: got["MB-L"].append(bytes(d)))
            await cr.start_notify(CONTROL_UUID, lambda _c, d: got["MB-R"].append(bytes(d)))
            await cl.write_gatt_char(CONTROL_UUID, b"to-left", response=True)
            await cr.write_gatt_char(CONTROL_UUID, b"to-right", response=True)
            await until(lambda: got["MB-L"] and got["MB-R"])
            assert got == {"MB-L": [b"ack:to-left"], "MB-R": [b"ack:to-right"]}
            assert len(left.connections) == 1 and len(right.connections) == 1
    await adapter.close()
    await radio.close()


async def test_passive_scan_of_nonconnectable_beacon() -> None:
    radio = Radio()
    writer = mpble.BLE(radio.endpoint("writer"), name="writer")
    w = TinyPeripheral(mpble, writer, "MB-W")
    w.beacon(seq=7, active=1)
    # The resting band scans passively with the MicroPython API.
    rest = mpble.BLE(radio.endpoint("rest"), name="rest")
    rest.active(True)
    results: list[tuple[int, bytes, int, int, bytes, str, str]] = []
    done: list[int] = []

    def irq(event: int, data: tuple) -> None:
        if event == 5:
            addr_type, addr, adv_type, rssi, adv_data = data
            results.append(
                (
                    addr_type,
                    bytes(addr),
                    adv_type,
                    rssi,
                    bytes(adv_data),
                    type(addr).__name__,
                    type(adv_data).__name__,
                )
            )
        elif event == 6:
            done.append(1)

    rest.irq(irq)
    rest.gap_scan(300, 20000, 20000, False)
    await until(lambda: done, timeout=3.0)
    assert results, "no beacon heard"
    addr_type, addr, adv_type, rssi, adv_data, addr_kind, data_kind = results[0]
    assert (addr_type, addr, adv_type, rssi) == (1, bytes(writer.config("mac")[1]), 3, -50)  # ADV_NONCONN_IND
    assert (addr_kind, data_kind) == ("memoryview", "memoryview")
    assert struct.pack("<HBIB", BEACON_COMPANY, 1, 7, 1) in adv_data
    assert all(r[2] == 3 for r in results)  # passive: no scan responses
    assert len(results) >= 5  # every 20 ms for 300 ms

    # bleak sees it passively too; a connection attempt is refused (not connectable).
    adapter = BumbleAdapter(radio.endpoint("host"))
    seen = await BleakScanner.discover(
        timeout=0.2, return_adv=True, scanning_mode="passive", backend=adapter.scanner_backend
    )
    ((dev, adv),) = seen.values()
    assert adv.manufacturer_data == {BEACON_COMPANY: struct.pack("<BIB", 1, 7, 1)}
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient(dev, backend=adapter.client_backend, timeout=0.3).connect()
    await adapter.close()
    await radio.close()


async def test_unauthenticated_central_refused_on_protected_characteristics() -> None:
    radio = Radio()
    p = await band(radio, "MB-L")
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        # Device Information, Battery and open characteristics work.
        assert await c.read_gatt_char(BATTERY_LEVEL) == bytes([87])
        assert await c.read_gatt_char(DIS_MAKER) == b"Mirrorband"
        with pytest.raises(BleakGATTProtocolError) as err:
            await c.read_gatt_char(SECRET_UUID)
        assert err.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
        with pytest.raises(BleakGATTProtocolError):
            await c.write_gatt_char(SECRET_UUID, b"x", response=True)
        with pytest.raises(BleakGATTProtocolError):
            await c.start_notify(SECRET_UUID, lambda _c, _d: None)
        with pytest.raises(BleakGATTProtocolError):
            await c.read_gatt_char(MITM_UUID)
        assert p.writes == []

        # Just Works pairing: encrypted with keys both sides hold, but not MITM-authenticated.
        await c.pair()
        await until(lambda: p.security)
        assert next(iter(p.security.values()))[:3] == (True, False, True)
        assert await c.read_gatt_char(SECRET_UUID) == b"secret"
        await c.write_gatt_char(SECRET_UUID, b"new", response=True)
        with pytest.raises(BleakGATTProtocolError) as err:
            await c.read_gatt_char(MITM_UUID)  # Bumble alone would allow this
        assert err.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION
    p.advertise()
    await p.ble.settle()

    # Reconnection: the bond re-encrypts the link.
    p.security.clear()
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        assert await c.read_gatt_char(SECRET_UUID) == b"new"
    p.advertise()
    await p.ble.settle()

    # A central presenting a forged key cannot encrypt: the controller's MIC check fails.
    assert adapter.device is not None and adapter.device.keystore is not None
    ((name, keys),) = await adapter.device.keystore.get_all()
    assert keys.ltk is not None
    keys.ltk.value = bytes(16)
    p.security.clear()
    with pytest.raises(BleakError, match="encrypting"):
        async with BleakClient(dev, backend=adapter.client_backend) as c:
            await c.read_gatt_char(SECRET_UUID)
    await until(lambda: not p.connections)
    assert all(sec[0] is False for sec in p.security.values())  # never encrypted
    assert p.writes == [(p.h_secret, b"new")]
    await adapter.close()
    await radio.close()


async def test_passkey_pairing_authenticates() -> None:
    from bumble.pairing import PairingDelegate

    radio = Radio()
    p = await band(radio, "MB-L")
    p.ble.config(io=0, mitm=True)  # display only: shows the passkey
    shown: list[int] = []
    p.ble.irq(
        lambda event, data: shown.append(data[2]) if event == 31 and data[1] == 3 else p._irq(event, data)
    )

    class Keyboard(PairingDelegate):
        def __init__(self) -> None:
            super().__init__(io_capability=PairingDelegate.KEYBOARD_INPUT_ONLY)

        async def get_number(self) -> int | None:
            await until(lambda: shown)
            return shown[0]

    adapter = BumbleAdapter(radio.endpoint("host"), pairing_delegate=Keyboard())
    dev = await find(adapter, "MB-L")
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        await c.pair()
        assert await c.read_gatt_char(MITM_UUID) == b"mitm-only"
    assert shown and 0 <= shown[0] <= 999999
    assert next(iter(p.security.values()))[:2] == (True, True)
    await adapter.close()
    await radio.close()


async def test_timing_model_throughput_and_notify_flow_control() -> None:
    timing = LinkTiming(interval_ms=15.0, packets_per_event=4)
    radio = Radio(timing)
    p = await band(radio, "MB-L")
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    received: list[bytes] = []
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        await c.start_notify(DATA_UUID, lambda _c, d: received.append(bytes(d)))
        conn = next(iter(p.connections))
        sent = 0
        refused = 0
        total = 48
        t0 = time.monotonic()
        while sent < total:
            try:
                p.ble.gatts_notify(conn, p.h_data, struct.pack("<I", sent) + bytes(240))
                sent += 1
            except OSError as exc:  # the firmware's flow control: wait and retry
                assert exc.errno == errno.ENOMEM
                refused += 1
                await asyncio.sleep(0.005)
        await until(lambda: len(received) == total, timeout=5.0)
        elapsed = time.monotonic() - t0
    assert refused > 0  # the controller's buffers filled up
    assert [struct.unpack_from("<I", r)[0] for r in received] == list(range(total))
    # 48 notifications at 4 per 15 ms event need 12 events: ~165-180 ms.
    assert 0.15 <= elapsed < 0.6, elapsed
    await adapter.close()
    await radio.close()


async def test_fault_injection_drop_during_transfer_then_reconnect() -> None:
    radio = Radio()
    p = await band(radio, "MB-L")
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    lost: list[BleakClient] = []
    received: list[bytes] = []
    client = BleakClient(dev, disconnected_callback=lost.append, backend=adapter.client_backend)
    await client.connect()
    await client.start_notify(DATA_UUID, lambda _c, d: received.append(bytes(d)))
    conn = next(iter(p.connections))
    radio.drop_after("MB-L", 5)
    for i in range(5):
        p.ble.gatts_notify(conn, p.h_data, bytes([i]) * 10)
        await asyncio.sleep(0)
    await until(lambda: lost and not p.connections)
    assert lost == [client] and not client.is_connected
    assert 2 in p.events
    assert len(received) <= 5 and all(r == bytes([i]) * 10 for i, r in enumerate(received))
    with pytest.raises(OSError) as err:
        p.ble.gatts_notify(conn, p.h_data, b"late")
    assert err.value.errno == errno.ENOTCONN
    # The band advertises again; the central reconnects and rediscovers.
    p.advertise()
    await p.ble.settle()
    await client.connect()
    assert await client.read_gatt_char(DATA_UUID) == b"hello"
    # Dropping a live link by hand.
    assert radio.drop_all("host") == 1
    await until(lambda: len(lost) == 2)
    await adapter.close()
    await radio.close()


async def test_connect_to_absent_band_times_out_cleanly() -> None:
    radio = Radio()
    adapter = BumbleAdapter(radio.endpoint("host"))
    t0 = time.monotonic()
    with pytest.raises(BleakDeviceNotFoundError):
        await BleakClient("C1:22:33:44:55:66", backend=adapter.client_backend, timeout=0.3).connect()
    assert time.monotonic() - t0 < 2.0
    # The adapter is still usable afterwards.
    p = await band(radio, "MB-L")
    dev = await find(adapter, "MB-L")
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        assert await c.read_gatt_char(DATA_UUID) == b"hello"
    assert p.connections == set()
    await adapter.close()
    await radio.close()


async def test_timed_scanner_hears_only_in_its_scan_window() -> None:
    radio = Radio(LinkTiming())
    writer = mpble.BLE(radio.endpoint("writer"), name="writer")
    TinyPeripheral(mpble, writer, "MB-W").beacon(seq=1, active=1, interval_us=20000)
    await writer.settle()
    counts: dict[str, int] = {}
    for label, window_us, interval_us in (("continuous", 30000, 30000), ("default", 11250, 1280000)):
        rest = mpble.BLE(radio.endpoint(f"rest-{label}"), name=f"rest-{label}")
        rest.active(True)
        heard: list[int] = []
        done: list[int] = []
        rest.irq(lambda e, _d, h=heard, f=done: h.append(1) if e == 5 else f.append(1) if e == 6 else None)
        rest.gap_scan(400, interval_us, window_us, False)
        await until(lambda f=done: f, timeout=3.0)
        counts[label] = len(heard)
        await rest.close()
    # 20 ms beacons for 400 ms: ~20 heard continuously, at most one 11.25 ms window otherwise.
    assert counts["continuous"] >= 15
    assert counts["default"] <= 1
    await radio.close()


async def test_lossy_link_delays_but_keeps_order() -> None:
    radio = Radio(LinkTiming(interval_ms=7.5, packets_per_event=4, loss=0.3, seed=3))
    p = await band(radio, "MB-L")
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    received: list[bytes] = []
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        await c.start_notify(DATA_UUID, lambda _c, d: received.append(bytes(d)))
        conn = next(iter(p.connections))
        for i in range(30):
            while True:
                try:
                    p.ble.gatts_notify(conn, p.h_data, struct.pack("<I", i) + bytes(100))
                    break
                except OSError:
                    await asyncio.sleep(0.005)
        await until(lambda: len(received) == 30, timeout=5.0)
    assert [struct.unpack_from("<I", r)[0] for r in received] == list(range(30))
    await adapter.close()
    await radio.close()
