"""Pilot-driven flows against the playback controller: pair -> task -> download -> review, and trouble."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Select

from mirrorband.sim.playback import Faults
from mirrorband.tui import MirrorbandApp
from mirrorband.tui.session_view import SessionView

from .helpers import SHORT, controller, corrupt_session, pair_both, start_protocol, text, until


def test_pair_task_download_review(tmp_path: Path) -> None:
    async def go() -> None:
        app = MirrorbandApp(controller(tmp_path), tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pair_both(pilot)
            assert "connected" in text(app, "#status-L") and "FLEX good" in text(app, "#status-R")
            await start_protocol(pilot, SHORT)
            await until(pilot, lambda: "Done" in text(app, "#big"))
            assert text(app, "#big") == "Done — 2 bands synced"
            assert "Session 1 is saved" in text(app, "#session-msg")
            await pilot.press("4")
            table = app.screen.query_one("#sessions", DataTable)
            await until(pilot, lambda: table.row_count == 1)
            await pilot.press("enter")
            assert isinstance(app.screen, SessionView)
            await until(pilot, lambda: "Grade" in text(app, "#sv-metrics"))
            events = app.screen.query_one("#sv-events", DataTable)
            n = events.row_count
            assert n > 0
            await pilot.press("k")  # mirror only
            assert "kind: mirror" in text(app, "#sv-filter")
            assert 0 < events.row_count <= n
            await pilot.press("o", "o")  # sort by peak
            assert "sort: peak" in text(app, "#sv-filter")
            assert "peak ×" in text(app, "#sv-detail")
            await pilot.press("escape")
            await pilot.press("q")

    asyncio.run(go())


def test_download_screen_resumes(tmp_path: Path) -> None:
    async def go() -> None:
        ctl = controller(tmp_path, faults=Faults(drop_download={"L": 0}))
        app = MirrorbandApp(ctl, tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            for b in await ctl.scan():
                await ctl.pair(b.id)
            await ctl.set_task(ctl_steps())
            await ctl.start_task()
            async for _ in ctl.live():
                pass
            await pilot.press("3", "d")
            log = app.screen.query_one("#dl-log")
            await until(pilot, lambda: any("Saved as session" in str(line.text) for line in log.lines))
            lines = " ".join(str(line.text) for line in log.lines)
            assert "dropped at page 0" in lines and "resuming (attempt 2" in lines
            assert "events" in str(app.screen.query_one("#what-L").render())

    asyncio.run(go())


def ctl_steps():
    from mirrorband.control.controller import PROTOCOLS

    return PROTOCOLS[SHORT]


def test_trouble_is_explained(tmp_path: Path) -> None:
    async def go() -> None:
        app = MirrorbandApp(controller(tmp_path, faults=Faults(no_bands=True)), tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("s")
            await until(pilot, lambda: "No bands found" in text(app, "#bands-msg"))
            await pilot.press("2", "s")  # start without bands
            await until(pilot, lambda: "no band is paired" in text(app, "#session-msg"))

        faults = Faults(storage_full=frozenset({"R"}))
        app = MirrorbandApp(controller(tmp_path, faults=faults), tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("s")
            await until(pilot, lambda: app.screen.query_one("#bands-table", DataTable).row_count == 2)
            await pilot.press("a")
            await until(pilot, lambda: "storage is full" in text(app, "#bands-msg"))
            await pilot.press("2", "s")
            await until(pilot, lambda: "storage is full" in text(app, "#session-msg"))

        app = MirrorbandApp(controller(tmp_path, speed=100, faults=Faults(lose_band=("L", 12.0))), tmp_path)
        async with app.run_test(size=(80, 24)) as pilot:
            await pair_both(pilot)
            await start_protocol(pilot, SHORT)
            await until(pilot, lambda: "Done" in text(app, "#big"))
            assert text(app, "#big") == "Done — 2 bands synced"  # it came back for the download
            assert "left band lost contact" in text(app, "#session-msg")

        sid = corrupt_session(tmp_path)
        app = MirrorbandApp(controller(tmp_path), tmp_path, mode="review")
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one("#sessions", DataTable)
            await until(pilot, lambda: table.row_count >= 1)
            assert "cannot be read" in text(app, "#review-msg")
            app.push_screen(SessionView(sid))
            await until(pilot, lambda: "cannot be read" in text(app, "#sv-title"))
            await pilot.press("escape", "5")
            await until(pilot, lambda: "demo-001" in str(app.screen.query_one("#trend-patient", Select).value))

    asyncio.run(go())
