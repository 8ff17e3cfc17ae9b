"""The Mirrorband terminal UI (Textual): bands, guided session, download, review, trends.

It talks to the bands only through a :class:`mirrorband.controller.BandsController`
and reads sessions from the store (:mod:`mirrorband.store`, :mod:`mirrorband.metrics`,
:mod:`mirrorband.trends`). Only this package and :mod:`mirrorband.tui_cmd` import textual.
"""

from .app import MirrorbandApp

__all__ = ["MirrorbandApp"]
