"""Provision a band over USB: its port, the forearm it goes on, the patient's pseudonym."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from mirrorband.sessions.store import StoreError, check_patient_id
from mirrorband.tui.common import controller


@dataclass(frozen=True)
class ProvisionRequest:
    port: str
    hand: str
    patient_id: str


class ProvisionDialog(ModalScreen[ProvisionRequest | None]):
    """Ask for port, hand and patient; dismiss with a :class:`ProvisionRequest` or None."""

    DEFAULT_CSS = """
    ProvisionDialog { align: center middle; }
    #prov { width: 60; height: auto; border: thick $primary; background: $surface; padding: 0 1; }
    #prov Select, #prov Input { width: 100%; }
    #prov-buttons { height: auto; align-horizontal: right; }
    #prov-error { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="prov"):
            yield Label("[b]Provision a band[/b] (clinic, USB cable): gives it a hand, a patient and a new key.")
            yield Select([], prompt="USB port", id="prov-port")
            yield Select([("left forearm", "L"), ("right forearm", "R")], prompt="Hand", id="prov-hand")
            yield Input(placeholder="patient pseudonym, e.g. P-0042 (never a name)", id="prov-patient")
            yield Label("", id="prov-error")
            with Horizontal(id="prov-buttons"):
                yield Button("Provision", variant="primary", id="prov-ok")
                yield Button("Cancel", id="prov-cancel")

    def on_mount(self) -> None:
        self.load_ports()

    @work(exclusive=True)
    async def load_ports(self) -> None:
        ports = await controller(self.app).ports()
        sel = self.query_one("#prov-port", Select)
        sel.set_options([(p, p) for p in ports])
        if not ports:
            self.query_one("#prov-error", Label).update("No USB serial port found: plug the band in.")

    @on(Button.Pressed, "#prov-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#prov-ok")
    @on(Input.Submitted)
    def submit(self) -> None:
        port = self.query_one("#prov-port", Select).value
        hand = self.query_one("#prov-hand", Select).value
        patient = self.query_one("#prov-patient", Input).value.strip()
        err = self.query_one("#prov-error", Label)
        if not isinstance(port, str):
            err.update("Choose the USB port of the band.")
            return
        if hand not in ("L", "R"):
            err.update("Choose the forearm the band goes on.")
            return
        try:
            check_patient_id(patient)
        except StoreError as e:
            err.update(str(e))
            return
        self.dismiss(ProvisionRequest(port, str(hand), patient))
