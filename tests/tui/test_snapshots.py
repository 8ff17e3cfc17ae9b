"""Snapshots of every screen at 80x24 (pytest-textual-snapshot's SVGs; update with --snapshot-update).

The band screens run on the virtual bands inside the test's own event loop, so they are
taken with :func:`helpers.screenshot` and compared like ``snap_compare`` does; the measured
clock round trip is pinned (it depends on the machine's load). The live plot of a finished
session is not snapshot (its time axis is the wall clock): test_flows checks that screen's text.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pytest_textual_snapshot import SVGImageExtension
from textual.widgets import DataTable

from mirrorband.tui import MirrorbandApp
from mirrorband.tui.session_view import SessionView

from .helpers import bands, fill_store, pair_all, pair_both, record, screenshot, store_app, until

SIZE = (80, 24)
pytestmark = [pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("store")
    fill_store(d)
    return d


@pytest.fixture
def svg(snapshot):
    return snapshot.use_extension(SVGImageExtension)


@pytest.fixture
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    from mirrorband.bands.ble import sync

    real = sync.sync_clock

    async def pinned(link, **kw):
        offset, _rtt = await real(link, **kw)
        return offset, 1500

    monkeypatch.setattr(sync, "sync_clock", pinned)


def on_band_screen(tmp: Path, before) -> str:
    async def go() -> str:
        async with bands(tmp) as vb:
            app = MirrorbandApp(vb.controller, tmp)
            async with app.run_test(size=SIZE) as pilot:
                await before(pilot, vb)
                return await screenshot(pilot)
    return asyncio.run(go())


def test_bands(svg, tmp_path: Path, pinned_clock) -> None:
    async def before(pilot, _vb) -> None:
        await pair_both(pilot)

    assert svg == on_band_screen(tmp_path, before)


def test_session_idle(svg, tmp_path: Path, pinned_clock) -> None:
    async def before(pilot, _vb) -> None:
        await pair_both(pilot)
        await pilot.press("2")

    assert svg == on_band_screen(tmp_path, before)


def test_download(svg, tmp_path: Path, pinned_clock) -> None:
    async def before(pilot, vb) -> None:
        await pair_all(vb.controller)
        await record(vb.controller)
        await pilot.press("3", "d")
        log = pilot.app.screen.query_one("#dl-log")
        await until(pilot, lambda: any("Saved as session" in str(x.text) for x in log.lines))

    assert svg == on_band_screen(tmp_path, before)


def test_review_list(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.query_one("#sessions", DataTable).row_count == 3)

    assert snap_compare(store_app(store, mode="review"), terminal_size=SIZE, run_before=before)


def test_session_view(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        pilot.app.push_screen(SessionView(1))
        await until(pilot, lambda: isinstance(pilot.app.screen, SessionView)
                    and "Grade" in str(pilot.app.screen.query_one("#sv-metrics").render())
                    and "peak" in str(pilot.app.screen.query_one("#sv-detail").render()))
        await pilot.pause()

    assert snap_compare(store_app(store, mode="review"), terminal_size=SIZE, run_before=before)


def test_trends(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        await until(pilot, lambda: "treatment: botox" in str(pilot.app.screen.query_one("#trend-chart").render()))

    assert snap_compare(store_app(store, mode="trends"), terminal_size=SIZE, run_before=before)


def test_light_theme(snap_compare, store: Path) -> None:
    async def before(pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.query_one("#sessions", DataTable).row_count == 3)
        await pilot.press("ctrl+t")

    assert snap_compare(store_app(store, mode="review"), terminal_size=SIZE, run_before=before)
