"""Trends: one measure of a patient across sessions, treatment dates marked."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Select, Static

from mirrorband.analysis.trends import TREND_METRICS
from mirrorband.tui.common import hand_word, open_store
from mirrorband.tui.nav import NavBar

METRIC_LABELS = {
    "grade": "grade 0-4", "mirror_per_min": "mirror bursts / min of writing", "latency_s": "latency to first (s)",
    "mirror_fraction": "fraction of writing with mirror", "emg_ratio": "mirror EMG ratio task/rest",
    "mean_duration_s": "mean burst duration (s)", "max_duration_s": "longest burst (s)",
    "cci": "co-contraction index", "imu_deg": "wrist rotation (°)",
}
BAR_WIDTH = 36


def trend_chart(t: dict[str, Any], metric: str) -> Text:
    """Horizontal bars, one per session in date order, treatment lines between them."""
    vals = [s["metrics"].get(metric) for s in t["sessions"]]
    top = max((v for v in vals if isinstance(v, (int, float))), default=0.0) or 1.0
    out = Text()
    out.append(f"{METRIC_LABELS.get(metric, metric)} — {hand_word(t['hand'])} hand at rest while the other "
               f"writes; change against session {t['baseline']}\n", "bold")
    treats = list(t["treatments"])

    def treat_line(tr: dict[str, Any]) -> None:
        out.append(f"── {tr['date']}  treatment: {tr['kind']}" + (f" ({tr['note']})" if tr["note"] else "") + "\n",
                   "bold magenta")
    for s, v in zip(t["sessions"], vals, strict=True):
        day = s["started"][:10]
        while treats and treats[0]["date"] <= day:
            treat_line(treats.pop(0))
        out.append(f"{day} #{s['id']:<4}", "")
        if isinstance(v, (int, float)):
            n = int(round(BAR_WIDTH * float(v) / top))
            out.append("█" * n, "red" if metric in ("grade", "mirror_per_min", "mirror_fraction") else "blue")
            out.append(" " * (BAR_WIDTH - n + 1))
            out.append(f"{v:g}")
            rel = s["change"][metric]["relative"]
            if rel is not None and s["id"] != t["baseline"]:
                out.append(f"  {rel * 100:+.0f} %", "dim")
        else:
            out.append("no value (no writing step of the other hand)", "dim")
        out.append("\n")
    for tr in treats:
        treat_line(tr)
    return out


class TrendsScreen(Screen[None]):
    """A patient's chosen measure across sessions."""

    CSS_PATH = "trends_screen.tcss"

    class Patients(Message):
        def __init__(self, patients: list[str], error: str | None = None) -> None:
            super().__init__()
            self.patients = patients
            self.error = error

    class Trend(Message):
        def __init__(self, trend: dict[str, Any] | None, error: str | None = None) -> None:
            super().__init__()
            self.trend = trend
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.trend: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar("trends")
        with Horizontal(id="trend-pick"):
            yield Select([], prompt="patient", id="trend-patient")
            yield Select([(METRIC_LABELS[m], m) for m in TREND_METRICS], value="mirror_per_min",
                         allow_blank=False, id="trend-metric")
        with VerticalScroll(id="trend-scroll"):
            yield Static("Choose a patient.", id="trend-chart")
        yield Static("Tab: patient / measure, Enter: open the list. Treatments: 'mirrorband treatment add "
                     "--patient ID --date D --kind botox'.",
                     classes="hint")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.load_patients()

    @work(exclusive=True, thread=True, group="store")
    def load_patients(self) -> None:
        from mirrorband.sessions.store import StoreError

        try:
            with open_store(self.app) as st:
                pats = [p for p in st.patients() if st.sessions(p)]
        except StoreError as e:
            self.post_message(self.Patients([], str(e)))
            return
        self.post_message(self.Patients(pats))

    def on_trends_screen_patients(self, msg: Patients) -> None:
        sel = self.query_one("#trend-patient", Select)
        chart = self.query_one("#trend-chart", Static)
        if msg.error:
            chart.update(Text(msg.error, "bold red"))
            return
        current = sel.value
        sel.set_options([(p, p) for p in msg.patients])
        if not msg.patients:
            chart.update("No patient has sessions yet: run a session (2) or import a recording.")
        elif current in msg.patients:
            sel.value = current
        else:
            sel.value = msg.patients[0]

    @on(Select.Changed, "#trend-patient")
    def _patient(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#trend-chart", Static).update(f"Computing the trend of {event.value} ...")
            self.load_trend(event.value)

    @on(Select.Changed, "#trend-metric")
    def _metric(self, event: Select.Changed) -> None:
        self._draw()

    @work(exclusive=True, thread=True, group="trend")
    def load_trend(self, patient: str) -> None:
        from mirrorband.analysis.trends import patient_trend

        try:
            with open_store(self.app) as st:
                t = patient_trend(st, patient)
        except Exception as e:  # a corrupt session must not take the screen down
            self.post_message(self.Trend(None, f"Cannot compute the trend of {patient}: {e}"))
            return
        self.post_message(self.Trend(t))

    def on_trends_screen_trend(self, msg: Trend) -> None:
        if msg.trend is None:
            self.query_one("#trend-chart", Static).update(Text(msg.error or "", "bold red"))
            return
        self.trend = msg.trend
        self._draw()

    def _draw(self) -> None:
        if self.trend is None:
            return
        metric = self.query_one("#trend-metric", Select).value
        if isinstance(metric, str):
            self.query_one("#trend-chart", Static).update(trend_chart(self.trend, metric))
