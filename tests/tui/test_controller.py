"""What the UI gets from the bands, on the virtual bands (real time) through BleController, with the
virtual radio's and bands' own faults: a download that drops, a band out of range mid-session,
no bands in range, a full log, an electrode off, a session stopped early."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorband.control.controller import ControllerError, DownloadInterrupted, ProtocolStep, StorageFull

from .helpers import WHEN, on_bands, pair_all, record

pytestmark = [pytest.mark.timeout(120)]


def test_download_resumes_without_loss_or_duplicates(tmp_path: Path) -> None:
    from mirrorband.sessions.session import load
    from mirrorband.sessions.store import Store

    async def go(vb):
        ctl = vb.controller
        await pair_all(ctl)
        frames = await record(ctl)
        vb.radio.radio.drop_after("band-R", 1, away_s=float("inf"))  # out of range mid-transfer
        seen = []
        with pytest.raises(DownloadInterrupted, match="right band dropped"):
            await ctl.download(seen.append)
        vb.radio.radio.in_range("band-R")
        res = await ctl.download(seen.append)
        again = await ctl.download()
        return frames, res, again

    frames, res, again = on_bands(tmp_path, go)
    live = [e for f in frames for e in f.events]
    assert live and sum(r.events for r in res) == len(live)
    sid = {r.session_id for r in res}
    assert len(sid) == 1 and None not in sid
    assert [r.events for r in again] == [0, 0]  # the bands freed what was acknowledged
    with Store(tmp_path) as st:
        s = load(st, sid.pop())
        assert sorted((e["hand"], e["kind"]) for e in s.events) == sorted((e["hand"], e["kind"]) for e in live)
        assert s.started.startswith(WHEN.isoformat()) and [x["kind"] for x in s.steps][:2] == ["REST", "WRITE L"]
        assert st.check() == []


def test_band_out_of_range_keeps_recording(tmp_path: Path) -> None:
    async def go(vb):
        ctl = vb.controller
        radio = vb.radio.radio
        await pair_all(ctl)
        await ctl.set_task((ProtocolStep("REST", 2), ProtocolStep("WRITE L", 6), ProtocolStep("WRITE R", 4)))
        await ctl.start_task()
        frames = []
        async for f in ctl.live():
            frames.append(f)
            if len(frames) == 1:
                radio.out_of_range("band-L")
            if any("left band lost contact" in n for n in f.notices):
                radio.in_range("band-L")
        return frames, await ctl.download()

    frames, res = on_bands(tmp_path, go)
    notices = [n for f in frames for n in f.notices]
    assert any("left band lost contact; it keeps recording" in n for n in notices), notices
    assert any("left band is back in range" in n for n in notices), notices
    assert any(f.lost == frozenset({"L"}) for f in frames) and frames[-1].finished
    res_l = next(r for r in res if r.hand == "L")
    live_l = sum(1 for f in frames for e in f.events if e["hand"] == "L")
    assert res_l.session_id is not None and res_l.events >= live_l  # what it recorded while away too
    from mirrorband.sessions.store import Store

    with Store(tmp_path) as st:
        assert st.session_row(res_l.session_id).duration_s == pytest.approx(12.0, abs=0.5)


def test_stop_keeps_what_was_recorded(tmp_path: Path) -> None:
    async def go(vb):
        ctl = vb.controller
        await pair_all(ctl)
        await ctl.set_task((ProtocolStep("REST", 2), ProtocolStep("WRITE L", 60)))
        await ctl.start_task()
        frames = []
        async for f in ctl.live():
            frames.append(f)
            if len(frames) == 60:  # 3 s in
                await ctl.stop_task()
        return frames, await ctl.download()

    frames, res = on_bands(tmp_path, go)
    assert frames[-1].finished and frames[-1].stopped
    from mirrorband.sessions.store import Store

    with Store(tmp_path) as st:
        row = st.session_row(res[0].session_id)
        assert 2 < row.duration_s < 10


def test_no_bands_full_storage_and_electrode_off_are_explained(tmp_path: Path) -> None:
    async def go(vb):
        ctl, radio = vb.controller, vb.radio.radio
        for name in ("band-L", "band-R"):
            radio.out_of_range(name)
        assert await ctl.scan(1.0) == []
        with pytest.raises(ControllerError, match="no band is paired"):
            await ctl.start_task()
        for name in ("band-L", "band-R"):
            radio.in_range(name)
        await pair_all(ctl)
        vb.bands["L"].board.ads_emu.set_electrodes_off(0x0C)  # IN2P, IN2N: the EXT pair
        await record(ctl)
        left = await ctl.band_status(ctl.paired()[0])
        assert left.hand == "L" and [ch.label for ch in left.channels][1] == "lead off"
        assert not left.channels[0].lead_off
        await ctl.download()
        assert vb.bands["R"].fill_log() > 1000
        right = await ctl.band_status(ctl.paired()[1])
        assert right.hand == "R" and right.state == "full"
        with pytest.raises(StorageFull, match="right band's storage is full"):
            await ctl.start_task()
        with pytest.raises(ControllerError, match="/dev/nothing"):
            await ctl.provision("/dev/nothing", "L", "P-1")

    on_bands(tmp_path, go)
    with pytest.raises(ControllerError):
        ProtocolStep("JUMP", 10)
    with pytest.raises(ControllerError):
        ProtocolStep("REST", 0)
