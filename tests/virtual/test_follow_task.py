"""Virtual bands playing a simulated patient follow the task the host sets: a task with another
protocol re-simulates the patient (same scenario and seed) for exactly those steps, on both bands;
a recording plays unchanged."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mbfw.app import ST_DONE
from mbfw.task import STEP_NONE, STEP_REST, STEP_WRITE_L, STEP_WRITE_R
from mirrorband.control.controller import PROTOCOLS
from mirrorband.control.task import protocol_points as task_points
from mirrorband.detect.bandio import sort_events
from mirrorband.detect.replay import replay_events
from mirrorband.recording import RecordingError
from mirrorband.sim.simulate import simulate
from mirrorband.sim.virtual.band import VirtualBand, World, connect_peers
from mirrorband.sim.virtual.signals import from_recording, from_scenario, points_protocol

from .test_band import logged

SCENARIO, SEED = "moderate-R", 7
SHORT = [(s.kind, float(s.seconds)) for s in PROTOCOLS["Short check (1 min)"]]


async def run_task(session, tmp_path, points, world=None, bands=None):
    """Boot two bands on ``session`` (unless given) and run the task ``points`` on them."""
    if world is None or bands is None:
        world = World(fast=True)
        bands = []
        for hand in ("L", "R"):
            b = VirtualBand(hand, session.bands[hand], world.true, tmp_path / hand, settings=session.settings,
                            session=session)
            b.flash.erase()
            b.boot()
            bands.append(world.add(b))
        connect_peers(*bands)
    sid = 1 + bands[0].app.session
    for b in bands:
        b.start_session(points, points[-1][0], session_id=sid)
    await world.run(until=lambda: not world.busy())
    return world, bands


def test_points_protocol() -> None:
    assert points_protocol([(0, STEP_REST), (10_000, STEP_WRITE_L), (30_000, STEP_NONE)]) == [
        ("REST", 10.0), ("WRITE L", 20.0)]
    # a gap without a step is spent at rest; an open last step gets a length
    assert points_protocol([(0, STEP_WRITE_R), (5_000, STEP_NONE), (7_000, STEP_WRITE_L)]) == [
        ("WRITE R", 5.0), ("REST", 2.0), ("WRITE L", 60.0)]
    for bad in ([], [(5, STEP_REST), (10, STEP_NONE)], [(0, STEP_REST), (0, STEP_NONE)], [(0, 9), (10, 0)]):
        with pytest.raises(RecordingError):
            points_protocol(bad)


def test_short_task_on_standard_session_equals_replay_of_short_simulation(tmp_path) -> None:
    session = from_scenario(SCENARIO, seed=SEED)  # built for the standard protocol
    points = task_points(PROTOCOLS["Short check (1 min)"])
    assert points_protocol(points) == SHORT
    rec = simulate(SCENARIO, seed=SEED, protocol=SHORT)
    ref = replay_events(rec, "cpython", session.settings)
    assert ref, "the short protocol must give events"
    # the patient of the standard protocol does something else in the first minute (rest
    # while the short task says WRITE L from 10 s): its events differ
    std = replay_events(session.recording, "cpython", session.settings)
    assert [e for e in std if e[1] < 60_000] != ref

    _, bands = asyncio.run(run_task(session, tmp_path, points))
    assert logged(bands) == ref
    assert bands[0].signals is session.for_points(points).bands["L"]  # one simulation, both bands
    assert bands[1].signals is session.for_points(points).bands["R"]
    for b in bands:
        assert b.app.state == ST_DONE
        assert b.app.sampler.samples == 60_000
        assert np.array_equal(b.board.ads_emu.emg_uv, b.signals.emg_uv)


def test_next_task_switches_back_and_a_reboot_keeps_the_task_signals(tmp_path) -> None:
    session = from_scenario(SCENARIO, seed=SEED, minutes=0.5)
    short = task_points(PROTOCOLS["Short check (1 min)"])

    async def go():
        world, bands = await run_task(session, tmp_path, short)
        # the session's own protocol again: its original signals
        await run_task(session, tmp_path, session.points, world, bands)
        assert [b.signals for b in bands] == [session.bands["L"], session.bands["R"]]
        own = logged(bands)
        await bands[0].soft_reboot()
        bands[0].app.set_task(short)
        after = bands[0].signals
        await bands[0].soft_reboot()  # the board is built again from the band's current signals
        assert bands[0].board.ads_emu.emg_uv is after.emg_uv
        for b in bands:
            await b.shutdown()
        return own

    own = asyncio.run(go())
    ref_short = replay_events(simulate(SCENARIO, seed=SEED, protocol=SHORT), "cpython", session.settings)
    ref_own = replay_events(session.recording, "cpython", session.settings)
    assert ref_short and ref_own
    assert own == sort_events(ref_short + ref_own)


def test_recording_plays_unchanged_whatever_the_task(tmp_path) -> None:
    rec = simulate("severe", seed=2, protocol=[("REST", 10), ("WRITE R", 20)])
    session = from_recording(rec)  # an EDF+ recording: no scenario to simulate again
    assert session.scenario is None and session.for_points([(0, STEP_WRITE_L), (5000, STEP_NONE)]) is None
    _, bands = asyncio.run(run_task(session, tmp_path, [(0, STEP_REST), (10_000, STEP_WRITE_L),
                                                     (30_000, STEP_NONE)]))
    for b in bands:
        assert b.signals is session.bands[b.hand]
        assert b.board.ads_emu.emg_uv is session.bands[b.hand].emg_uv


def test_a_task_the_patient_cannot_follow_keeps_the_signals_with_a_note(tmp_path) -> None:
    session = from_scenario(SCENARIO, seed=SEED, minutes=0.5)

    async def go():
        world = World(fast=True)
        b = world.add(VirtualBand("L", session.bands["L"], world.true, tmp_path / "L", session=session))
        b.boot()
        b.app.set_task([(0, STEP_REST), (4_000_000, STEP_NONE)])  # 67 min: longer than simulate allows
        sig = b.signals
        await b.shutdown()
        return sig, b.notes

    sig, notes = asyncio.run(go())
    assert sig is session.bands["L"]
    assert len(notes) == 1 and "cannot follow" in notes[0]
