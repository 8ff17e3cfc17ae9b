"""mirrorband flash / doctor: mpy-cross for each board's architecture, flashing a virtual band's
filesystem end to end through mpremote's raw REPL on its pty, board mismatch, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

import pytest

from mirrorband.bands import flash as flash_cmd

from ..conftest import REPO
from ..virtual.test_sim_cli import Sim, mb, read_until


@pytest.mark.parametrize("board, arch", [("xiao_esp32s3", "xtensawin"), ("pico2w", "armv7emsp"),
                                         ("virtual", None)])
def test_bundle_compiles_every_firmware_file_for_the_board(board, arch):
    desc = flash_cmd.load_board(board)
    assert flash_cmd.board_arch(desc) == arch
    bundle = flash_cmd.build_bundle(board, arch)
    mods = sorted(p for p in bundle.files if p.endswith(".mpy"))
    want = sorted(f"/lib/mbfw/{s.stem}.mpy" for s in (REPO / "firmware" / "mbfw").glob("*.py")) + ["/lib/board.mpy"]
    assert mods == sorted(want)
    for p in mods:
        head = bundle.files[p][:4]
        assert head[0] == ord("M") and head[1] == 6, p  # .mpy version 6
        # the header names the native architecture only when a module has native code
        assert head[2] >> 2 in (0, flash_cmd.MPY_ARCHS.get(arch or "", 0)), p
    sel = json.loads(bundle.selection())
    assert sel["board"] == board and sel["files"]["/main.py"] == hashlib.sha256(bundle.files["/main.py"]).hexdigest()


def test_board_descriptions_are_complete():
    for name in ("xiao_esp32s3", "pico2w"):
        d = flash_cmd.load_board(name)
        assert d["micropython"]["mpy_arch"] in flash_cmd.MPY_ARCHS
        emg, imu = d["sensors"]["emg"], d["sensors"]["imu"]
        assert emg["chip"] == "ADS1292R" and imu["chip"] == "LSM6DSOX" and imu["i2c"]["addr"] == 0x6A
        pins = [emg["spi"][k] for k in ("sck", "mosi", "miso")] + [emg["pins"]["cs"], emg["pins"]["drdy"],
                imu["i2c"]["scl"], imu["i2c"]["sda"], imu["pins"]["int1"], d["outputs"]["motor"]["pin"],
                d["inputs"]["button"]["pin"], d["inputs"]["battery"]["pin"]]
        assert len(set(pins)) == len(pins), f"{name}: a pin is used twice"
        src = (REPO / "boards" / name / "board.py").read_text()
        for pin in pins:  # board.py carries the same pin table
            assert f"const({pin})" in src, (name, pin)


def test_dry_run_does_not_open_the_port(tmp_path):
    p = mb(["flash", "--port", "/dev/does-not-exist", "--board", "pico2w", "--dry-run"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "nothing written" in p.stdout and "would write /lib/mbfw/app.mpy" in p.stderr


def test_bad_input_is_one_line_exit_2(tmp_path):
    for args, text in [
        (["flash", "--port", "/dev/pts/999999", "--board", "nrf52840"], "unknown board"),
        (["flash", "--port", "/dev/does-not-exist", "--board", "virtual"], "no serial port"),
        (["doctor", "--port", "/dev/does-not-exist"], "no serial port"),
    ]:
        p = mb(args, tmp_path)
        assert p.returncode == 2, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert text in lines[-1] and "Traceback" not in p.stderr, p.stderr


def test_a_port_that_is_not_a_micropython_board(tmp_path):
    master, slave = os.openpty()  # a device that never answers
    try:
        port = os.ttyname(slave)
        p = mb(["flash", "--port", port, "--board", "virtual", "--timeout", "1"], tmp_path)
        assert p.returncode == 2
        assert "is not a MicroPython board" in p.stderr.strip().splitlines()[-1]
        p = mb(["doctor", "--port", port, "--timeout", "0.5"], tmp_path)
        assert p.returncode == 2 and "does not answer" in p.stderr
    finally:
        os.close(master)
        os.close(slave)


def test_flash_virtual_band_end_to_end_then_doctor(tmp_path):
    data = tmp_path / "data"
    sim = Sim(data)
    try:
        port = sim.ports["L"]
        flash_dir = data / "sim" / "flash" / "L"
        # a mismatched board is refused and the band keeps running its firmware
        p = mb(["flash", "--port", port, "--board", "xiao_esp32s3"], data)
        assert p.returncode == 2 and "not a xiao_esp32s3 board: use --board virtual" in p.stderr
        assert not (flash_dir / "main.py").exists()
        t0 = time.monotonic()
        p = mb(["flash", "--port", port, "--board", "virtual", "--json"], data)
        assert p.returncode == 0, p.stderr
        s = json.loads(p.stdout)
        assert s["written"] == s["files"] and s["banner"] is True
        print(f"flash virtual: {s['files']} files, {s['bytes']} bytes in {time.monotonic() - t0:.2f} s")
        sel = json.loads((flash_dir / "mirrorband.json").read_text())
        assert sel["board"] == "virtual"
        for path, digest in sel["files"].items():  # what is on the band's flash is what was built
            assert hashlib.sha256((flash_dir / path.lstrip("/")).read_bytes()).hexdigest() == digest
        assert not (flash_dir / ".mbfw_new").exists()
        # a stale module is removed, a damaged one rewritten; the rest is left alone
        (flash_dir / "lib" / "mbfw" / "old.mpy").write_bytes(b"M\x06")
        (flash_dir / "lib" / "mbfw" / "app.mpy").write_bytes(b"broken")
        p = mb(["flash", "--port", port, "--board", "virtual", "--json"], data)
        s = json.loads(p.stdout)
        assert (s["written"], s["removed"]) == (1, 1), p.stderr
        assert not (flash_dir / "lib" / "mbfw" / "old.mpy").exists()
        # the band still answers on its console: doctor
        p = mb(["doctor", "--port", port, "--json"], data)
        checks = {c["check"]: c for c in json.loads(p.stdout)}
        assert p.returncode == 1  # not provisioned yet
        assert not checks["identity"]["ok"]
        for name in ("firmware", "board", "EMG ADS1292R", "IMU LSM6DSOX", "electrode FLEX +", "battery",
                     "storage", "clock"):
            assert checks[name]["ok"], checks[name]
    finally:
        sim.kill()


def test_doctor_reports_an_electrode_off(tmp_path):
    import serial

    data = tmp_path / "data"
    sim = Sim(data)
    try:
        port = sim.ports["R"]
        with serial.Serial(port, 115200, timeout=0.1) as ser:
            # the band may still be booting when the sim prints its ports (a loaded CI
            # machine): ask again until it answers, and fail here if it never does
            buf = b""
            deadline = time.monotonic() + 30
            while b"OK leadoff" not in buf and time.monotonic() < deadline:
                ser.write(b"leadoff 4\r")
                t = time.monotonic() + 1
                while b"OK leadoff" not in buf and time.monotonic() < t:
                    buf += ser.read(64)
            assert b"OK leadoff" in buf, buf
            # and wait until its task samples (the first second it is still starting)
            while True:
                ser.write(b"diag\r")
                out = read_until(ser, b"OK diag", 2)
                if b"\n" not in out.rpartition(b"OK diag")[2]:
                    out += read_until(ser, b"\n", 1)
                if re.search(rb"samples=[1-9]", out.rpartition(b"OK diag")[2]):
                    break
                assert time.monotonic() < deadline, out
        p = mb(["doctor", "--port", port], data)
        assert p.returncode == 1
        line = [ln for ln in p.stdout.splitlines() if "EXT +" in ln][0]
        assert line.startswith("FAIL") and "IN2P OFF" in line, p.stdout
        assert [ln for ln in p.stdout.splitlines() if "FLEX +" in ln][0].startswith("ok")
    finally:
        sim.kill()


def test_usb_console_line_rules_on_the_firmware_side():
    from mbfw.usbconsole import PROMPT, LineConsole

    class FakeConsole:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def line(self, text: str) -> str:
            self.lines.append(text)
            return "OK got " + text

    out: list[str] = []
    reboots: list[int] = []
    fc = FakeConsole()
    lc = LineConsole(fc, None, out.append, lambda: reboots.append(1))
    lc.feed(b"inf\x02o\r\n")          # control bytes dropped, CR submits, LF ignored
    lc.feed(b"sta")
    lc.feed(b"tusz\x7f\r")            # split input, backspace edits
    assert fc.lines == ["info", "status"]
    text = "".join(out)
    assert text == "\r\nOK got info\r\n" + PROMPT + "\r\nOK got status\r\n" + PROMPT  # nothing echoed
    lc.feed(b"half\x04")
    assert reboots == [1] and "MPY: soft reboot" in "".join(out) and lc.line == bytearray()


class _ScriptedConsole:
    """A band's line console answering doctor's commands from a script (a list per command)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def drain(self) -> None:
        pass

    def command(self, line: str, what: str) -> str:
        return self.answers[line].pop(0)


