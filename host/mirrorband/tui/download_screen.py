"""Download: copy the bands' logs into the store, a progress bar per band, resuming after interruptions."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar, RichLog, Static

from mirrorband.control.controller import (
    ControllerError,
    DownloadInterrupted,
    DownloadProgress,
    DownloadResult,
)
from mirrorband.tui.common import controller, hand_word
from mirrorband.tui.nav import NavBar

ATTEMPTS = 4


class DownloadScreen(Screen[None]):
    """Copy what the bands recorded; an interrupted transfer resumes where it stopped."""

    CSS_PATH = "download_screen.tcss"
    BINDINGS = [Binding("d", "download", "Download")]

    class Progress(Message):
        def __init__(self, p: DownloadProgress) -> None:
            super().__init__()
            self.p = p

    class Note(Message):
        def __init__(self, text: str, error: bool = False) -> None:
            super().__init__()
            self.text = text
            self.error = error

    class Finished(Message):
        def __init__(self, results: list[DownloadResult]) -> None:
            super().__init__()
            self.results = results

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar("download")
        yield Static("Press [b]d[/b] to copy the bands' new data to this computer. If the link drops, "
                     "the copy resumes where it stopped; a band frees its memory only after the data "
                     "arrived.", classes="hint")
        for hand in ("L", "R"):
            with Horizontal(classes="dl-row"):
                yield Label(f"{hand_word(hand).capitalize()} band", classes="dl-name")
                yield ProgressBar(total=None, show_eta=False, id=f"bar-{hand}")
                yield Label("waiting", id=f"what-{hand}", classes="dl-what")
        yield RichLog(id="dl-log", wrap=True, markup=True)
        yield Footer()

    def action_download(self) -> None:
        self.query_one("#dl-log", RichLog).write("Downloading ...")
        self.download()

    @work(exclusive=True, group="download")
    async def download(self) -> None:
        ctl = controller(self.app)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                results = await ctl.download(lambda p: self.post_message(self.Progress(p)))
            except DownloadInterrupted as e:
                more = attempt < ATTEMPTS
                self.post_message(self.Note(f"{e}" + (f" — resuming (attempt {attempt + 1} of {ATTEMPTS})"
                                                     if more else ""), error=not more))
                if more:
                    continue
                self.post_message(self.Note("Bring the bands closer and press d to try again.", error=True))
                return
            except ControllerError as e:
                self.post_message(self.Note(str(e), error=True))
                return
            self.post_message(self.Finished(results))
            return

    def on_download_screen_progress(self, msg: Progress) -> None:
        p = msg.p
        if p.hand not in ("L", "R"):
            return
        self.query_one(f"#bar-{p.hand}", ProgressBar).update(total=p.total_pages, progress=p.pages)
        extra = f" (resumed at page {p.resumed_from})" if p.resumed_from else ""
        self.query_one(f"#what-{p.hand}", Label).update(f"{p.pages}/{p.total_pages} pages, {p.events} events{extra}")

    def on_download_screen_note(self, msg: Note) -> None:
        self.query_one("#dl-log", RichLog).write(f"[red]{msg.text}[/red]" if msg.error else msg.text)

    def on_download_screen_finished(self, msg: Finished) -> None:
        log = self.query_one("#dl-log", RichLog)
        sids = sorted({r.session_id for r in msg.results if r.session_id is not None})
        for r in msg.results:
            if r.hand in ("L", "R"):
                bar = self.query_one(f"#bar-{r.hand}", ProgressBar)
                bar.update(total=max(1, r.pages), progress=max(1, r.pages))
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(r.counts.items())) or "no bursts"
            if r.session_id is None:
                text = "nothing new"
            else:
                text = f"{r.events} events: {kinds}"
            if r.hand in ("L", "R"):
                self.query_one(f"#what-{r.hand}", Label).update(text)
            log.write(f"{hand_word(r.hand).capitalize()} band {r.band_id}: {text}")
        if sids:
            log.write(f"[b]Saved as session {', '.join(map(str, sids))}.[/b] Press 4 to review it.")
        else:
            log.write("The bands had nothing new: sessions are copied when they end (4 Review shows them).")
