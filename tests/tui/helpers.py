"""Shared set-up of the TUI tests: the virtual bands (real firmware on emulated sensors, virtual
radio, BleController) in real time with a pinned clock, a short protocol, and a store with known
sessions. (Fast mode is not used: with a host starting the bands one after the other, their
lockstep peer link can stall; see the report.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mirrorband.cli.demo import VirtualBands, virtual_bands
from mirrorband.control.controller import ProtocolStep

SHORT = "Test (8 s)"  # added to PROTOCOLS by conftest.py
SHORT_STEPS = (ProtocolStep("REST", 2), ProtocolStep("WRITE L", 3), ProtocolStep("WRITE R", 3))
PATIENT = "SIM01"  # the virtual bands' patient (mirrorband.sim.virtual.sim.provision_bands)
WHEN = datetime(2025, 3, 4, 10, 0)


@contextlib.asynccontextmanager
async def bands(tmp: Path, scenario: str = "moderate-R", when: datetime = WHEN,
                fast: bool = False) -> AsyncIterator[VirtualBands]:
    """Two virtual bands playing ``scenario`` (seed 7), their store in ``tmp``."""
    async with virtual_bands(tmp / "bands", scenario=scenario, seed=7, fast=fast, store_dir=tmp,
                             description="virtual bands (test)", frame_s=0.05, retry_for=1.0,
                             now=lambda: when) as vb:
        yield vb


def on_bands(tmp: Path, body: Callable[[VirtualBands], Any], **kw: Any) -> Any:
    """Run ``await body(vb)`` on :func:`bands` in a new event loop; its result."""
    async def go() -> Any:
        async with bands(tmp, **kw) as vb:
            return await body(vb)
    return asyncio.run(go())


def store_app(store: Path, mode: str = "bands") -> Any:
    """The app on a store, with a BleController that is never asked anything (review, trends)."""
    from mirrorband.bands.keystore import Keystore
    from mirrorband.control.blecontroller import BleController
    from mirrorband.tui import MirrorbandApp

    ctl = BleController(store_dir=store, keystore=Keystore(store / "keys.json"), description="no bands")
    return MirrorbandApp(ctl, store, mode=mode)


async def pair_all(ctl: Any) -> None:
    for b in await ctl.scan(2.0):
        await ctl.pair(b.id)


async def record(ctl: Any, steps: Any = SHORT_STEPS) -> list[Any]:
    """Run the protocol ``steps`` on the paired bands; its live frames."""
    await ctl.set_task(steps)
    await ctl.start_task()
    return [f async for f in ctl.live()]


def fill_store(tmp: Path) -> None:
    """Three band sessions of SIM01 (one before, two after a botox date) recorded by the virtual
    bands (the patient changes between them), and the treatment."""
    from mirrorband.sim.virtual.signals import from_scenario

    async def three(vb: VirtualBands) -> None:
        ctl = vb.controller
        await pair_all(ctl)
        for when, sc in ((datetime(2025, 1, 10, 9), "severe-R"), (datetime(2025, 2, 20, 9), "moderate-R"),
                         (datetime(2025, 3, 30, 9), "mild-R")):
            patient = await asyncio.to_thread(from_scenario, sc, 7)
            for b in vb.bands.values():
                b.session = patient  # what the sensors see from the next task on
            ctl.now = lambda when=when: when
            await record(ctl)
            await ctl.download()

    on_bands(tmp, three)
    from mirrorband.sessions.store import Store

    with Store(tmp) as st:
        st.add_treatment(PATIENT, "2025-02-01", "botox", "FCR 20 U")


def corrupt_session(tmp: Path) -> int:
    from mirrorband.sessions.store import Store

    with Store(tmp) as st:
        sid = st.insert_session({"patient_id": "demo-002", "started": "2025-01-01T08:00:00", "source": "bands",
                                 "duration_s": 60.0}, [{"kind": "REST", "onset_s": 0.0, "offset_s": 60.0}],
                                [{"hand": "L", "kind": "mirror", "onset_s": 1.0, "offset_s": 2.0}])
        st.db.execute("UPDATE events SET data = '{broken' WHERE session_id = ?", (sid,))
    return sid


async def until(pilot: Any, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until ``cond()`` holds (fails the test after ``timeout`` s)."""
    from textual.css.query import NoMatches

    def ok() -> bool:
        try:
            return cond()
        except NoMatches:  # a screen still being composed
            return False
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not ok():
        if loop.time() > end:
            raise AssertionError("timed out waiting for the UI")
        await pilot.pause(0.05)


def text(app: Any, selector: str) -> str:
    """The rendered text of a Static on the current screen ("" while the screen is being pushed)."""
    from textual.css.query import NoMatches
    from textual.widgets import Static

    try:
        return str(app.screen.query_one(selector, Static).render())
    except NoMatches:
        return ""


async def pair_both(pilot: Any) -> None:
    """Bands screen: scan, wait for both bands, pair all, wait until both are paired and ready."""
    from textual.widgets import DataTable

    app = pilot.app
    await pilot.press("s")
    await until(pilot, lambda: app.screen.query_one("#bands-table", DataTable).row_count == 2)
    await pilot.press("a")
    await until(pilot, lambda: "paired and ready" in text(app, "#bands-msg"))


async def start_protocol(pilot: Any, name: str) -> None:
    """Session screen: choose the protocol ``name`` and start it."""
    from textual.widgets import Select

    await pilot.press("2")
    pilot.app.screen.query_one("#protocol", Select).value = name
    await pilot.pause()
    await pilot.press("s")


async def screenshot(pilot: Any) -> str:
    """The SVG ``snap_compare`` would take now (same settling; for apps run inside our own loop)."""
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    return pilot.app.export_screenshot(title=pilot.app.title)
