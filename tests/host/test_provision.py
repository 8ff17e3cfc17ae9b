"""``mirrorband provision`` against the band console (firmware/mbfw/console.py) on a pty,
and the keystore it writes."""

from __future__ import annotations

import os
import stat
import threading
import tty

import pytest

from mbfw import protocol as P
from mbfw.console import Console
from mbfw.handler import Handler
from mbfw.identity import Identity, MemStore
from mbfw.logrec import T_EVENT
from mirrorband.bands.client import BandClient, aes_ctr
from mirrorband.bands.keystore import BandKey, Keystore
from mirrorband.cli.core import main

from ..firmware.test_handler import FakeDevice, event, log_snapshot, real_log


class PtyBand:
    """A band console behind a pty (as the virtual band serves it), answering lines ending in CR."""

    def __init__(self, root, answer: bool = True) -> None:
        self.ident = Identity(MemStore())
        self.log = real_log(root)
        self.dev = FakeDevice()
        self.handler = Handler(self.dev, self.log, self.ident, ctr=aes_ctr)
        self.console = Console(self.handler)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line editing: bytes as the band's USB CDC sees them
        self.port = os.ttyname(self.slave)
        self.lines: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True) if answer else None
        if self.thread:
            self.thread.start()

    def _serve(self) -> None:
        buf = b""
        while not self._stop:
            try:
                chunk = os.read(self.master, 1024)
            except OSError:
                return
            buf += chunk
            while b"\r" in buf:
                line, buf = buf.split(b"\r", 1)
                text = line.decode(errors="replace").strip("\n")
                self.lines.append(text)
                out = self.console.line(text)
                if out:
                    os.write(self.master, out.encode() + b"\r\n")

    def close(self) -> None:
        self._stop = True
        os.close(self.slave)
        os.close(self.master)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRRORBAND_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def band(tmp_path):
    b = PtyBand(tmp_path)
    yield b
    b.close()


def one_error(err: str) -> bool:
    """Exactly one error line (progress lines may precede it), no traceback."""
    lines = err.strip().splitlines()
    return [ln for ln in lines if ln.startswith("mirrorband")] == lines[-1:] and "Traceback" not in err


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["provision", *argv])
    except SystemExit as e:  # argparse rejections
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_provision_new_band(band, data_dir, capsys):
    code, out, err = run(capsys, "--port", band.port, "--hand", "L", "--patient", "P-007")
    assert code == 0, err
    assert band.ident.provisioned() and band.ident.patient == "P-007" and band.dev.cfg.hand == 0
    ks = Keystore()
    assert ks.path.parent == data_dir
    (rec,) = ks.bands()
    assert rec.active and rec.key == band.ident.key and rec.hand == "L" and rec.band_id == "0102030405060708"
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert rec.band_id in out and "P-007" in out
    key_hex = rec.key.hex()
    assert key_hex not in out and key_hex not in err and key_hex not in repr(rec) and key_hex not in repr(ks)
    # the stored key talks to the band over the authenticated protocol
    c = BandClient.from_keystore(ks, rec.band_id)
    assert c.info(lambda b: band.handler.handle(b, P.BLE)).patient == "P-007"
    assert ks.get(rec.band_id).counter == 1  # counter persisted before use


def test_reprovision_refused_without_confirmation(band, data_dir, capsys):
    assert run(capsys, "--port", band.port, "--patient", "P1")[0] == 0
    first = Keystore().get("0102030405060708")
    band.log.append(T_EVENT, event(1))
    code, out, err = run(capsys, "--port", band.port, "--patient", "P2")
    assert code == 2 and out == ""
    assert one_error(err) and "--yes" in err and "1 undownloaded" in err
    assert band.ident.patient == "P1" and band.ident.key == first.key and len(log_snapshot(band.log)[1]) == 1
    assert Keystore().get("0102030405060708") == first  # keystore unchanged


def test_reprovision_with_yes_wipes_and_replaces_key(band, data_dir, capsys):
    assert run(capsys, "--port", band.port, "--patient", "P1")[0] == 0
    first = Keystore().get("0102030405060708")
    code, out, err = run(capsys, "--port", band.port, "--yes")
    assert code == 0, err
    rec = Keystore().get("0102030405060708")
    assert rec.key != first.key and rec.key == band.ident.key and rec.patient == "P1"  # patient kept
    assert log_snapshot(band.log)[1] == []
    assert any(line.startswith("confirm ") for line in band.lines)


def test_missing_port(data_dir, capsys, tmp_path):
    code, out, err = run(capsys, "--port", str(tmp_path / "ttyNOPE"), "--patient", "P1")
    assert code == 2 and "no serial port" in err and one_error(err)


def test_busy_port(band, data_dir, capsys):
    import serial

    holder = serial.Serial(band.port, 115200, exclusive=True)
    try:
        code, out, err = run(capsys, "--port", band.port, "--patient", "P1")
    finally:
        holder.close()
    assert code == 2 and "busy" in err and one_error(err)
    assert not band.ident.provisioned()


def test_band_that_does_not_answer(data_dir, capsys, tmp_path):
    mute = PtyBand(tmp_path, answer=False)
    try:
        code, out, err = run(capsys, "--port", mute.port, "--patient", "P1", "--timeout", "0.3")
    finally:
        mute.close()
    assert code == 2 and "does not answer" in err and one_error(err)
    assert Keystore().bands() == []


def test_bad_arguments(band, data_dir, capsys):
    code, out, err = run(capsys, "--port", band.port, "--patient", "has space")
    assert code == 2 and one_error(err)
    code, out, err = run(capsys, "--port", band.port, "--hand", "X", "--patient", "P1")
    assert code == 2 and one_error(err)
    code, out, err = run(capsys, "--port", band.port)  # new band, no patient
    assert code == 2 and "--patient" in err
    assert not band.ident.provisioned()
    with pytest.raises(SystemExit) as e:
        main(["provision", "--help"])
    assert e.value.code == 0


def test_keystore_atomic_private_and_tightened(tmp_path):
    ks = Keystore(tmp_path / "ks" / "keystore.json")
    ks.put(BandKey("aa" * 8, bytes(32), "R", "P1"))
    os.chmod(ks.path, 0o644)
    assert ks.next_counter("aa" * 8) == 1 and ks.next_counter("aa" * 8, at_least=70) == 70
    assert stat.S_IMODE(ks.path.stat().st_mode) == 0o600
    assert [p.name for p in ks.path.parent.iterdir() if p.name.startswith(".keystore.")] == []
    ks.path.write_text("{not json")
    from mirrorband.bands.keystore import KeystoreError

    with pytest.raises(KeystoreError) as e:
        ks.bands()
    assert "damaged" in str(e.value)
