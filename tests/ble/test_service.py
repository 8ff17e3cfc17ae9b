"""The band's BLE service (firmware/mbfw/bleservice.py) driven by the host's BandLink
(bleak public API on the Bumble backend) over the virtual radio."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakGATTProtocolError

from mbfw import bleservice as S
from mbfw import protocol as P
from mirrorband.bands.ble.link import BandLink, State
from mirrorband.bands.client import BandClient
from mirrorband.sessions.download import download
from mirrorband.sim.vradio.bleak_backend import BumbleAdapter
from mirrorband.sim.vradio.hub import LinkTiming, Radio

from .harness import KEY, Band, record_hash

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]

DIS_MAKER = "00002a29-0000-1000-8000-00805f9b34fb"
BATTERY = "00002a19-0000-1000-8000-00805f9b34fb"


async def find(adapter: BumbleAdapter, name: str):  # noqa: ANN201
    dev = await BleakScanner.find_device_by_name(name, timeout=3.0, service_uuids=[S.SERVICE_UUID],
                                                 backend=adapter.scanner_backend)
    assert dev is not None
    return dev


def client() -> BandClient:
    from mirrorband.bands.client import aes_ctr  # noqa: F401 - pages are AES-CTR encrypted by the harness

    return BandClient(KEY, require_encryption=True)


@pytest.mark.parametrize("mtu", [247, 23])
async def test_request_response_and_download_at_mtu(tmp_path: Path, mtu: int) -> None:
    radio = Radio()
    band = await Band(radio, "MB-L", tmp_path / "log", mtu=mtu).start()
    band.fill(300)
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    link = BandLink(dev, client(), backend=adapter.client_backend)
    async with link:
        assert link.mtu == mtu
        info = P.Info.from_bytes(await link.call(P.OP_INFO))
        assert info.band_id == band.device.band_id and info.provisioned == 1
        got: dict[int, str] = {}
        res = await download(link, lambda r: got.__setitem__(r[0], record_hash(*r)))
        assert got == band.hashes
        assert res.records == 300 and res.acked == 300
        assert band.log.status()[5] == 300  # the band saw the acknowledgement
        frag = link.stats.data_frame_bytes / (link.stats.data_notifications * (mtu - 3))
        assert frag >= 0.9, frag
        st = await link.read_status()  # the STATUS characteristic (long read at MTU 23), refreshed ~1/s
        assert isinstance(st, P.StatusX) and st.values()[4] > 0  # with electrodes; free bytes
    await adapter.close()
    await band.stop()
    await radio.close()


async def test_unauthenticated_central_reads_only_dis_and_battery(tmp_path: Path) -> None:
    radio = Radio()
    band = await Band(radio, "MB-R", tmp_path / "log", hand=1).start()
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-R")
    async with BleakClient(dev, backend=adapter.client_backend) as c:
        assert await c.read_gatt_char(DIS_MAKER) == b"Mirrorband"
        assert await c.read_gatt_char(BATTERY) == bytes([87])
        for uuid in (S.STATUS_UUID, S.DATA_UUID):
            with pytest.raises(BleakGATTProtocolError):
                await c.read_gatt_char(uuid)
        for uuid in (S.CONTROL_UUID, S.DATA_UUID, S.STATUS_UUID):
            with pytest.raises(BleakGATTProtocolError):
                await c.start_notify(uuid, lambda _c, _d: None)
        with pytest.raises(BleakGATTProtocolError):
            await c.write_gatt_char(S.CONTROL_UUID, b"\x80" + bytes(50), response=True)
        # every characteristic of the custom service refuses; the standard ones answer
        custom = c.services.get_service(S.SERVICE_UUID)
        assert custom is not None and len(custom.characteristics) == 3
    assert band.service.stats[3] == 0  # no frame reached the handler
    # after (Just Works) pairing the link is encrypted and the protocol works; a
    # central without the band key still gets nothing but refusals
    band.service.advertise()
    await band.ble.settle()
    stranger = BandLink(dev, BandClient(bytes(32)), backend=adapter.client_backend)
    async with stranger:
        with pytest.raises(Exception, match="bad tag"):
            await stranger.call(P.OP_LOG_RANGE)
        with pytest.raises(Exception, match="authentication required"):
            await stranger.call(P.OP_STATUS, authenticated=False)
    await adapter.close()
    await band.stop()
    await radio.close()


async def test_download_survives_200_random_disconnects(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    # untimed radio, short back-off; the band advertises every 20 ms instead of 200 ms (a
    # reconnect waits for the band's next connectable advertisement: 200 drops at 200 ms
    # took ~45 s, at 20 ms ~9 s). The faults are unchanged: 200 drops, 1-12 PDUs after
    # every (re)connection, during the download of 10,000 events.
    monkeypatch.setattr(S, "_ADV_US", 20_000)
    radio = Radio()
    band = await Band(radio, "MB-L", tmp_path / "log").start()
    band.fill(10_000, seed=5)
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    rng = random.Random(11)
    drops: list[int] = []
    radio.drop_listeners.append(lambda _ctl, _peer: drops.append(1))
    armed = [0]

    def on_state(state: State) -> None:
        if state == State.READY and armed[0] < 200:
            armed[0] += 1
            radio.drop_after("MB-L", rng.randint(1, 12))

    link = BandLink(dev, client(), backend=adapter.client_backend, on_state=on_state,
                    response_timeout=2.0, backoff=(0.01, 0.2))
    got: dict[int, str] = {}
    dup: list[int] = []

    def on_record(r: tuple[int, int, bytes]) -> None:
        if r[0] in got:
            dup.append(r[0])
        got[r[0]] = record_hash(*r)

    res = await download(link, on_record)
    await link.close()
    assert dup == []
    assert got == band.hashes  # every event exactly once, same content
    assert len(drops) >= 200, len(drops)
    assert res.reconnects >= 150
    assert band.log.status()[5] == 10_000
    print(f"\n200-drop download: {res.records} records, {len(drops)} drops, {res.reconnects} resumed "
          f"attempts, {link.stats.connects} connections, {res.seconds:.1f} s")
    await adapter.close()
    await band.stop()
    await radio.close()


async def test_download_time_and_efficiency_under_default_timing(tmp_path: Path) -> None:
    radio = Radio(LinkTiming())  # 15 ms interval, 4 packets per event
    band = await Band(radio, "MB-L", tmp_path / "log").start()
    n = 2000
    band.fill(n, seed=2)
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    link = BandLink(dev, client(), backend=adapter.client_backend)
    async with link:
        got: dict[int, str] = {}
        res = await download(link, lambda r: got.__setitem__(r[0], record_hash(*r)))
    assert got == band.hashes
    st = link.stats
    eff = st.data_frame_bytes / (st.data_notifications * (link.mtu - 3))
    eff_all = st.frame_bytes / (st.notifications * (link.mtu - 3))
    rec_eff = res.record_bytes / (st.data_notifications * (link.mtu - 3))
    print(f"\n{n} events at MTU {link.mtu}: {res.seconds:.2f} s ({n / res.seconds:.0f} events/s), "
          f"{res.pages} pages, data efficiency {eff:.3f}, all notifications {eff_all:.3f}, "
          f"record bytes {rec_eff:.3f}")
    assert eff >= 0.9
    await adapter.close()
    await band.stop()
    await radio.close()


async def test_one_central_at_a_time(tmp_path: Path) -> None:
    radio = Radio()
    band = await Band(radio, "MB-L", tmp_path / "log").start()
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")
    async with BandLink(dev, client(), backend=adapter.client_backend) as link:
        assert link.state == State.READY
        assert band.service.conn != -1
        # not advertising while connected: a second central cannot find it
        other = BumbleAdapter(radio.endpoint("host2"))
        found = await BleakScanner.find_device_by_name("MB-L", timeout=0.5, backend=other.scanner_backend)
        assert found is None
        await other.close()
    await asyncio.sleep(0.05)
    await band.ble.settle()
    assert await find(adapter, "MB-L") is not None  # advertising again after the disconnect
    await adapter.close()
    await band.stop()
    await radio.close()


async def test_host_clock_sync_end_to_end(tmp_path: Path) -> None:
    from mirrorband.bands.ble.sync import sync_clock

    radio = Radio(LinkTiming())
    band = await Band(radio, "MB-L", tmp_path / "log").start()
    band.device.set_time(band.device.now_us() + 7_654_321)  # 7.6 s off
    adapter = BumbleAdapter(radio.endpoint("host"))
    dev = await find(adapter, "MB-L")

    def host_now() -> int:
        return int(asyncio.get_running_loop().time() * 1e6)

    async with BandLink(dev, client(), backend=adapter.client_backend) as link:
        off, rtt = await sync_clock(link, now_us=host_now)
    assert abs(off - 7_654_321) < rtt
    err = band.device.now_us() - host_now()
    print(f"\nhost sync under the 15 ms timing model: min round trip {rtt / 1000:.1f} ms, "
          f"residual {err / 1000:.2f} ms")
    assert abs(err) <= rtt // 2 + 1000
    await adapter.close()
    await band.stop()
    await radio.close()


async def test_download_bench_entry_runs_small() -> None:
    # mirrorband.benchmarks.ble (for `mirrorband bench`): the same download under the timing model
    from mirrorband.benchmarks.ble import run_download_bench

    out = await asyncio.to_thread(run_download_bench, 200)  # it runs its own event loop
    assert out["received"] == 200 and out["mtu"] == 247 and out["efficiency_data"] >= 0.9
    assert out["seconds"] > 0.1  # 20 pages at 15 ms connection events take real time

