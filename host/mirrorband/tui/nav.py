"""The navigation line under the header: the five screens and their keys."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

SCREENS = (("1", "Bands", "bands"), ("2", "Session", "session"), ("3", "Download", "download"),
           ("4", "Review", "review"), ("5", "Trends", "trends"))


class NavBar(Static):
    """``1 Bands  2 Session  3 Download  4 Review  5 Trends`` with the current screen highlighted."""

    def __init__(self, current: str) -> None:
        text = Text()
        for key, label, mode in SCREENS:
            style = "bold reverse" if mode == current else ""
            text.append(f" {key} ", "bold")
            text.append(f"{label} ", style)
        super().__init__(text)
