"""Bands: scan, pair, status of each band (hand, battery, storage, clock, firmware, electrodes), provision."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from mirrorband.control.controller import BandInfo, BandStatus, ControllerError
from mirrorband.tui.common import controller, hand_word
from mirrorband.tui.nav import NavBar
from mirrorband.tui.provision_dialog import ProvisionDialog, ProvisionRequest


class BandsScreen(Screen[None]):
    """Find the bands, pair them and check they are ready."""

    CSS_PATH = "bands_screen.tcss"
    BINDINGS = [
        Binding("s", "scan", "Scan"),
        Binding("p", "pair", "Pair selected"),
        Binding("a", "pair_all", "Pair all"),
        Binding("r", "refresh_status", "Refresh"),
        Binding("v", "provision", "Provision (USB)"),
    ]

    class Scanned(Message):
        def __init__(self, bands: list[BandInfo]) -> None:
            super().__init__()
            self.bands = bands

    class StatusRead(Message):
        def __init__(self, status: BandStatus) -> None:
            super().__init__()
            self.status = status

    class Failed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Info(Message):
        def __init__(self, text: str | None) -> None:
            super().__init__()
            self.text = text  # None: say whether the paired bands are ready

    def __init__(self) -> None:
        super().__init__()
        self.bands: list[BandInfo] = []
        self.status: dict[str, BandStatus] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield NavBar("bands")
        yield Static("Put a band on each forearm and switch them on. Press [b]s[/b] to look for them, "
                     "then [b]a[/b] to pair both. When both say ready, press [b]2[/b] for today's session.",
                     id="bands-hint", classes="hint")
        table: DataTable[str] = DataTable(id="bands-table", cursor_type="row", zebra_stripes=True)
        table.add_columns("Band", "Hand", "Patient", "Signal", "Paired")
        yield table
        yield Static("", id="bands-msg", classes="hint")
        with Horizontal(id="bands-status"):
            yield Static(self._status_text("L"), id="status-L", classes="band-status")
            yield Static(self._status_text("R"), id="status-R", classes="band-status")
        yield Footer()

    # --- actions -------------------------------------------------------------------------------
    def action_scan(self) -> None:
        self._say("Looking for bands ...")
        self.scan()

    def action_pair(self) -> None:
        table = self.query_one("#bands-table", DataTable)
        if not self.bands:
            self._say("No band listed yet: press s to scan first.", error=True)
            return
        row = table.cursor_row
        if 0 <= row < len(self.bands):
            self._say(f"Pairing {self.bands[row].id} ...")
            self.pair([self.bands[row].id])

    def action_pair_all(self) -> None:
        if not self.bands:
            self._say("No band listed yet: press s to scan first.", error=True)
            return
        self._say("Pairing " + " and ".join(b.id for b in self.bands) + " ...")
        self.pair([b.id for b in self.bands])

    def action_refresh_status(self) -> None:
        ids = controller(self.app).paired()
        if not ids:
            self._say("No band is paired yet.", error=True)
            return
        self.refresh_status(ids)

    def action_provision(self) -> None:
        self.app.push_screen(ProvisionDialog(), self._provision_chosen)

    def _provision_chosen(self, req: ProvisionRequest | None) -> None:
        if req is not None:
            self._say(f"Provisioning the band on {req.port} ...")
            self.provision(req)

    # --- workers (all radio work off the UI) --------------------------------------------------
    @work(exclusive=True, group="radio")
    async def scan(self) -> None:
        try:
            bands = await controller(self.app).scan()
        except ControllerError as e:
            self.post_message(self.Failed(str(e)))
            return
        self.post_message(self.Scanned(bands))

    @work(exclusive=True, group="radio")
    async def pair(self, ids: list[str]) -> None:
        ctl = controller(self.app)
        for band_id in ids:  # one after the other (BLE stacks dislike concurrent connects)
            try:
                self.post_message(self.StatusRead(await ctl.pair(band_id)))
            except ControllerError as e:
                self.post_message(self.Failed(f"{band_id}: {e}"))
                return
        self.post_message(self.Info(None))  # handled after the StatusRead messages above

    @work(exclusive=True, group="radio")
    async def refresh_status(self, ids: list[str]) -> None:
        for band_id in ids:
            try:
                self.post_message(self.StatusRead(await controller(self.app).band_status(band_id)))
            except ControllerError as e:
                self.post_message(self.Failed(f"{band_id}: {e}"))

    @work(exclusive=True, group="radio")
    async def provision(self, req: ProvisionRequest) -> None:
        try:
            info = await controller(self.app).provision(req.port, req.hand, req.patient_id)
        except ControllerError as e:
            self.post_message(self.Failed(str(e)))
            return
        self.post_message(self.Info(f"Band {info.id} is now the {hand_word(info.hand)} band of patient "
                                    f"{info.patient_id}, with a new key. Scan and pair it."))

    # --- messages ------------------------------------------------------------------------------
    def on_bands_screen_scanned(self, msg: Scanned) -> None:
        self.bands = sorted(msg.bands, key=lambda b: (b.hand or "Z", b.id))
        table = self.query_one("#bands-table", DataTable)
        table.clear()
        for b in self.bands:
            table.add_row(b.id, hand_word(b.hand), b.patient_id or "-",
                          f"{b.rssi} dBm" if b.rssi is not None else "-",
                          "yes" if b.id in controller(self.app).paired() else "no", key=b.id)
        if not self.bands:
            self._say("No bands found. Check that both bands are charged and switched on (the light "
                      "blinks), keep them within 2 m, then press s again.", error=True)
        else:
            self._say(f"Found {len(self.bands)} band{'s' * (len(self.bands) != 1)}. "
                      "Press a to pair all, or p to pair the selected one.")
        table.focus()

    def on_bands_screen_status_read(self, msg: StatusRead) -> None:
        st = msg.status
        self.status[st.band_id] = st
        if st.hand in ("L", "R"):
            self.query_one(f"#status-{st.hand}", Static).update(self._status_text(st.hand))
        table = self.query_one("#bands-table", DataTable)
        if st.band_id in table.rows:
            table.update_cell(st.band_id, table.ordered_columns[4].key, "yes")

    def on_bands_screen_failed(self, msg: Failed) -> None:
        self._say(msg.text, error=True)

    def on_bands_screen_info(self, msg: Info) -> None:
        self._say(self._ready_text() if msg.text is None else msg.text)

    # --- text ------------------------------------------------------------------------------------
    def _say(self, text: str, error: bool = False) -> None:
        w = self.query_one("#bands-msg", Static)
        w.set_classes("error" if error else "hint")
        w.update(text)

    def _ready_text(self) -> str:
        sts = list(self.status.values())
        problems = []
        for st in sts:
            for ch in st.channels:
                if ch.lead_off:
                    problems.append(f"the {hand_word(st.hand)} band's {ch.name} electrode is off the skin: "
                                    "press it on firmly (wet it if dry), then press r")
            if st.state == "full":
                problems.append(f"the {hand_word(st.hand)} band's storage is full: download it (3)")
            if st.battery_pct < 15:
                problems.append(f"the {hand_word(st.hand)} band's battery is low: charge it")
        if problems:
            return "Almost ready: " + "; ".join(problems) + "."
        return f"{len(sts)} band{'s' * (len(sts) != 1)} paired and ready. Press 2 to start today's session."

    def _status_text(self, hand: str) -> Text:
        st = next((s for s in self.status.values() if s.hand == hand), None)
        t = Text()
        t.append(f"{hand_word(hand).capitalize()} band\n", "bold")
        if st is None:
            t.append("not paired", "dim")
            return t
        t.append(f"{st.band_id}  ", "")
        t.append("connected\n" if st.connected else "NOT ANSWERING\n", "green" if st.connected else "bold red")
        t.append(f"battery {st.battery_pct} %   fw {st.firmware_version}\n")
        t.append(f"storage {st.storage_used_pct:.1f} % used", "bold red" if st.state == "full" else "")
        t.append(f", {st.undownloaded_events} new events\n")
        t.append(f"clock {st.clock_label}\n")
        t.append("EMG ")
        for ch in st.channels:
            label = ch.label
            style = "bold red" if label in ("lead off", "poor") else "dark_orange" if label == "fair" else "green"
            extra = f" {ch.noise_uv:.0f}µV" if ch.noise_uv is not None and not ch.lead_off else ""
            t.append(f"{ch.name} ", "")
            t.append(f"{label}{extra}  ", style)
        return t
