"""The Mirrorband terminal UI (Textual): bands, guided session, download, review, trends.

It talks to the bands only through a :class:`mirrorband.control.controller.BandsController`
and reads sessions from the store (:mod:`mirrorband.sessions.store`, :mod:`mirrorband.analysis.metrics`,
:mod:`mirrorband.analysis.trends`). Only this package and :mod:`mirrorband.cli.tui` import textual.
"""

from mirrorband.tui.app import MirrorbandApp

__all__ = ["MirrorbandApp"]
