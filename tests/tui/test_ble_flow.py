"""BleController against bands on the virtual radio (in-process hub): the firmware's
BleService on mpble with the real Handler, Identity and EventLog, and a task stand-in that
logs session markers and events like mbfw.app and streams them live. Then the TUI flow
pair -> task (live envelopes of both hands) -> download -> review (Pilot) on the demo's real
virtual bands (firmware on emulated sensors, timed virtual radio)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from datetime import datetime
from pathlib import Path

import pytest

from mbfw import events
from mbfw.logrec import (
    SESSION_START,
    SESSION_STOP,
    T_ACTIVITY,
    T_EVENT,
    T_SESSION,
    activity_payload,
    session_payload,
)
from mirrorband.bands.keystore import BandKey, Keystore
from mirrorband.control.blecontroller import BleController
from mirrorband.control.controller import BandLost, ControllerError, ProtocolStep
from mirrorband.sessions.store import Store
from mirrorband.sim.vradio.bleak_backend import BumbleAdapter
from mirrorband.sim.vradio.hub import Radio
from tests.ble.harness import Band

pytestmark = [pytest.mark.timeout(120)]

SHORT = (ProtocolStep("REST", 1), ProtocolStep("WRITE L", 1), ProtocolStep("WRITE R", 1.5))


def _key(name: str) -> bytes:
    return hashlib.sha256(b"key" + name.encode()).digest()


class TaskBand(Band):
    """A harness band whose task start records a short session: a START marker, mirror
    events of its hand each 300 ms (logged and streamed live), a STOP marker at the end."""

    def __init__(self, radio: Radio, name: str, root: Path, hand: int, n_events: int = 4,
                 kind: int = events.KIND_MIRROR, flags: int = 0,
                 activity: list[tuple[int, int]] | None = None) -> None:
        super().__init__(radio, name, root, hand=hand, key=None)
        self.identity.provision(_key(name), hand, "demo-001")
        self.n_events = n_events
        self.kind, self.flags = kind, flags  # of the events it logs
        self.activity = activity or []  # its own activity spans (windows from the start) to log
        self.run_task: asyncio.Task | None = None
        dev = self.device
        dev.start_task = self._start  # type: ignore[method-assign]
        dev.stop_task = self._stop  # type: ignore[method-assign]
        self.hand = hand

    def _start(self, session: int) -> None:
        self.device.session = session
        self.run_task = asyncio.get_running_loop().create_task(self._run(session))

    def _stop(self) -> None:
        if self.run_task is not None:
            self.run_task.cancel()

    async def _run(self, session: int) -> None:
        dev = self.device
        t0 = dev.now_us() // 1000
        self.log.append(T_SESSION, session_payload(session, SESSION_START, self.hand, 3, t0 & 0x3FFFFFFF,
                                                   dev.now_us() // 1_000_000))
        rng = random.Random(session + self.hand)
        for w0, w1 in self.activity:
            self.log.append(T_ACTIVITY, activity_payload(session, w0, w1, self.hand, 0))
        end = t0 + round(sum(p[0] for p in dev.points[-1:]))
        try:
            for i in range(self.n_events):
                await asyncio.sleep(0.3)
                on = t0 + 1000 + i * 300
                ev = events.pack([self.hand, self.kind, self.flags, 0, on & 0x3FFFFFFF, (on + 150) & 0x3FFFFFFF,
                                  rng.randint(40, 200), rng.randint(100, 5000), 20, -1, 1])
                self.log.append(T_EVENT, ev)
                self.service.live_event(ev)
            await asyncio.sleep(max(0.0, (end - dev.now_us() // 1000) / 1000))
        finally:
            self.log.append(T_SESSION, session_payload(session, SESSION_STOP, self.hand, 3,
                                                       (dev.now_us() // 1000) & 0x3FFFFFFF, 0))
            dev.session = None

    def status_state(self) -> int:
        return 2 if self.device.session is not None else 0


async def _bands(radio: Radio, root: Path, ks: Keystore) -> list[TaskBand]:
    out = []
    for hand, name in ((0, "MB-L"), (1, "MB-R")):
        b = TaskBand(radio, name, root / name, hand)
        ks.put(BandKey(b.device.band_id.hex(), _key(name), "LR"[hand], "demo-001", active=True))
        out.append(await b.start())
    return out


def _controller(radio: Radio, tmp: Path, ks: Keystore) -> BleController:
    adapter = BumbleAdapter(radio.endpoint("host"))
    return BleController(store_dir=tmp / "store", keystore=ks, scanner_backend=adapter.scanner_backend,
                         client_backend=adapter.client_backend, adapter=adapter, frame_s=0.05,
                         now=lambda: datetime(2025, 3, 4, 10, 0))


@pytest.mark.asyncio
async def test_pair_task_live_download_into_store(tmp_path: Path) -> None:
    radio = Radio()
    ks = Keystore(tmp_path / "keys.json")
    bands = await _bands(radio, tmp_path, ks)
    ctl = _controller(radio, tmp_path, ks)
    try:
        found = await ctl.scan(2.0)
        assert sorted(b.hand for b in found) == ["L", "R"]
        for b in found:
            st = await ctl.pair(b.id)
            assert st.connected and st.clock_error_ms is not None and st.battery_pct == 87
        assert [ctl._peers[i].hand for i in ctl.paired()] == ["L", "R"]  # noqa: SLF001
        await ctl.set_task(SHORT)
        await ctl.start_task()
        frames = [f async for f in ctl.live()]
        assert frames[-1].finished and not frames[-1].stopped
        live = [e for f in frames for e in f.events]
        assert sorted(e["hand"] for e in live) == ["L"] * 4 + ["R"] * 4
        assert all(e["kind"] == "mirror" and 0.0 <= e["onset_s"] <= 5.0 for e in live)
        progress = []
        res = await ctl.download(progress.append)
        assert sorted((r.hand, r.events) for r in res) == [("L", 4), ("R", 4)]
        assert progress and all(p.pages <= p.total_pages for p in progress)
        assert res[0].session_id is not None and res[0].session_id == res[1].session_id
        for b in bands:  # acknowledged: the band may free the space
            assert b.log.status()[2] == 0
        with Store(tmp_path / "store") as st:
            rows = st.db.execute("SELECT COUNT(*) FROM events WHERE session_id = ?", (res[0].session_id,))
            assert rows.fetchone()[0] == 8
        again = await ctl.download()
        assert [r.events for r in again] == [0, 0]
    finally:
        await ctl.close()
        for b in bands:
            await b.stop()
        await radio.close()


@pytest.mark.asyncio
async def test_download_carries_activity_spans_steps_and_reclassifies_peer_unknown(tmp_path: Path) -> None:
    """The right band lost the left one's beacon: its events (1.0-2.05 s, in the WRITE L step) are
    bursts marked peer_unknown. The left band's log has its writing activity (0.9-2.5 s): after
    both downloads the merged session decides them as mirror (as ``mirrorband download``)."""
    radio = Radio()
    ks = Keystore(tmp_path / "keys.json")
    left = TaskBand(radio, "MB-L", tmp_path / "MB-L", 0, n_events=0, activity=[(90, 250)])
    right = TaskBand(radio, "MB-R", tmp_path / "MB-R", 1, kind=events.KIND_BURST, flags=events.FLAG_PEER_UNKNOWN)
    bands = []
    for b, name in ((left, "MB-L"), (right, "MB-R")):
        ks.put(BandKey(b.device.band_id.hex(), _key(name), "LR"[b.hand], "demo-001", active=True))
        bands.append(await b.start())
    ctl = _controller(radio, tmp_path, ks)
    try:
        for b in await ctl.scan(2.0):
            await ctl.pair(b.id)
        await ctl.set_task(SHORT)
        await ctl.start_task()
        frames = [f async for f in ctl.live()]
        assert frames[-1].finished
        assert [e["kind"] for f in frames for e in f.events] == ["burst"] * 4  # as the band said live
        res = await ctl.download()
        sid = res[0].session_id
        assert sid is not None and sid == res[1].session_id
        with Store(tmp_path / "store") as st:
            steps = [(s["kind"], s["onset_s"], s["offset_s"]) for s in st.steps(sid)]
            assert steps == [("REST", 0.0, 1.0), ("WRITE L", 1.0, 2.0), ("WRITE R", 2.0, 3.5)]
            evs = st.events(sid)
            key = st.db.execute("SELECT band_key FROM sessions WHERE id = ?", (sid,)).fetchone()[0]
            logs = {lg["hand"]: lg for lg in st.band_logs(key)}
        assert [(e["hand"], e["kind"], e.get("reclassified"), "peer_unknown" in e) for e in evs] == [
            ("R", "mirror", True, False)] * 4
        assert logs["L"]["markers"]["activity"], logs["L"]["markers"]
    finally:
        await ctl.close()
        for b in bands:
            await b.stop()
        await radio.close()


@pytest.mark.asyncio
async def test_unprovisioned_and_lost_band_say_what_to_do(tmp_path: Path) -> None:
    radio = Radio()
    ks = Keystore(tmp_path / "keys.json")
    bands = await _bands(radio, tmp_path, ks)
    ctl = _controller(radio, tmp_path, ks)
    ctl.retry_for = 1.0
    try:
        found = {b.hand: b for b in await ctl.scan(2.0)}
        ks.remove(bands[1].device.band_id.hex())
        with pytest.raises(ControllerError, match="not provisioned on this computer"):
            await ctl.pair(found["R"].id)
        await ctl.pair(found["L"].id)
        await bands[0].stop()  # switched off
        radio.drop_all("MB-L")
        with pytest.raises(BandLost, match="stopped answering"):
            await ctl.band_status(found["L"].id)
    finally:
        await ctl.close()
        await bands[1].stop()
        await radio.close()


def test_tui_flow_on_virtual_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pilot: scan, pair both, a short guided task, download, review -- the demo's bands over BLE."""
    from textual.widgets import DataTable

    from mirrorband.cli.demo import run_demo
    from mirrorband.control import controller as C
    from mirrorband.tui import MirrorbandApp
    from mirrorband.tui.plots import LiveEnvelopes
    from mirrorband.tui.session_view import SessionView

    from .helpers import pair_both, start_protocol, text, until

    name = "Test (12 s)"
    monkeypatch.setitem(C.PROTOCOLS, name, (ProtocolStep("REST", 2), ProtocolStep("WRITE L", 5),
                                            ProtocolStep("WRITE R", 5)))

    async def flow(ctl: BleController, store_dir: Path) -> int:
        app = MirrorbandApp(ctl, store_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            await pair_both(pilot)
            assert "connected" in text(app, "#status-L") and "connected" in text(app, "#status-R")
            await start_protocol(pilot, name)
            await until(pilot, lambda: "Write with your LEFT hand" in text(app, "#big"), 30)
            await until(pilot, lambda: "Done" in text(app, "#big"), 60)
            assert text(app, "#big") == "Done — 2 bands synced"
            plot = app.screen.query_one(LiveEnvelopes)  # both hands drawn from the bands' live stream
            assert all(len(plot.values[h]) >= 100 for h in "LR"), {h: len(plot.values[h]) for h in "LR"}
            await pilot.press("4")
            table = app.screen.query_one("#sessions", DataTable)
            await until(pilot, lambda: table.row_count == 1)
            await pilot.press("enter")
            assert isinstance(app.screen, SessionView)
            await until(pilot, lambda: "Grade" in text(app, "#sv-metrics"))
            await pilot.press("escape")
            await pilot.press("q")
        return 0

    assert asyncio.run(run_demo(tmp_path, body=flow)) == 0
