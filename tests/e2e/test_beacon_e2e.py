"""End to end on the virtual radio: two virtual bands (firmware on emulated hardware, real
time) exchange activity over the BLE beacon only (no direct wiring). Mirror classification
with the live beacon equals replay of the same recording; after the beacon is cut, events
are marked peer_unknown. (Host re-classification after merging both logs is not checked
here yet.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mbfw.app import ST_DONE
from mbfw.events import EV_FLAGS, EV_OFFSET, EV_ONSET, FLAG_PEER_UNKNOWN
from mirrorband.detect.bandio import event_dict, sort_events
from mirrorband.detect.replay import replay_events
from mirrorband.sim.simulate import simulate
from mirrorband.sim.virtual.band import VirtualBand, World, session_events
from mirrorband.sim.virtual.signals import from_recording
from mirrorband.sim.virtual.sim import SimRadio

PROTOCOL = [("REST", 6.0), ("WRITE L", 7.0), ("WRITE R", 7.0), ("REST", 2.0)]
CUT_S = 9.0  # the beacon is cut here (during WRITE L)


def logged(bands: list[VirtualBand]) -> list[tuple[int, ...]]:
    out = []
    for b in bands:
        for ev, t0 in session_events(b.log_records()):
            e = list(ev)
            e[EV_ONSET] -= t0
            e[EV_OFFSET] -= t0
            out.append(tuple(e))
    return sort_events(out)


async def play(session, tmp_path: Path, cut_s: float | None) -> tuple[list[VirtualBand], dict]:
    radio = await SimRadio(timed=True).start()
    world = World(fast=False)
    bands = []
    for hand, off, drift in (("L", 3_000_000, 20.0), ("R", 987_654_321, -15.0)):
        b = VirtualBand(hand, session.bands[hand], world.true, tmp_path / hand, offset_us=off,
                        drift_ppm=drift, settings=session.settings, bluetooth=radio.bluetooth(hand))
        b.flash.erase()
        b.boot()
        bands.append(world.add(b))
    try:
        for b in bands:
            await b.radio[0].ble.settle()
        now = int(world.true.now_us())
        for b in bands:  # the host's clock sync, ideal here (tests/ble covers sync over BLE)
            b.app.set_time(1_700_000_000_000_000 + now)
        for b in bands:
            b.start_session(session.points, session.duration_ms, session_id=4242)
        driver = asyncio.ensure_future(world.run(until=lambda: all(b.state == ST_DONE for b in bands)))
        stats = {}
        if cut_s is not None:
            while not all(b.app.k >= cut_s * 100 for b in bands if b.app.k) or bands[0].app.k == 0:
                await asyncio.sleep(0.05)
            for hand in ("L", "R"):  # neither band hears the other any more
                radio.radio.controllers[SimRadio.controller(hand)]._hears = lambda: False  # noqa: SLF001
        await asyncio.wait_for(driver, 120)
        for b in bands:
            stats[b.hand] = b.radio[1].rx.heard if b.radio and b.radio[1].rx else 0
        return bands, stats
    finally:
        for b in bands:
            await b.shutdown()
        await radio.close()


@pytest.fixture(scope="module")
def recording():
    return simulate("severe", seed=5, protocol=PROTOCOL)


@pytest.mark.timeout(180)
def test_live_beacon_equals_replay_then_cut_marks_peer_unknown(recording, tmp_path: Path) -> None:
    session = from_recording(recording, "beacon-e2e")
    ref = replay_events(recording, "cpython", session.settings)
    assert any(event_dict(e)["kind"] == "mirror" for e in ref), "the recording must have mirror events"
    bands, heard = asyncio.run(play(session, tmp_path, CUT_S))
    got = logged(bands)
    assert all(h > 50 for h in heard.values()), heard
    cut_ms = CUT_S * 1000
    before = [e for e in got if e[EV_OFFSET] < cut_ms - 500]
    ref_before = [e for e in ref if e[EV_OFFSET] < cut_ms - 500]
    assert before == ref_before  # live beacon: the same classification as replay
    after = [e for e in got if e[EV_ONSET] > cut_ms + 1000]
    assert after, "events after the cut"
    # every non-artifact event is marked (an artifact does not depend on the peer)
    assert all(bool(e[EV_FLAGS] & FLAG_PEER_UNKNOWN) == (event_dict(e)["kind"] != "artifact") for e in after)
