"""Text plots: the live envelope strip of both hands and the session timeline.

Both render with block characters and colours that read on light and dark
themes: the envelope in the default foreground, mirror bursts in red, other
bursts in yellow-orange, artifacts dimmed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"
KIND_STYLE = {"mirror": "bold red", "burst": "dark_orange", "artifact": "dim"}
HAND_WORD = {"L": "left", "R": "right"}
#: Envelope ratio (x resting baseline) at the top of a plot.
TOP_RATIO = 32.0


def level(ratio: float, rows: int) -> int:
    """Height in eighths of a character (0 .. rows*8) of an envelope ratio, log scale from 1x to TOP_RATIO."""
    if ratio <= 1.0:
        return 1 if ratio > 0 else 0
    v = math.log(ratio) / math.log(TOP_RATIO)
    return max(1, min(rows * 8, int(round(v * rows * 8))))


def bar_rows(levels: Sequence[int], styles: Sequence[str], rows: int) -> list[Text]:
    """Vertical bars (one column per level), ``rows`` lines high, top line first."""
    out = []
    for r in range(rows - 1, -1, -1):
        line = Text()
        for lv, st in zip(levels, styles, strict=True):
            part = min(8, max(0, lv - r * 8))
            line.append(BLOCKS[part], st)
        out.append(line)
    return out


def kind_at(events: Sequence[dict[str, Any]], hand: str, a: float, b: float) -> str:
    """The most notable event kind of ``hand`` overlapping [a, b) ('' when none)."""
    best = ""
    for e in events:
        if e["hand"] == hand and e["onset_s"] < b and e["offset_s"] >= a:
            k = e["kind"]
            if k == "mirror":
                return k
            if k == "burst" or not best:
                best = k
    return best


class LiveEnvelopes(Widget):
    """Scrolling envelopes of both hands, newest on the right; detected bursts coloured."""

    DEFAULT_CSS = """
    LiveEnvelopes { height: 7; }
    """

    def __init__(self, dt: float = 0.1, rows: int = 3, per_col: int = 2, **kw: Any) -> None:
        super().__init__(**kw)
        self.dt = dt
        self.rows = rows
        self.per_col = per_col
        self.values: dict[str, deque[float]] = {h: deque(maxlen=2000) for h in ("L", "R")}
        self.t_end: dict[str, float] = {"L": 0.0, "R": 0.0}
        self.events: list[dict[str, Any]] = []
        self.lost: frozenset[str] = frozenset()
        self.writing: str | None = None

    def reset(self) -> None:
        for v in self.values.values():
            v.clear()
        self.t_end = {"L": 0.0, "R": 0.0}
        self.events = []
        self.lost = frozenset()
        self.refresh()

    def push(self, t_s: float, envelopes: dict[str, list[float]], events: Sequence[dict[str, Any]],
             lost: frozenset[str], writing: str | None) -> None:
        for h, vals in envelopes.items():
            self.values[h].extend(vals)
            self.t_end[h] = t_s if vals else self.t_end[h]
        self.events.extend(events)
        self.lost = lost
        self.writing = writing
        self.refresh()

    def render(self) -> Text:
        width = max(10, self.size.width - 10)
        out = Text()
        for i, hand in enumerate(("L", "R")):
            vals = list(self.values[hand])
            n_cols = min(width, len(vals) // self.per_col)
            levels, styles = [], []
            start = len(vals) - n_cols * self.per_col
            t0 = self.t_end[hand] - (len(vals) - start) * self.dt
            for c in range(n_cols):
                chunk = vals[start + c * self.per_col: start + (c + 1) * self.per_col]
                a = t0 + c * self.per_col * self.dt
                levels.append(level(max(chunk), self.rows))
                styles.append(KIND_STYLE.get(kind_at(self.events, hand, a, a + self.per_col * self.dt), ""))
            rows = bar_rows(levels, styles, self.rows)
            tag = "writes" if self.writing == hand else "rests"
            if hand in self.lost:
                tag = "LOST"
            n_mirror = sum(1 for e in self.events if e["hand"] == hand and e["kind"] == "mirror")
            n_other = sum(1 for e in self.events if e["hand"] == hand and e["kind"] == "burst")
            labels = [(f"{HAND_WORD[hand]:<9}", "bold"), (f"{tag:<9}", "bold red" if tag == "LOST" else "dim"),
                      (f"{n_mirror:>2} mirror", "bold red" if n_mirror else "dim")] + [(" " * 9, "")] * self.rows
            for r, line in enumerate(rows):
                out.append(labels[r][0] + " ", labels[r][1])
                out.append_text(line)
                out.append("\n")
            del n_other, i
        out.append(" " * 10)
        out.append("█ mirror burst", KIND_STYLE["mirror"])
        out.append("  █ other burst", KIND_STYLE["burst"])
        out.append("  height: EMG over the resting level", "dim")
        return out


class Timeline(Widget):
    """A whole session (or a window of it): task steps, then each hand's envelope or event marks."""

    DEFAULT_CSS = """
    Timeline { height: 4; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.steps: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.envelopes: dict[str, Any] | None = None
        self.env_rate = 20.0
        self.t0 = 0.0
        self.t1 = 1.0
        self.mark: tuple[float, float] | None = None
        self._rest_cache: dict[str, float] = {}

    def show(self, steps: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]], duration_s: float,
             envelopes: dict[str, Any] | None = None, t0: float = 0.0, t1: float | None = None,
             mark: tuple[float, float] | None = None) -> None:
        self.steps, self.events, self.envelopes = list(steps), list(events), envelopes
        self.t0 = t0
        self.t1 = max(t0 + 0.1, duration_s if t1 is None else t1)
        self.mark = mark
        self._rest_cache = {}
        self.refresh()

    def _step(self, t: float) -> str:
        for s in self.steps:
            if s["onset_s"] <= t < s["offset_s"]:
                return s["kind"]
        return ""

    def render(self) -> Text:
        width = max(10, self.size.width - 7)
        dt = (self.t1 - self.t0) / width
        out = Text()
        line = Text("task   ", "dim")
        for c in range(width):
            k = self._step(self.t0 + (c + 0.5) * dt)
            if k.startswith("WRITE"):
                line.append(k[-1], "bold blue")
            else:
                line.append("·" if k == "REST" else " ", "dim")
        out.append_text(line)
        for hand in ("L", "R"):
            out.append("\n")
            row = Text(f"{hand:<7}", "bold")
            env = None if self.envelopes is None else self.envelopes.get(hand)
            for c in range(width):
                a = self.t0 + c * dt
                kind = kind_at(self.events, hand, a, a + dt)
                style = KIND_STYLE.get(kind, "")
                if self.mark and self.mark[0] < a + dt and self.mark[1] >= a:
                    style = (style + " reverse").strip()
                if env is not None and len(env):
                    lo, hi = int(a * self.env_rate), max(int(a * self.env_rate) + 1, int((a + dt) * self.env_rate))
                    seg = env[max(0, lo):max(0, hi)]
                    ratio = float(np.max(seg)) / max(self._rest_level(hand), 1e-9) if len(seg) else 0.0
                    row.append(BLOCKS[level(ratio, 1)], style)
                elif kind:
                    row.append({"mirror": "█", "burst": "▄", "artifact": "×"}[kind], style)
                else:
                    writing = self._step(a + dt / 2) == f"WRITE {hand}"
                    row.append("═" if writing else "─", "blue" if writing else "dim")
            out.append_text(row)
        out.append("\n")
        axis = Text(" " * 7, "dim")
        ticks = 5
        labels = [""] * width
        for i in range(ticks + 1):
            col = int(i * (width - 1) / ticks)
            label = f"{self.t0 + col * dt:.{0 if self.t1 - self.t0 > 20 else 1}f}s"
            labels[min(col, width - len(label))] = label
        pos = 0
        for col in range(width):
            if col < pos:
                continue
            if labels[col]:
                s = labels[col] if col + len(labels[col]) <= width else labels[col][: width - col]
                axis.append(s, "dim")
                pos = col + len(s)
            else:
                axis.append(" ")
                pos = col + 1
        out.append_text(axis)
        return out

    def _rest_level(self, hand: str) -> float:
        # the hand's quiet level: median envelope over REST steps (whole envelope when none)
        env = self.envelopes.get(hand) if self.envelopes else None
        if env is None or not len(env):
            return 1.0
        if hand not in self._rest_cache:
            # the windows i whose time i / env_rate falls in a REST step (the first matching step, as _step)
            env = np.asarray(env)
            t = np.arange(len(env)) / self.env_rate
            kind = np.full(len(env), "", dtype=object)
            for st in reversed(self.steps):
                kind[(t >= st["onset_s"]) & (t < st["offset_s"])] = st["kind"]
            rest = kind == "REST"
            base = env[rest] if rest.any() else env
            self._rest_cache[hand] = float(np.median(base)) or 1.0
        return self._rest_cache[hand]
