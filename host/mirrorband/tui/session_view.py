"""One session for the clinician: summary measures, timeline of both hands, event table and detail."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mirrorband.tui.common import fmt, hand_word, open_store, protocol_text
from mirrorband.tui.plots import KIND_STYLE, Timeline

SORTS = (("onset", lambda e: e["onset_s"]), ("duration", lambda e: -(e["offset_s"] - e["onset_s"])),
         ("peak", lambda e: -(e.get("peak_ratio") or 0.0)), ("hand", lambda e: (e["hand"], e["onset_s"])))
KINDS = (None, "mirror", "burst", "artifact")
HANDS = (None, "L", "R")


def metrics_text(m: dict[str, Any]) -> Text:
    """Summary measures, one line per resting hand."""
    t = Text()
    g = m.get("grade")
    t.append(f"Grade {g if g is not None else '-'}", "bold red" if g else "bold")
    if m.get("grade_hand"):
        t.append(f" ({hand_word(m['grade_hand'])} hand)")
    counts = m.get("event_counts", {})
    t.append("   events: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"))
    if m.get("peer_unknown"):
        t.append(f"   {m['peer_unknown']} classified without the other band", "dark_orange")
    for hand, h in sorted(m.get("by_hand", {}).items()):
        t.append(f"\n{hand_word(hand):<5} resting: ", "bold")
        t.append(f"{fmt(h.get('mirror_per_min'), '.1f')}/min · 1st {fmt(h.get('latency_s'), '.1f', ' s')} · "
                 f"{fmt((h.get('mirror_fraction') or 0) * 100, '.1f', '%')} of writing · "
                 f"EMG×{fmt(h.get('emg_ratio'), '.2f')} · CCI {fmt(h.get('cci'), '.2f')} · "
                 f"grade {fmt(h.get('grade'), 'd')}")
    return t


class SessionView(Screen[None]):
    """Review of session ``sid``."""

    CSS_PATH = "session_view.tcss"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("k", "cycle_kind", "Kind"),
        Binding("h", "cycle_hand", "Hand"),
        Binding("o", "cycle_sort", "Sort"),
    ]

    class Loaded(Message):
        def __init__(self, data: dict[str, Any] | None, error: str | None = None) -> None:
            super().__init__()
            self.data = data
            self.error = error

    def __init__(self, sid: int) -> None:
        super().__init__()
        self.sid = sid
        self.data: dict[str, Any] | None = None
        self.kind_i = 0
        self.hand_i = 0
        self.sort_i = 0
        self.shown: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Session {self.sid}: loading ...", id="sv-title", classes="title")
        yield Static("", id="sv-metrics")
        yield Timeline(id="sv-timeline")
        yield Static("", id="sv-filter", classes="hint")
        with Horizontal(id="sv-body"):
            table: DataTable[str] = DataTable(id="sv-events", cursor_type="row", zebra_stripes=True)
            for label, width in (("hand", 4), ("kind", 9), ("onset s", 7), ("dur s", 5), ("peak×", 5)):
                table.add_column(label, width=width)
            yield table
            with Vertical(id="sv-side"):
                yield Static("", id="sv-detail")
                yield Timeline(id="sv-snippet")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, thread=True)
    def load(self) -> None:
        from mirrorband.analysis.metrics import for_session, session_metrics
        from mirrorband.sessions.session import load
        from mirrorband.sessions.store import StoreError

        try:
            with open_store(self.app) as st:
                s = load(st, self.sid)
                note = ""
                try:
                    m, envs = for_session(st, s, envelopes=True)
                except StoreError as e:  # signals unusable: measures from the events alone
                    m, envs = session_metrics(s.steps, s.events), None
                    note = f" (signals unusable: {e})"
        except Exception as e:  # corrupt session: say so, keep the app alive
            self.post_message(self.Loaded(None, f"Session {self.sid} cannot be read ({e}). The other sessions "
                                                "are fine; re-import its recording or re-download its bands."))
            return
        self.post_message(self.Loaded({"session": s, "metrics": m, "envelopes": envs, "note": note}))

    def on_session_view_loaded(self, msg: Loaded) -> None:
        title = self.query_one("#sv-title", Static)
        if msg.data is None:
            title.set_classes("error")
            title.update(msg.error or "")
            return
        self.data = msg.data
        s = msg.data["session"]
        src = "bands" if s.source == "bands" else f"recording {s.name}"
        title.update(f"Session {s.id} · {s.patient_id or 'no patient'} · {s.started[:16].replace('T', ' ')} · "
                     f"{s.duration_s:.0f} s · {src}{msg.data['note']}\nprotocol: {protocol_text(s.steps)}")
        self.query_one("#sv-metrics", Static).update(metrics_text(msg.data["metrics"]))
        self.query_one("#sv-timeline", Timeline).show(s.steps, s.events, s.duration_s, msg.data["envelopes"])
        self._fill()
        self.query_one("#sv-events", DataTable).focus()

    # --- table ---------------------------------------------------------------------------------
    def _fill(self) -> None:
        if self.data is None:
            return
        kind, hand = KINDS[self.kind_i], HANDS[self.hand_i]
        name, key = SORTS[self.sort_i]
        evs = [e for e in self.data["session"].events
               if (kind is None or e["kind"] == kind) and (hand is None or e["hand"] == hand)]
        self.shown = sorted(evs, key=key)
        table = self.query_one("#sv-events", DataTable)
        table.clear()
        for e in self.shown:
            k = e["kind"] + ("?" if e.get("peer_unknown") else "")
            table.add_row(e["hand"], Text(k, KIND_STYLE.get(e["kind"], "")), f"{e['onset_s']:.2f}",
                          f"{e['offset_s'] - e['onset_s']:.2f}", fmt(e.get("peak_ratio"), ".1f"))
        self.query_one("#sv-filter", Static).update(
            f"[b]k[/b] kind: {kind or 'all'}   [b]h[/b] hand: {hand or 'both'}   [b]o[/b] sort: {name}   "
            f"{len(self.shown)} of {len(self.data['session'].events)} events")
        self._detail(0 if self.shown else None)

    def action_cycle_kind(self) -> None:
        self.kind_i = (self.kind_i + 1) % len(KINDS)
        self._fill()

    def action_cycle_hand(self) -> None:
        self.hand_i = (self.hand_i + 1) % len(HANDS)
        self._fill()

    def action_cycle_sort(self) -> None:
        self.sort_i = (self.sort_i + 1) % len(SORTS)
        self._fill()

    @on(DataTable.RowHighlighted, "#sv-events")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    def _detail(self, i: int | None) -> None:
        det = self.query_one("#sv-detail", Static)
        snip = self.query_one("#sv-snippet", Timeline)
        if i is None or not 0 <= i < len(self.shown) or self.data is None:
            det.update("No event matches the filter." if self.data else "")
            snip.display = False
            return
        e = self.shown[i]
        t = Text()
        t.append(f"{e['kind']} · {hand_word(e['hand'])} hand\n", KIND_STYLE.get(e["kind"], "bold") + " bold")
        t.append(f"{e['onset_s']:.2f}-{e['offset_s']:.2f} s ({e['offset_s'] - e['onset_s']:.2f} s)\n")
        t.append(f"peak ×{fmt(e.get('peak_ratio'), '.1f')}  area {fmt(e.get('area'), '.2f')}\n")
        t.append(f"{'+'.join(e.get('channels', [])) or '-'}  CCI {fmt(e.get('cci'), '.2f')}  "
                 f"rot {fmt(e.get('imu_deg'), '.1f', '°')}")
        if e.get("artifact"):
            t.append(f"\nartifact: {e['artifact']}")
        if e.get("peer_unknown"):
            t.append("\nother band not heard: kind from the task step", "dark_orange")
        if e.get("reclassified"):
            t.append("\nkind decided from the other band's log")
        det.update(t)
        s = self.data["session"]
        a, b = max(0.0, e["onset_s"] - 2.0), min(s.duration_s, e["offset_s"] + 2.0)
        snip.display = True
        snip.show(s.steps, s.events, s.duration_s, self.data["envelopes"], a, b, (e["onset_s"], e["offset_s"]))
