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

**Raw REPL** (what ``mpremote`` and ``mirrorband flash`` use): Ctrl-A enters
it (``raw REPL; CTRL-B to exit`` then ``>``); code ends with Ctrl-D and is
answered ``OK``, its output, ``\x04``, its error text, ``\x04``, ``>``; raw-paste
mode (``\x05A\x01``, flow-control window) is supported; Ctrl-D on an empty
line soft-reboots the band (``MPY: soft reboot``); Ctrl-B leaves for the
normal console with the banner; Ctrl-C drops the code being typed. The code is
run by CPython in a MicroPython-like namespace whose ``open`` and ``os``
(``stat``, ``ilistdir``, ``listdir``, ``mkdir``, ``rmdir``, ``remove``,
``rename``, ``statvfs``, ``getcwd``, ``chdir``, ``sync``, ``uname``) work on
the band's flash directory, with ``hashlib``, ``binascii``, ``json``,
``struct``, ``errno``, ``gc``, ``sys`` (``sys.platform == "virtual"``) and
``machine`` (``soft_reset``, ``reset``, ``unique_id``). Errors print like
MicroPython's (``OSError: [Errno 2] ENOENT``). It is no security boundary:
the pty belongs to the user who runs the simulation. Unlike a real band, the
firmware keeps running while the raw REPL is open, and it runs from the host's
checkout, not from the files flashed onto its flash directory.

When nobody has the port open, output is dropped (as USB CDC does without a
host). One client at a time: the port is opened exclusively by the tools.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import os
import struct
import tty
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import mbfw

if TYPE_CHECKING:
    from mirrorband.sim.virtual.band import VirtualBand

PROMPT = b">>> "
CTRL_A = 0x01
CTRL_B = 0x02
CTRL_C = 0x03
CTRL_D = 0x04
CTRL_E = 0x05
MAX_LINE = 1024
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
RAW_PASTE_WINDOW = 4096
MAX_RAW_CODE = 1 << 20


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
        self.raw = False                # in the raw REPL
        self._code = bytearray()        # raw REPL code being received
        self._paste: int | None = None  # raw-paste mode: bytes left in the window
        self._esc = b""                 # partial raw-paste request (\x05A\x01)
        self._repl: RawRepl | None = None

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
            if self.raw:
                if self._raw_byte(c, data, i):
                    return
                continue
            if c == CTRL_A:
                self._line.clear()
                self._enter_raw()
                continue
            if c == CTRL_B:
                self._line.clear()
                self.write(b"\r\n" + self.banner().encode() + b"\r\n" + PROMPT)
                continue
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
            if self.raw:
                self._repl = None  # a fresh interpreter
                self.write(RAW_BANNER)
            else:
                self.write(self.banner().encode() + b"\r\n" + PROMPT)
        finally:
            self._busy = False
            rest, self._pending = bytes(self._pending), bytearray()
            if rest:
                self._feed(rest)

    # --- raw REPL ----------------------------------------------------------------------------
    def _enter_raw(self) -> None:
        self.raw = True
        self._code.clear()
        self._paste = None
        self._esc = b""
        self.write(b"\r\n" + RAW_BANNER)

    def _raw_byte(self, c: int, data: bytes, i: int) -> bool:
        """One byte in raw mode; True when the rest of ``data`` was taken over (soft reboot)."""
        if self._paste is not None:
            if c == CTRL_D:
                self._paste = None
                self.write(b"\x04")  # end of data acknowledged
                self._execute()
                return False
            if len(self._code) < MAX_RAW_CODE:
                self._code.append(c)
            self._paste -= 1
            if self._paste == 0:
                self._paste = RAW_PASTE_WINDOW
                self.write(b"\x01")  # one more window
            return False
        if self._esc:
            self._esc += bytes([c])
            if self._esc == b"\x05A\x01":
                self._esc = b""
                self._paste = RAW_PASTE_WINDOW
                self.write(b"R\x01" + struct.pack("<H", RAW_PASTE_WINDOW))
            elif not b"\x05A\x01".startswith(self._esc):
                self._esc = b""
            return False
        if c == CTRL_E and not self._code:
            self._esc = b"\x05"
        elif c == CTRL_A:
            self._code.clear()
            self.write(b"\r\n" + RAW_BANNER)
        elif c == CTRL_B:
            self.raw = False
            self._code.clear()
            self.write(b"\r\n" + self.banner().encode() + b"\r\n" + PROMPT)
        elif c == CTRL_C:
            self._code.clear()
        elif c == CTRL_D:
            if not self._code:
                self._busy = True
                self._pending += data[i + 1:]
                assert self._loop is not None
                self._loop.create_task(self._soft_reboot())
                return True
            self.write(b"OK")
            self._execute()
        elif len(self._code) < MAX_RAW_CODE:
            self._code.append(c)
        return False

    def _execute(self) -> None:
        code, self._code = bytes(self._code), bytearray()
        if self._repl is None:
            self._repl = RawRepl(self.band)
        out, err = self._repl.run(code)
        self.write(out + b"\x04" + err + b"\x04>")

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
        elif words[0] == "selftest":
            from mbfw.usbconsole import selftest

            out = selftest(self.band.app) if self.band.app is not None else "ERR the band is off"
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


