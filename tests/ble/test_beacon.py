"""Activity beacon (mbfw.beacon): codec, and writer -> resting band over the virtual
radio (BleService.set_beacon / BleService.scan) into the app's PeerLink, with loss."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mbfw import beacon as B
from mbfw.app import PeerLink
from mbfw.bleservice import adv_data
from mirrorband.sim.vradio.hub import LinkTiming, Radio

from .harness import Band


def test_codec_round_trip_and_find() -> None:
    m = B.encode(b"\x01\x02\x03\x04", 77, (1 << 40) + 12345, 0b1010_0001, 65537)
    assert len(m) == B.SIZE
    assert B.decode(m) == (b"\x01\x02\x03\x04", 77, ((1 << 40) + 12345) % (1 << 32), 0b1010_0001, 1)
    adv = adv_data(None, 0, False, m)
    assert len(adv) <= 31
    assert B.find(adv) == m
    assert B.find(adv_data(bytes(16), 1)) is None  # a connectable band advertisement is not a beacon
    assert B.find(b"\x05\xff\xff\xff\x41") is None  # truncated
    with pytest.raises(B.BeaconError):
        B.decode(bytes(B.SIZE))
    with pytest.raises(B.BeaconError):
        B.encode(b"\x01", 1, 0, 0, 0)


def test_unwrap() -> None:
    near = (5 << 32) + 100
    assert B.unwrap((near - 50) % (1 << 32), near) == near - 50
    assert B.unwrap((near + 7) % (1 << 32), near) == near + 7
    near = (5 << 32) + 3
    assert B.unwrap((near - 10) % (1 << 32), near) == near - 10  # across the wrap


class _Clock:
    def __init__(self, band: Band) -> None:
        self.band = band

    def time_us(self) -> int:
        return self.band.device.now_us()


def pattern(k: int) -> int:
    return 1 if (k // 25) % 2 == 0 else 0


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_beacon_feeds_peer_link_and_loss_closes_it(tmp_path: Path) -> None:
    radio = Radio(LinkTiming())  # timed: the scanner hears what is on air in its window
    writer = await Band(radio, "MB-L", tmp_path / "l").start()
    rest = await Band(radio, "MB-R", tmp_path / "r", hand=1).start()
    t0 = writer.device.now_us()
    sender = B.Sender(writer.service, writer.device.band_id)
    sender.start(7, t0)
    peer = PeerLink()
    rx = B.Receiver(peer, _Clock(rest), lambda local: (local - t0) // B.WIN_US,
                    peer_id4=writer.device.band_id, timeout_ms=300)
    rx.start(7)
    rest.service.scan(rx.on_adv)
    # the writer's app produces 5 windows (50 ms) per block, in real time
    k = 0
    loop = asyncio.get_running_loop()
    while k < 150:
        now_k = (writer.device.now_us() - t0) // B.WIN_US
        while k + 5 <= now_k:
            sender.put(k, bytes(pattern(j) for j in range(k, k + 5)), 5)
            k += 5
        await asyncio.sleep(0.01)
    assert rx.heard >= 20, rx.heard
    out = bytearray(100)
    assert peer.get(20, 100, out)
    wrong = sum(out[i] != pattern(20 + i) for i in range(100))
    assert wrong <= 4, wrong  # window boundaries may shift by the beacon delay
    assert rx.check() and not peer.gone
    # beacon loss: the writer stops (or is out of range) -> the link is closed
    sender.stop()
    await writer.ble.settle()
    t_stop = loop.time()
    while rx.check():
        assert loop.time() - t_stop < 3.0
        await asyncio.sleep(0.02)
    assert peer.gone
    rest.service.scan(None)
    await writer.stop()
    await rest.stop()
    await radio.close()
