"""``mirrorband provision``: give a band its key and identity over USB serial.

Talks to the band's USB console (firmware/mbfw/console.py; the virtual band's
pty in tests): ``info``, then ``provision <key> <hand> <patient>``, and, on a
band that already has a key, ``confirm <token>`` once the user agreed that its
log is erased. The host generates the 256-bit key and keeps it in the keystore
(0600); the key is never printed.
"""

from __future__ import annotations

import argparse
import errno
import secrets
import sys
import time

from mirrorband.bands.keystore import BandKey, Keystore
from mirrorband.errors import CliError

_ENDS = ("OK", "ERR", "CONFIRM")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class ConsoleLink:
    """Line exchange with a band console on a serial port."""

    def __init__(self, port: str, timeout: float = 3.0, baud: int = 115200) -> None:
        import serial

        self.port = port
        self.timeout = timeout
        try:
            self.ser = serial.Serial(port, baud, timeout=0.05, exclusive=True)
        except serial.SerialException as e:
            code = e.errno
            if code == errno.ENOENT or "No such file" in str(e):
                raise CliError(f"no serial port {port} (is the band plugged in?)") from None
            if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "lock" in str(e).lower():
                raise CliError(f"serial port {port} is busy (another program is using it)") from None
            if code == errno.EACCES:
                raise CliError(f"no permission to open {port} (add yourself to the dialout group)") from None
            raise CliError(f"cannot open {port}: {e}") from None
        except (OSError, ValueError) as e:
            raise CliError(f"cannot open {port}: {e}") from None
        self._buf = b""

    def close(self) -> None:
        self.ser.close()

    def __enter__(self) -> ConsoleLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _readline(self, deadline: float) -> str | None:
        while True:
            for sep in (b"\n", b"\r"):
                i = self._buf.find(sep)
                if i >= 0:
                    line, self._buf = self._buf[:i], self._buf[i + 1:]
                    return line.decode("utf-8", "replace").strip()
            if time.monotonic() > deadline:
                return None
            try:
                chunk = self.ser.read(256)
            except OSError as e:
                raise CliError(f"lost the band on {self.port}: {e}") from None
            self._buf += chunk

    def drain(self) -> None:
        """Forget anything pending (banner, prompt, half a line)."""
        self.ser.write(b"\r")
        self.ser.flush()
        time.sleep(0.05)
        self.ser.reset_input_buffer()
        self._buf = b""

    def command(self, line: str, what: str) -> str:
        """Send one command; return its final OK/ERR/CONFIRM line (other lines are skipped)."""
        try:
            self.ser.write(line.encode() + b"\r")
            self.ser.flush()
        except OSError as e:
            raise CliError(f"cannot write to {self.port}: {e}") from None
        deadline = time.monotonic() + self.timeout
        while True:
            got = self._readline(deadline)
            if got is None:
                raise CliError(f"the band on {self.port} does not answer ({what}: no reply within "
                               f"{self.timeout:g} s)")
            if got.split(" ", 1)[0] in _ENDS:
                return got


def parse_fields(line: str) -> dict[str, str]:
    """``OK info a=1 b=2`` -> {"a": "1", "b": "2"}."""
    return dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)


def _refused(line: str) -> CliError:
    parts = line.split(" ", 2)
    return CliError(f"the band refused: {parts[2] if len(parts) > 2 else line}")


def _confirm(args: argparse.Namespace, band: str, pending: int) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        return False
    answer = input(f"Band {band} is provisioned already. Re-provisioning erases its log "
                   f"({pending} undownloaded records). Continue? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def provision(args: argparse.Namespace, keystore: Keystore) -> BandKey:
    with ConsoleLink(args.port, args.timeout) as link:
        link.drain()
        info_line = link.command("info", "info")
        if not info_line.startswith("OK info"):
            raise _refused(info_line)
        info = parse_fields(info_line)
        band = info.get("id", "")
        if len(band) != 16:
            raise CliError(f"the device on {args.port} is not a Mirrorband band (answer: {info_line[:60]})")
        hand = args.hand or info.get("hand", "R")
        patient = args.patient or (info.get("patient") if info.get("patient") not in (None, "-") else None)
        if not patient:
            raise CliError("give the patient pseudonym: --patient ID")
        _progress(f"band {band} on {args.port}: firmware {info.get('fw', '?')}, "
                  f"{'provisioned' if info.get('provisioned') == '1' else 'new'}")
        key = secrets.token_bytes(32)
        old = keystore.get(band)
        # the new key is stored before it leaves, so a crash cannot lose it
        keystore.put(BandKey(band, key, hand, patient, counter=0, active=False))
        done = False
        try:
            answer = link.command(f"provision {key.hex()} {hand} {patient}", "provision")
            if answer.startswith("CONFIRM"):
                words = answer.split()
                fields = parse_fields("CONFIRM x " + " ".join(words[2:]))
                pending = int(fields.get("pending", "0"))
                if not _confirm(args, band, pending):
                    raise CliError(f"band {band} is provisioned already; re-provisioning erases its log "
                                   f"({pending} undownloaded records): rerun with --yes to confirm")
                answer = link.command(f"confirm {words[1]}", "confirm")
            if not answer.startswith("OK provisioned"):
                raise _refused(answer)
            got = parse_fields(answer)
            if got.get("id") != band:
                raise CliError(f"the band answered for another id ({got.get('id')})")
            rec = BandKey(band, key, got.get("hand", hand), got.get("patient", patient), counter=0, active=True)
            keystore.put(rec)
            done = True
            return rec
        finally:
            if not done:  # put back what was there
                if old is not None:
                    keystore.put(old)
                else:
                    keystore.remove(band)
