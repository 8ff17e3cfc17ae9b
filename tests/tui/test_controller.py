"""PlaybackController: the UI's stand-in for the bands, checked against the firmware replay."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest

from mirrorband.control.controller import (
    PROTOCOLS,
    ControllerError,
    DownloadInterrupted,
    LiveFrame,
    ProtocolStep,
    StorageFull,
)
from mirrorband.sim.playback import Faults, PlaybackController

SHORT = PROTOCOLS["Short check (1 min)"]


def ctl(tmp_path: Path, **kw) -> PlaybackController:
    return PlaybackController("moderate-R", seed=7, speed=kw.pop("speed", 500), store_dir=tmp_path,
                              frame_s=0.02, now=lambda: datetime(2025, 3, 4, 10, 0), **kw)


async def paired(c: PlaybackController) -> None:
    for b in await c.scan():
        await c.pair(b.id)


async def run(c: PlaybackController, steps=SHORT) -> list[LiveFrame]:
    await c.set_task(steps)
    await c.start_task()
    return [f async for f in c.live()]


def test_live_events_are_the_firmware_replay(tmp_path: Path) -> None:
    from mirrorband.detect.replay import replay
    from mirrorband.sim.simulate import simulate

    async def go():
        c = ctl(tmp_path)
        await paired(c)
        return await run(c)

    frames = asyncio.run(go())
    assert frames[-1].finished and not frames[-1].stopped
    live = [e for f in frames for e in f.events]
    rec = simulate("moderate-R", seed=7, protocol=[(s.kind, s.seconds) for s in SHORT])
    expected = replay(rec, "cpython", overrides={"mains_hz": 50})["events"]
    key = lambda e: (e["onset_s"], e["hand"])  # noqa: E731
    assert sorted(live, key=key) == sorted(expected, key=key)
    assert any(e["kind"] == "mirror" for e in live)
    n_env = sum(len(f.envelopes.get("R", [])) for f in frames)
    assert n_env == int(sum(s.seconds for s in SHORT) * 10)  # one value per 100 ms, none lost
    steps_seen = {f.step.kind for f in frames if f.step}
    assert steps_seen <= {"REST", "WRITE L", "WRITE R"}


def test_download_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    from mirrorband.sessions.session import load
    from mirrorband.sessions.store import Store

    async def go():
        c = ctl(tmp_path, faults=Faults(drop_download={"R": 0}))
        await paired(c)
        frames = await run(c, PROTOCOLS["Standard, right hand affected"])
        seen = []
        with pytest.raises(DownloadInterrupted):
            await c.download(seen.append)
        res = await c.download(seen.append)
        again = await c.download()
        return frames, res, again, seen

    frames, res, again, seen = asyncio.run(go())
    live = [e for f in frames for e in f.events]
    assert sum(r.events for r in res) == len(live)
    sid = {r.session_id for r in res}
    assert len(sid) == 1 and None not in sid
    assert all(r.session_id is None for r in again)  # nothing new after the band freed its log
    with Store(tmp_path) as st:
        s = load(st, sid.pop())
        assert len(s.events) == len(live)
        assert [(e["hand"], e["onset_s"]) for e in s.events] == sorted(
            [(e["hand"], e["onset_s"]) for e in live], key=lambda x: (x[1], x[0]))
        assert s.started == "2025-03-04T10:00:00" and [x["kind"] for x in s.steps][:2] == ["REST", "WRITE L"]
        assert st.check() == []


def test_lost_band_keeps_recording(tmp_path: Path) -> None:
    async def go():
        c = ctl(tmp_path, faults=Faults(lose_band=("L", 20.0)))
        await paired(c)
        frames = await run(c)
        st = await c.band_status(c.paired()[0])
        res = await c.download()
        return frames, st, res

    frames, st, res = asyncio.run(go())
    notices = [n for f in frames for n in f.notices]
    assert len(notices) == 1 and "left band stopped answering" in notices[0]
    assert frames[-1].lost == frozenset({"L"}) and st.state == "lost" and not st.connected
    n_l = sum(len(f.envelopes.get("L", [])) for f in frames)
    assert n_l == 200  # live values only up to 20 s
    live_l = sum(1 for f in frames for e in f.events if e["hand"] == "L")
    res_l = next(r for r in res if r.hand == "L")
    assert res_l.session_id is not None and res_l.events >= live_l


def test_stop_keeps_what_was_recorded(tmp_path: Path) -> None:
    async def go():
        c = ctl(tmp_path, speed=20)
        await paired(c)
        await c.set_task(PROTOCOLS["Standard, right hand affected"])
        await c.start_task()
        frames = []
        async for f in c.live():
            frames.append(f)
            if f.t_s >= 30:
                await c.stop_task()
        res = await c.download()
        return frames, res

    frames, res = asyncio.run(go())
    assert frames[-1].finished and frames[-1].stopped and frames[-1].t_s < 60
    from mirrorband.sessions.store import Store

    with Store(tmp_path) as st:
        row = st.session_row(res[0].session_id)
        assert row.duration_s == pytest.approx(frames[-1].t_s, abs=0.2)


def test_bad_input(tmp_path: Path) -> None:
    async def go():
        c = ctl(tmp_path, faults=Faults(no_bands=True))
        assert await c.scan() == []
        with pytest.raises(ControllerError, match="no band is paired"):
            await c.start_task()
        c2 = ctl(tmp_path, faults=Faults(storage_full=frozenset({"R"}), lead_off=frozenset({("L", "EXT")})))
        await paired(c2)
        with pytest.raises(StorageFull, match="right band's storage is full"):
            await c2.start_task()
        sts = [await c2.band_status(b) for b in c2.paired()]
        left = next(s for s in sts if s.hand == "L")
        assert [ch.label for ch in left.channels] == ["good", "lead off"]
        assert next(s for s in sts if s.hand == "R").state == "full"
        with pytest.raises(ControllerError, match="no band answers on /dev/nothing"):
            await c2.provision("/dev/nothing", "L", "P-1")
        with pytest.raises(ControllerError, match="bad patient id"):
            await c2.provision("virtual:L", "L", "Jane Doe")
        info = await c2.provision("virtual:L", "L", "P-0042")
        assert info.patient_id == "P-0042" and info.hand == "L"

    asyncio.run(go())
    with pytest.raises(ControllerError):
        ProtocolStep("JUMP", 10)
    with pytest.raises(ControllerError):
        ProtocolStep("REST", 0)
    with pytest.raises(ControllerError):
        PlaybackController("nonsense")
