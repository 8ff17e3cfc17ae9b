"""The TUI tests' short protocol (the virtual bands record in real time)."""

from __future__ import annotations

import pytest

from mirrorband.control import controller as C

from .helpers import SHORT, SHORT_STEPS


@pytest.fixture(autouse=True)
def short_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(C.PROTOCOLS, SHORT, SHORT_STEPS)
