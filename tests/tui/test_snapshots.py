"""Snapshots of every screen at 80x24 (pytest-textual-snapshot; update with --snapshot-update)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from mirrorband.control.controller import PROTOCOLS
from mirrorband.tui import MirrorbandApp
from mirrorband.tui.session_view import SessionView

from .helpers import SHORT, controller, fill_store, pair_both, start_protocol, until

SIZE = (80, 24)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("store")
    fill_store(d)
    return d


def test_bands(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(MirrorbandApp(controller(tmp_path), tmp_path), terminal_size=SIZE, run_before=pair_both)


def test_session_idle(snap_compare, tmp_path: Path) -> None:
    async def before(pilot) -> None:
        await pair_both(pilot)
        await pilot.press("2")

    assert snap_compare(MirrorbandApp(controller(tmp_path), tmp_path), terminal_size=SIZE, run_before=before)


def test_session_done(snap_compare, tmp_path: Path) -> None:
    async def before(pilot) -> None:
        await pair_both(pilot)
        await start_protocol(pilot, SHORT)
        await until(pilot, lambda: "Done" in str(pilot.app.screen.query_one("#big").render()))

    assert snap_compare(MirrorbandApp(controller(tmp_path), tmp_path), terminal_size=SIZE, run_before=before)


def test_download(snap_compare, tmp_path: Path) -> None:
    async def before(pilot) -> None:
        ctl = pilot.app.controller
        for b in await ctl.scan():
            await ctl.pair(b.id)
        await ctl.set_task(PROTOCOLS[SHORT])
        await ctl.start_task()
        async for _ in ctl.live():
            pass
        await pilot.press("3", "d")
        log = pilot.app.screen.query_one("#dl-log")
        await until(pilot, lambda: any("Saved as session" in str(x.text) for x in log.lines))

    assert snap_compare(MirrorbandApp(controller(tmp_path), tmp_path), terminal_size=SIZE, run_before=before)


def test_review_list(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.query_one("#sessions", DataTable).row_count == 3)

    app = MirrorbandApp(controller(store), store, mode="review")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_session_view(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        pilot.app.push_screen(SessionView(1))
        await until(pilot, lambda: isinstance(pilot.app.screen, SessionView)
                    and "Grade" in str(pilot.app.screen.query_one("#sv-metrics").render())
                    and "peak" in str(pilot.app.screen.query_one("#sv-detail").render()))
        await pilot.pause()

    app = MirrorbandApp(controller(store), store, mode="review")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_trends(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        await until(pilot, lambda: "treatment: botox" in str(pilot.app.screen.query_one("#trend-chart").render()))

    app = MirrorbandApp(controller(store), store, mode="trends")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)


def test_light_theme(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.query_one("#sessions", DataTable).row_count == 3)
        await pilot.press("ctrl+t")

    app = MirrorbandApp(controller(store), store, mode="review")
    assert snap_compare(app, terminal_size=SIZE, run_before=before)
