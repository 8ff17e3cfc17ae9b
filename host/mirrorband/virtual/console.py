"""The virtual band's USB console on a pseudo-terminal.

It behaves like the band's USB serial console (MicroPython port, main.py
running the command console of ``mbfw.console``):

* the port is ``/dev/pts/N`` (raw mode: no echo or line editing by the kernel),
  usable by pyserial, ``mirrorband provision --port`` and pytest-embedded
  (``--embedded-services serial --port=/dev/pts/N``);
* **Ctrl-D** soft-reboots the band (the firmware restarts, the flash stays) and
  prints ``MPY: soft reboot`` and the banner, as MicroPython does; since a
  client's open flushes its input buffer, Ctrl-D is how a test gets a banner;
* a line is submitted on **CR** (``\\r``), as MicroPython's REPL does; LF is
  ignored, so ``\\r\\n`` submits once and a lone ``\\n`` submits nothing;
  Ctrl-C drops the line being typed; backspace edits it; nothing is echoed
  (keys typed for provisioning never come back);
* commands: those of ``mbfw.console`` (``info``, ``status``, ``provision``,
  ``confirm``, ``frame``, ``help``) and the diagnostics ``diag`` (sensors,
  sampler, clock, flash) and ``leadoff MASK`` (simulate electrodes coming off);
  every answer ends with a line starting ``OK``, ``ERR`` or ``CONFIRM``, then
  the prompt ``>>> ``.

When nobody has the port open, output is dropped (as USB CDC does without a
host). One client at a time: the port is opened exclusively by the tools.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tty
from typing import TYPE_CHECKING

import mbfw

if TYPE_CHECKING:
    from .band import VirtualBand

PROMPT = b">>> "
CTRL_C = 0x03
CTRL_D = 0x04
MAX_LINE = 1024


class PtyConsole:
    """Serve a band's console on a new pty; :attr:`port` is the path clients open."""

    def __init__(self, band: VirtualBand) -> None:
        self.band = band
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        os.set_blocking(self.master, False)
        self._line = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False
        self._pending = bytearray()
        self.lines: list[str] = []
        self.closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._on_readable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            self._loop.remove_reader(self.master)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # --- output ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            os.write(self.master, data)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EIO):
                raise
            # nobody reads: dropped, as USB CDC without a host

    def banner(self) -> str:
        b = self.band
        return (f"Mirrorband band firmware {mbfw.VERSION} on virtual band {b.hand} "
                f"(MicroPython-compatible console; type help)")

    # --- input -----------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        if self._busy:
            self._pending += data
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        for i, c in enumerate(data):
            if c == CTRL_D:
                self._line.clear()
                self._busy = True
                self._pending += data[i + 1:]
                assert self._loop is not None
                self._loop.create_task(self._soft_reboot())
                return
            if c == CTRL_C:
                self._line.clear()
                self.write(b"\r\n" + PROMPT)
            elif c == 0x0D:
                text = self._line.decode("utf-8", "replace")
                self._line.clear()
                self.write(b"\r\n")
                self._command(text)
            elif c == 0x0A:
                continue
            elif c in (0x08, 0x7F):
                if self._line:
                    self._line.pop()
            elif len(self._line) < MAX_LINE:
                self._line.append(c)

    async def _soft_reboot(self) -> None:
        self.write(b"MPY: soft reboot\r\n")
        try:
            await self.band.soft_reboot()
            self.write(self.banner().encode() + b"\r\n" + PROMPT)
        finally:
            self._busy = False
            rest, self._pending = bytes(self._pending), bytearray()
            if rest:
                self._feed(rest)

    def _command(self, text: str) -> None:
        text = text.strip()
        self.lines.append(text)
        if not text:
            self.write(PROMPT)
            return
        words = text.split()
        if words[0] == "diag":
            out = self.diag()
        elif words[0] == "leadoff":
            out = self._leadoff(words[1:])
        elif self.band.console is None:
            out = "ERR the band is off"
        else:
            out = self.band.console.line(text)
        self.write(out.replace("\r\n", "\n").replace("\n", "\r\n").encode() + b"\r\n" + PROMPT)

    def _leadoff(self, args: list[str]) -> str:
        b = self.band
        try:
            mask = int(args[0], 0) if len(args) == 1 else -1
        except ValueError:
            mask = -1
        if not 0 <= mask <= 0x1F:
            return "ERR usage: leadoff MASK (bits IN1P=1 IN1N=2 IN2P=4 IN2N=8 RLD=16)"
        if b.board is None:
            return "ERR the band is off"
        b.board.ads_emu.set_electrodes_off(mask)
        return f"OK leadoff {mask:#04x}"

    def diag(self) -> str:
        b = self.band
        app = b.app
        if app is None or b.board is None:
            return "ERR the band is off"
        s = app.sampler
        emu = b.board.ads_emu
        from mbfw.app import STATE_NAMES

        used, free, pending, first, nxt, acked = app.log.status()
        fields = {
            "state": STATE_NAMES[app.state], "step": app.step, "hand": b.hand,
            "ads_id": f"{emu.regs[0]:#04x}", "samples": s.samples, "overruns": s.overruns,
            "bad_frames": s.bad, "leadoff": f"{s.ads.loff:#04x}",
            "imu": "yes" if s.imu is not None else "no",
            "imu_words": b.board.imu_emu.words_read if b.board.imu_emu is not None else 0,
            "ticks_ms": b.clock.ticks_ms(), "drift_ppm": f"{b.clock.drift_ppm:g}",
            "events": app.events, "log_used": used, "log_pending": pending, "boots": b.boots,
        }
        return "OK diag " + " ".join(f"{k}={v}" for k, v in fields.items())
