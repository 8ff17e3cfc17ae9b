"""The application: five screens reached with keys 1-5, a key bar, light and dark themes."""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.binding import Binding

from mirrorband.control.controller import BandsController
from mirrorband.tui.bands_screen import BandsScreen
from mirrorband.tui.download_screen import DownloadScreen
from mirrorband.tui.review_screen import ReviewScreen
from mirrorband.tui.session_screen import SessionScreen
from mirrorband.tui.trends_screen import TrendsScreen


class MirrorbandApp(App[int]):
    """Mirrorband for patients and clinicians.

    ``controller`` reaches the bands (BLE, or :class:`~mirrorband.sim.playback.PlaybackController`);
    ``store_dir`` is the session store's directory (None: the user data directory).
    """

    TITLE = "Mirrorband"
    CSS_PATH = "app.tcss"
    MODES = {
        "bands": BandsScreen,
        "session": SessionScreen,
        "download": DownloadScreen,
        "review": ReviewScreen,
        "trends": TrendsScreen,
    }
    DEFAULT_MODE = "bands"
    BINDINGS = [
        Binding("1", "switch_mode('bands')", "Bands", show=False),
        Binding("2", "switch_mode('session')", "Session", show=False),
        Binding("3", "switch_mode('download')", "Download", show=False),
        Binding("4", "switch_mode('review')", "Review", show=False),
        Binding("5", "switch_mode('trends')", "Trends", show=False),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, controller: BandsController, store_dir: str | Path | None = None,
                 mode: str = "bands") -> None:
        super().__init__()
        self.controller = controller
        self.store_dir = store_dir
        self.sub_title = controller.description
        self._start_mode = mode

    def on_mount(self) -> None:
        if self._start_mode != "bands":
            self.switch_mode(self._start_mode)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    async def action_quit(self) -> None:
        await self.controller.close()
        self.exit(0)
