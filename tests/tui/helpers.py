"""Shared set-up of the TUI tests: a pinned playback controller and a store with known sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mirrorband.control.controller import PROTOCOLS
from mirrorband.sim.playback import Faults, PlaybackController

SHORT = "Short check (1 min)"


def controller(tmp: Path, speed: float = 200, faults: Faults | None = None,
               when: datetime = datetime(2025, 3, 4, 10, 0)) -> PlaybackController:
    return PlaybackController("moderate-R", seed=7, speed=speed, store_dir=tmp, frame_s=0.02,
                              faults=faults, now=lambda: when)


def fill_store(tmp: Path) -> None:
    """Three band sessions of demo-001 (one before, two after a botox date) and one corrupt session."""
    async def one(when: datetime, scenario: str) -> None:
        c = PlaybackController(scenario, seed=7, speed=1000, store_dir=tmp, frame_s=0.01, now=lambda: when)
        for b in await c.scan():
            await c.pair(b.id)
        await c.set_task(PROTOCOLS["Standard, right hand affected"])
        await c.start_task()
        async for _ in c.live():
            pass
        await c.download()

    for when, sc in ((datetime(2025, 1, 10, 9), "severe-R"), (datetime(2025, 2, 20, 9), "moderate-R"),
                     (datetime(2025, 3, 30, 9), "mild-R")):
        asyncio.run(one(when, sc))
    from mirrorband.sessions.store import Store

    with Store(tmp) as st:
        st.add_treatment("demo-001", "2025-02-01", "botox", "FCR 20 U")


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
