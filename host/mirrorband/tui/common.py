"""Helpers shared by the screens: the typed app, plain wording, the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.app import App

if TYPE_CHECKING:
    from mirrorband.control.controller import BandsController
    from mirrorband.tui.app import MirrorbandApp

HAND_WORD = {"L": "left", "R": "right", None: "unknown"}


def mb_app(app: App[Any]) -> MirrorbandApp:
    return cast("MirrorbandApp", app)


def controller(app: App[Any]) -> BandsController:
    return mb_app(app).controller


def open_store(app: App[Any]) -> Any:
    """A new :class:`~mirrorband.sessions.store.Store` connection (call in the thread that uses it)."""
    from mirrorband.sessions.store import Store

    return Store(mb_app(app).store_dir)


def hand_word(hand: str | None) -> str:
    return HAND_WORD.get(hand, "unknown")


def fmt(v: Any, spec: str, unit: str = "") -> str:
    return (format(v, spec) + unit) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def protocol_text(steps: list[dict[str, Any]]) -> str:
    """``r15 L60 r10 R60 r10``: rest / writing hand and seconds of each step."""
    parts = []
    for s in steps:
        k = "r" if s["kind"] == "REST" else s["kind"][-1]
        parts.append(f"{k}{s['offset_s'] - s['onset_s']:.0f}")
    return " ".join(parts) if parts else "-"