# --- the raw REPL's interpreter --------------------------------------------------------------

def _mp_error(e: BaseException) -> str:
    """The last line of a MicroPython traceback for ``e``."""
    if isinstance(e, OSError) and e.errno is not None:
        return f"OSError: [Errno {e.errno}] {errno.errorcode.get(e.errno, str(e.errno))}"
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class FlashOS:
    """MicroPython's ``os`` module over a band's flash directory (absolute paths from /)."""

    def __init__(self, root: os.PathLike | str, capacity: int) -> None:
        self.root = os.path.realpath(root)
        self.capacity = capacity
        self.cwd = "/"
        self.sep = "/"

    def _abs(self, path: str) -> str:
        path = str(path)
        if not path.startswith("/"):
            path = self.cwd.rstrip("/") + "/" + path
        parts: list[str] = []
        for p in path.split("/"):
            if p in ("", "."):
                continue
            if p == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(p)
        return "/" + "/".join(parts)

    def host(self, path: str) -> str:
        """The host path of a band path (never outside the flash directory)."""
        return os.path.join(self.root, *self._abs(path).split("/")[1:])

    @staticmethod
    def _oserr(e: OSError) -> OSError:
        return OSError(e.errno or errno.EIO, errno.errorcode.get(e.errno or errno.EIO, "EIO"))

    def stat(self, path: str) -> tuple[int, ...]:
        try:
            st = os.stat(self.host(path))
        except OSError as e:
            raise self._oserr(e) from None
        mode = 0x4000 if os.path.isdir(self.host(path)) else 0x8000
        t = int(st.st_mtime)
        return (mode, 0, 0, 0, 0, 0, st.st_size if mode == 0x8000 else 0, t, t, t)

    def ilistdir(self, path: str = ""):
        d = self.host(path or self.cwd)
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            raise self._oserr(e) from None
        for n in names:
            full = os.path.join(d, n)
            isdir = os.path.isdir(full)
            yield (n, 0x4000 if isdir else 0x8000, 0, 0 if isdir else os.path.getsize(full))

    def listdir(self, path: str = "") -> list[str]:
        return [e[0] for e in self.ilistdir(path)]

    def _op(self, f: Any, *paths: str) -> None:
        try:
            f(*(self.host(p) for p in paths))
        except OSError as e:
            raise self._oserr(e) from None

    def mkdir(self, path: str) -> None:
        self._op(os.mkdir, path)

    def rmdir(self, path: str) -> None:
        self._op(os.rmdir, path)

    def remove(self, path: str) -> None:
        if os.path.isdir(self.host(path)):
            raise OSError(errno.EISDIR, "EISDIR")
        self._op(os.remove, path)

    unlink = remove

    def rename(self, old: str, new: str) -> None:
        self._op(os.replace, old, new)

    def getcwd(self) -> str:
        return self.cwd

    def chdir(self, path: str) -> None:
        p = self._abs(path)
        if not os.path.isdir(self.host(p)):
            raise OSError(errno.ENOENT, "ENOENT")
        self.cwd = p

    def used(self) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.root):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files)
        return total

    def statvfs(self, path: str = "/") -> tuple[int, ...]:
        bsize = 4096
        blocks = self.capacity // bsize
        free = max(0, blocks - (self.used() + bsize - 1) // bsize)
        return (bsize, bsize, blocks, free, free, 0, 0, 0, 0, 255)

    def sync(self) -> None:
        pass

    def uname(self) -> tuple[str, ...]:
        import mbfw

        return ("virtual", "virtual", mbfw.VERSION, "Mirrorband virtual band", "virtual")


class RawRepl:
    """One interpreter session of the raw REPL (variables live until a soft reboot)."""

    def __init__(self, band: VirtualBand) -> None:
        import binascii
        import builtins
        import json

        self.band = band
        self.os = FlashOS(band.flash.root, band.flash.inner.capacity)
        self.out = io.StringIO()
        sysmod = SimpleNamespace(
            platform="virtual", version="3.4.0; Mirrorband virtual band", byteorder="little",
            implementation=SimpleNamespace(name="micropython", version=(1, 27, 0, ""),
                                           _machine="Mirrorband virtual band with CPython"),
            path=["", "/lib"], maxsize=2**31 - 1, modules={}, stdout=SimpleNamespace(write=self.out.write),
        )
        machine = SimpleNamespace(soft_reset=self._soft_reset, reset=self._soft_reset,
                                  unique_id=lambda: bytes(self.band.board.uid) if self.band.board else b"")
        gc = SimpleNamespace(collect=lambda: None, mem_free=lambda: 200_000, mem_alloc=lambda: 0)
        self.modules: dict[str, Any] = {
            "os": self.os, "uos": self.os, "hashlib": hashlib, "binascii": binascii, "json": json,
            "struct": struct, "errno": errno, "sys": sysmod, "gc": gc, "machine": machine,
        }
        safe = {k: v for k, v in vars(builtins).items()
                if k not in ("open", "__import__", "exec", "eval", "compile", "input", "breakpoint",
                             "exit", "quit", "help", "globals", "locals", "vars", "memoryview")}
        safe.update(open=self._open, print=self._print, __import__=self._import, memoryview=memoryview)
        self.ns: dict[str, Any] = {"__builtins__": safe, "__name__": "__main__"}

    def _import(self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (),
                level: int = 0) -> Any:
        mod = self.modules.get(name)
        if mod is None:
            raise ImportError(f"no module named '{name}'")
        return mod

    def _open(self, path: str, mode: str = "r", *args: Any, **kw: Any) -> Any:
        try:
            return open(self.os.host(path), mode)  # noqa: SIM115 - the band's code closes it
        except IsADirectoryError:
            raise OSError(errno.EISDIR, "EISDIR") from None
        except OSError as e:
            raise FlashOS._oserr(e) from None

    def _print(self, *args: Any, sep: str = " ", end: str = "\n", file: Any = None) -> None:
        self.out.write(sep.join(str(a) for a in args) + end)

    def _soft_reset(self) -> None:
        raise SystemExit("soft reset")

    def run(self, code: bytes) -> tuple[bytes, bytes]:
        """Execute ``code``; returns (stdout, error text) as the raw REPL sends them."""
        self.out = io.StringIO()
        self.modules["sys"].stdout = SimpleNamespace(write=self.out.write)
        err = ""
        try:
            compiled = compile(code.decode("utf-8"), "<stdin>", "exec")
            exec(compiled, self.ns)  # noqa: S102 - the raw REPL runs the client's code by design
        except SystemExit:
            pass
        except SyntaxError as e:
            err = f'Traceback (most recent call last):\n  File "<stdin>", line {e.lineno}\nSyntaxError: invalid syntax\n'
        except BaseException as e:  # noqa: BLE001 - everything is reported to the client
            err = f'Traceback (most recent call last):\n  File "<stdin>", line 1, in <module>\n{_mp_error(e)}\n'
        cook = lambda t: t.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "replace")  # noqa: E731
        return cook(self.out.getvalue()), cook(err)
