"""Session (patient mode): choose today's protocol, follow big instructions with a countdown, watch both hands."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Digits, Footer, Header, ProgressBar, Select, Static

from mirrorband.control.controller import (
    PROTOCOLS,
    ControllerError,
    DownloadInterrupted,
    DownloadProgress,
    DownloadResult,
    LiveFrame,
    ProtocolStep,
)
from mirrorband.tui.common import controller, hand_word
from mirrorband.tui.plots import LiveEnvelopes

DOWNLOAD_ATTEMPTS = 4


def instruction(step: ProtocolStep | None) -> tuple[str, str]:
    """(big instruction, the line under it) for a step."""
    if step is None:
        return "", ""
    if step.kind == "REST":
        return "Rest both hands", "Let both hands lie still and relaxed on the table."
    hand = hand_word(step.hand)
    other = hand_word("L" if step.hand == "R" else "R")
    return (f"Write with your {hand.upper()} hand",
            f"Write normally until the countdown ends. Let the {other} hand rest on the table.")


def protocol_line(steps: tuple[ProtocolStep, ...]) -> str:
    parts = ["rest" if s.kind == "REST" else f"write {hand_word(s.hand)}" for s in steps]
    return " → ".join(f"{p} {s.seconds:.0f} s" for p, s in zip(parts, steps, strict=True))


class SessionScreen(Screen[None]):
    """Today's session, guided step by step."""

    CSS_PATH = "session_screen.tcss"
    BINDINGS = [
        Binding("s", "start", "Start", priority=True),
        Binding("x", "stop", "Stop", priority=True),
    ]

    class Frame(Message):
        def __init__(self, frame: LiveFrame) -> None:
            super().__init__()
            self.frame = frame

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Synced(Message):
        def __init__(self, results: list[DownloadResult], problem: str | None) -> None:
            super().__init__()
            self.results = results
            self.problem = problem

    class SyncProgress(Message):
        def __init__(self, p: DownloadProgress) -> None:
            super().__init__()
            self.p = p

    def __init__(self) -> None:
        super().__init__()
        self.state = "idle"  # idle | starting | running | syncing | done
        self.steps: tuple[ProtocolStep, ...] = next(iter(PROTOCOLS.values()))
        self.step_index = -1
        self.notices: list[str] = []
        self.lost: frozenset[str] = frozenset()

    def compose(self) -> ComposeResult:
        from mirrorband.tui.nav import NavBar

        yield Header()
        yield NavBar("session")
        with Horizontal(id="choose"):
            yield Static("Today's protocol:", id="choose-label")
            yield Select([(name, name) for name in PROTOCOLS], value=next(iter(PROTOCOLS)),
                         allow_blank=False, id="protocol")
            yield Button("Start", variant="success", id="start")
        with Vertical(id="cue"):
            yield Static("Press s to start", id="big")
            with Horizontal(id="clock"):
                yield Digits("", id="countdown")
                yield Static("", id="detail")
        yield ProgressBar(total=1, show_eta=False, id="task-progress")
        yield LiveEnvelopes(id="live")
        yield Static("", id="session-msg", classes="hint")
        yield Footer()

    def on_mount(self) -> None:
        self._show_idle()

    def on_screen_resume(self) -> None:
        if self.state in ("idle", "done"):
            self.query_one("#start", Button).focus()
            if self.state == "idle":
                self._show_idle()

    def _show_idle(self) -> None:
        self._set_step(protocol_line(self.steps))
        self.query_one("#big", Static).update("Press s to start")
        self.query_one("#detail", Static).update(
            "Sit at a table with pen and paper. The bands buzz at each change of step.")
        self.query_one("#countdown", Digits).update("")
        n = len(controller(self.app).paired())
        if n < 2:
            self._say(f"{n} of 2 bands paired: pair both first (press 1 for Bands).", error=True)
        else:
            self._say("Both bands are paired. Choose another protocol above only if your clinician "
                      "asked for it.")

    def _set_step(self, text: str) -> None:
        self.query_one("#big", Static).border_title = text

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    @on(Select.Changed, "#protocol")
    def protocol_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value in PROTOCOLS and self.state in ("idle", "done"):
            self.steps = PROTOCOLS[event.value]
            self._show_idle()

    # --- start / stop --------------------------------------------------------------------------
    def action_start(self) -> None:
        if self.state not in ("idle", "done"):
            return
        self.state = "starting"
        self.notices = []
        self.lost = frozenset()
        self.query_one(LiveEnvelopes).reset()
        self.query_one("#choose").display = False
        self.query_one("#big", Static).update("Getting the bands ready ...")
        self.query_one("#task-progress", ProgressBar).update(total=sum(s.seconds for s in self.steps), progress=0)
        self._say("Synchronising the bands' clocks and sending them the protocol ...")
        self.run_task()

    async def action_stop(self) -> None:
        if self.state in ("running", "starting"):
            self._say("Stopping ... what was recorded is kept.")
            await controller(self.app).stop_task()

    @work(exclusive=True, group="task")
    async def run_task(self) -> None:
        ctl = controller(self.app)
        try:
            await ctl.set_task(self.steps)
            await ctl.start_task()
            async for frame in ctl.live():
                self.post_message(self.Frame(frame))
        except ControllerError as e:
            self.post_message(self.Failed(str(e)))

    @work(exclusive=True, group="task")
    async def sync(self) -> None:
        ctl = controller(self.app)
        problem = None
        results: list[DownloadResult] = []
        for _ in range(DOWNLOAD_ATTEMPTS):
            try:
                results = await ctl.download(lambda p: self.post_message(self.SyncProgress(p)))
                problem = None
                break
            except DownloadInterrupted as e:
                problem = str(e)
            except ControllerError as e:
                problem = str(e)
                break
        self.post_message(self.Synced(results, problem))

    # --- messages ------------------------------------------------------------------------------
    def on_session_screen_frame(self, msg: Frame) -> None:
        f = msg.frame
        if self.state == "starting":
            self.state = "running"
        live = self.query_one(LiveEnvelopes)
        live.push(f.t_s, f.envelopes, f.events, f.lost, f.step.hand if f.step else None)
        self.notices += f.notices
        self.lost = f.lost
        self.query_one("#task-progress", ProgressBar).update(progress=f.t_s)
        if f.finished:
            self._finished(f)
            return
        if f.step is not None:
            big, detail = instruction(f.step)
            nxt = self.steps[f.step_index + 1] if f.step_index + 1 < len(self.steps) else None
            if nxt is not None:
                detail += f"\nNext: {instruction(nxt)[0].lower()}."
            self._set_step(f"Step {f.step_index + 1} of {len(self.steps)}")
            self.query_one("#big", Static).update(big)
            self.query_one("#detail", Static).update(detail)
            secs = int(f.remaining_s + 0.999)
            self.query_one("#countdown", Digits).update(f"{secs // 60}:{secs % 60:02d}")
        self._say(" ".join(self.notices[-1:]) or "Press x to stop early; what was recorded is kept.",
                  error=bool(self.lost))

    def _finished(self, f: LiveFrame) -> None:
        self.state = "syncing"
        self.query_one("#countdown", Digits).update("")
        self._set_step("Stopped early" if f.stopped else "All steps done")
        self.query_one("#big", Static).update("Saving ...")
        self.query_one("#detail", Static).update("Keep the bands near the computer while their data is copied.")
        self._say("Copying the session from the bands ...")
        self.sync()

    def on_session_screen_sync_progress(self, msg: SyncProgress) -> None:
        p = msg.p
        self._say(f"Copying from the {hand_word(p.hand)} band: page {p.pages} of {p.total_pages} ...")

    def on_session_screen_synced(self, msg: Synced) -> None:
        self.state = "done"
        n = sum(1 for r in msg.results if r.session_id is not None)
        total = len(controller(self.app).paired())
        self.query_one("#choose").display = True
        if msg.problem is None and n == total:
            self.query_one("#big", Static).update(f"Done — {n} band{'s' * (n != 1)} synced")
            self.query_one("#detail", Static).update("Thank you. You can take the bands off and charge them.")
            sid = next((r.session_id for r in msg.results if r.session_id is not None), None)
            lost = " and ".join(hand_word(h) for h in sorted(self.lost))
            self._say(f"Session {sid} is saved. Your clinician will review it (4 Review)." +
                      (f" The {lost} band lost contact during the session; it kept recording and its "
                       "data was copied afterwards." if lost else ""))
        else:
            self.query_one("#big", Static).update(f"Done — {n} of {total} bands synced")
            self.query_one("#detail", Static).update("The recording is kept on the bands.")
            self._say(f"{msg.problem or 'A band did not answer.'} Bring the bands close and open "
                      "3 Download to copy the rest.", error=True)

    def on_session_screen_failed(self, msg: Failed) -> None:
        self.state = "idle"
        self.query_one("#choose").display = True
        self.query_one("#big", Static).update("Not started")
        self.query_one("#detail", Static).update("")
        self._say(msg.text, error=True)

    def _say(self, text: str, error: bool = False) -> None:
        w = self.query_one("#session-msg", Static)
        w.set_classes("error" if error else "hint")
        w.update(text)
