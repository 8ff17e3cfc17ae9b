"""Pilot-driven flows on the virtual bands (real time, through BleController): pair -> task -> download
-> review, and trouble injected by the virtual radio and bands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable, Select

from mirrorband.tui import MirrorbandApp
from mirrorband.tui.session_view import SessionView

from .helpers import (
    SHORT,
    bands,
    corrupt_session,
    pair_all,
    pair_both,
    record,
    start_protocol,
    store_app,
    text,
    until,
)

pytestmark = [pytest.mark.timeout(180)]


def test_pair_task_download_review(tmp_path: Path) -> None:
    async def go() -> None:
        async with bands(tmp_path) as vb:
            app = MirrorbandApp(vb.controller, tmp_path)
            async with app.run_test(size=(80, 24)) as pilot:
                await pair_both(pilot)
                assert "connected" in text(app, "#status-L") and "connected" in text(app, "#status-R")
                await start_protocol(pilot, SHORT)
                await until(pilot, lambda: "Done" in text(app, "#big"))
                assert text(app, "#big") == "Done — 2 bands synced"
                assert "Session 1 is saved" in text(app, "#session-msg")
                await pilot.press("1", "r")  # after a task the bands know their electrodes
                await until(pilot, lambda: "FLEX good" in text(app, "#status-R"))
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
        async with bands(tmp_path) as vb:
            ctl = vb.controller
            app = MirrorbandApp(ctl, tmp_path)
            async with app.run_test(size=(80, 24)) as pilot:
                await pair_all(ctl)
                await record(ctl)
                # the left band goes out of range after its first packet, for 1.5 s (retry_for 1 s)
                vb.radio.radio.drop_after("band-L", 1, away_s=1.5)
                await pilot.press("3", "d")
                log = app.screen.query_one("#dl-log")
                await until(pilot, lambda: any("Saved as session" in str(line.text) for line in log.lines))
                lines = " ".join(str(line.text) for line in log.lines)
                assert "link to the left band dropped" in lines and "resuming (attempt 2" in lines
                assert "events" in str(app.screen.query_one("#what-L").render())

    asyncio.run(go())


def test_trouble_is_explained(tmp_path: Path) -> None:
    async def go() -> None:
        async with bands(tmp_path) as vb:
            radio = vb.radio.radio
            app = MirrorbandApp(vb.controller, tmp_path)
            async with app.run_test(size=(80, 24)) as pilot:
                for name in ("band-L", "band-R"):  # nobody in range
                    radio.out_of_range(name)
                await pilot.press("s")
                await until(pilot, lambda: "No bands found" in text(app, "#bands-msg"))
                await pilot.press("2", "s")  # start without bands
                await until(pilot, lambda: "no band is paired" in text(app, "#session-msg"))
                for name in ("band-L", "band-R"):
                    radio.in_range(name)

                await pilot.press("1")  # the left band goes out of range during the session
                await pair_both(pilot)
                await start_protocol(pilot, SHORT)
                await until(pilot, lambda: "Rest" in text(app, "#big") or "Write" in text(app, "#big"))
                radio.out_of_range("band-L")
                await until(pilot, lambda: "left band lost contact" in text(app, "#session-msg"))
                radio.in_range("band-L")
                await until(pilot, lambda: "Done" in text(app, "#big"), 60)
                assert text(app, "#big") == "Done — 2 bands synced"  # it came back for the download

                vb.bands["L"].board.ads_emu.set_electrodes_off(0x0C)  # the EXT pair is off the skin
                await start_protocol(pilot, SHORT)
                await until(pilot, lambda: "Session 2 is saved" in text(app, "#session-msg"), 60)
                await pilot.press("1", "r")
                await until(pilot, lambda: "left band's EXT electrode is off the skin" in text(app, "#bands-msg"))

                vb.bands["R"].fill_log()  # months without a download
                await pilot.press("r")
                await until(pilot, lambda: "storage is full" in text(app, "#bands-msg"))
                await pilot.press("2", "s")
                await until(pilot, lambda: "right band's storage is full" in text(app, "#session-msg"))

        sid = corrupt_session(tmp_path)
        app = store_app(tmp_path, mode="review")
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.screen.query_one("#sessions", DataTable)
            await until(pilot, lambda: table.row_count >= 1)
            assert "cannot be read" in text(app, "#review-msg")
            app.push_screen(SessionView(sid))
            await until(pilot, lambda: "cannot be read" in text(app, "#sv-title"))
            await pilot.press("escape", "5")
            await until(pilot, lambda: "SIM01" in str(app.screen.query_one("#trend-patient", Select).value))

    asyncio.run(go())
