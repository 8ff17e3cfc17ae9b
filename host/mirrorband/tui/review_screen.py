"""Review (clinician mode): the stored sessions with their key figures; Enter opens one."""

from __future__ import annotations

from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mirrorband.tui.common import fmt, open_store, protocol_text
from mirrorband.tui.nav import NavBar


def session_rows(store: Any) -> list[dict[str, Any]]:
    """One summary per stored session; a session that cannot be read gets an ``error``."""
    from mirrorband.analysis.metrics import session_metrics

    out = []
    for row in store.sessions():
        d: dict[str, Any] = {"id": row.id, "patient": row.patient_id or "-", "started": row.started,
                             "duration_s": row.duration_s, "source": row.source}
        try:
            steps, events = store.steps(row.id), store.events(row.id)
            m = session_metrics(steps, events)
            worst = m["by_hand"].get(m["grade_hand"] or "", {})
            d |= {"protocol": protocol_text(steps), "grade": m["grade"], "hand": m["grade_hand"],
                  "mirror_per_min": worst.get("mirror_per_min"), "latency_s": worst.get("latency_s"),
                  "mirrors": m["event_counts"].get("mirror", 0)}
        except Exception as e:  # a corrupt row must not take the list down
            d["error"] = f"unreadable ({type(e).__name__})"
        out.append(d)
    return out


class ReviewScreen(Screen[None]):
    """The session list."""

    CSS_PATH = "review_screen.tcss"
    BINDINGS = [
        Binding("enter", "open", "Open session"),
        Binding("r", "reload", "Reload"),
    ]

    class Loaded(Message):
        def __init__(self, rows: list[dict[str, Any]] | None, error: str | None = None) -> None:
            super().__init__()
            self.rows = rows
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar("review")
        yield Static("Sessions in the store, oldest first. Grade 0-4 and mirror bursts per minute are of the "
                     "most affected resting hand. Enter opens a session.", classes="hint")
        yield Static("", id="review-msg", classes="hint")
        table: DataTable[str] = DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        for label, width in (("id", 4), ("patient", 10), ("date", 10), ("protocol (r=rest, s)", 22),
                             ("mirror", 6), ("/min", 5), ("grade", 6)):
            table.add_column(label, width=width)
        yield table
        yield Footer()

    def on_screen_resume(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, thread=True, group="store")
    def load(self) -> None:
        from mirrorband.sessions.store import StoreError

        try:
            with open_store(self.app) as st:
                rows = session_rows(st)
        except StoreError as e:
            self.post_message(self.Loaded(None, str(e)))
            return
        self.post_message(self.Loaded(rows))

    def on_review_screen_loaded(self, msg: Loaded) -> None:
        table = self.query_one("#sessions", DataTable)
        say = self.query_one("#review-msg", Static)
        if msg.rows is None:
            say.set_classes("error")
            say.update(f"{msg.error}. Check the data directory, or restore it from a backup.")
            return
        self.rows = msg.rows
        keep = table.cursor_row
        table.clear()
        for d in self.rows:
            if "error" in d:
                table.add_row(str(d["id"]), d["patient"], d["started"][:10], d["error"],
                              "-", "-", "-", key=str(d["id"]))
                continue
            grade = "-" if d["grade"] is None else f"{d['grade']} ({d['hand']})"
            table.add_row(str(d["id"]), d["patient"], d["started"][:10], d["protocol"],
                          str(d["mirrors"]), fmt(d["mirror_per_min"], ".1f"), grade, key=str(d["id"]))
        if self.rows:
            table.move_cursor(row=min(max(keep, 0), len(self.rows) - 1))
        say.set_classes("hint")
        bad = sum(1 for d in self.rows if "error" in d)
        say.update("No sessions yet: run one (2 Session) or import a recording with 'mirrorband import F.edf'."
                   if not self.rows else f"{len(self.rows)} sessions." +
                   (f" {bad} cannot be read (marked unreadable); the others are fine." if bad else ""))
        table.focus()

    @on(DataTable.RowSelected, "#sessions")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        from mirrorband.tui.session_view import SessionView

        table = self.query_one("#sessions", DataTable)
        if not self.rows or not 0 <= table.cursor_row < len(self.rows):
            return
        self.app.push_screen(SessionView(int(self.rows[table.cursor_row]["id"])))