def test_doctor_reads_the_lead_off_of_a_task_that_started_meanwhile(monkeypatch):
    # diag while idle (nothing sampled), then the task starts: selftest is busy. The lead-off
    # must come from a diag taken while sampling, and is "not measured" before the first sample.
    import mbfw
    from mirrorband.bands import provision

    info = f"OK info id=0123456789abcdef fw={mbfw.VERSION} board=virtual provisioned=1 hand=R patient=P1"
    status = f"OK status battery=80 used=10 free=1000000 pending=0 clock_us={time.time_ns() // 1000}"
    idle = "OK diag state=IDLE samples=0 overruns=0 bad_frames=0 leadoff=0x00"
    busy = "ERR busy: stop the task first"

    def run(second_diag: str) -> dict[str, str]:
        answers = {"info": [info], "diag": [idle, second_diag], "selftest": [busy], "status": [status]}
        monkeypatch.setattr(provision, "ConsoleLink", lambda port, timeout: _ScriptedConsole(answers))
        return {name: ("ok " if ok else "FAIL ") + detail for name, ok, detail in flash_cmd.doctor("p")}

    got = run("OK diag state=CALIBRATING samples=180 overruns=0 bad_frames=0 leadoff=0x04")
    assert got["electrode EXT +"] == "FAIL IN2P OFF: check the electrode and its gel"
    assert got["electrode FLEX +"] == "ok IN1P on"
    got = run("OK diag state=CALIBRATING samples=0 overruns=0 bad_frames=0 leadoff=0x00")
    assert all(v.startswith("FAIL") and "not measured yet" in v for k, v in got.items() if k.startswith("electrode"))
