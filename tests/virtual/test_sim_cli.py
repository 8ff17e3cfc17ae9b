"""``mirrorband sim`` as a user runs it: ports, console over pyserial and pytest-embedded,
one simulation at a time, ``sim stop``, bad recordings, events equal to ``replay``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from ..conftest import REPO

HERE = Path(__file__).parent


def env_for(data: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MIRRORBAND_DATA_DIR"] = str(data)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "host"), str(REPO / "firmware")])
    return env


def mb(args: list[str], data: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirrorband.cli", *args], capture_output=True, text=True,
                          env=env_for(data), timeout=timeout, cwd=REPO)


class Sim:
    def __init__(self, data: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "mirrorband.cli", "sim", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env_for(data), cwd=REPO)
        self.ports: dict[str, str] = {}
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while len(self.ports) < 2:
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise AssertionError("sim did not print its ports: " + self.proc.stderr.read())
            if line.startswith("band "):
                hand, port = line.split()[1].rstrip(":"), line.split()[-1]
                self.ports[hand] = port

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def data(tmp_path):
    return tmp_path / "data"


def read_until(ser: serial.Serial, token: bytes, timeout: float = 5.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while token not in buf and time.monotonic() < deadline:
        buf += ser.read(256)
    return buf


def test_sim_console_provision_stop_and_single_instance(data):
    sim = Sim(data, "--scenario", "control", "--minutes", "0.5", "--seed", "2")
    try:
        assert set(sim.ports) == {"L", "R"} and all(p.startswith("/dev/pts/") for p in sim.ports.values())
        state = json.loads((data / "sim" / "sim.json").read_text())
        assert state["pid"] == sim.proc.pid and state["ports"] == sim.ports

        # a second simulation: one line, exit 2, nothing left running
        second = mb(["sim", "--scenario", "mild", "--fast"], data)
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1 and "already running" in second.stderr

        # the console: Ctrl-D banner, CR submits, LF alone does not, no echo
        with serial.Serial(sim.ports["L"], 115200, timeout=0.05) as ser:
            ser.write(b"\x04")
            got = read_until(ser, b">>> ")
            assert b"MPY: soft reboot\r\n" in got and b"Mirrorband band firmware" in got
            ser.write(b"info\n")
            assert read_until(ser, b"OK", timeout=0.5) == b""
            ser.write(b"\r")
            got = read_until(ser, b">>> ")
            assert b"OK info id=" in got and b"board=virtual" in got and b"info\n" not in got
            ser.write(b"diag\r\n")
            got = read_until(ser, b">>> ")
            assert b"OK diag state=IDLE" in got and b"ads_id=0x73" in got

        # provisioning through the production command, over the pty (band L is idle
        # after its reboot; a band running a task refuses: busy)
        prov = mb(["provision", "--port", sim.ports["L"], "--hand", "L", "--patient", "P01"], data)
        assert prov.returncode == 0, prov.stderr
        assert "provisioned band" in prov.stdout

        # pytest-embedded serial against the other band (its Ctrl-D stops its task)
        nested = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "embedded" / "serial_console.py"),
             "--embedded-services", "serial", f"--port={sim.ports['R']}", "--rootdir", str(HERE / "embedded"),
             "-c", os.devnull],
            capture_output=True, text=True, env=env_for(data), timeout=120, cwd=HERE / "embedded")
        assert nested.returncode == 0, nested.stdout[-3000:] + nested.stderr[-2000:]
        assert "1 passed" in nested.stdout

        stop = mb(["sim", "stop"], data)
        assert stop.returncode == 0, stop.stderr
        assert sim.proc.wait(timeout=20) == 0
        assert not (data / "sim" / "sim.json").exists()
        assert not os.path.exists(sim.ports["L"])  # the ptys are gone with it
    finally:
        sim.kill()
    again = mb(["sim", "stop"], data)
    assert again.returncode == 2 and again.stderr.strip() == "mirrorband: no simulation is running"


def test_sim_until_done_events_equal_replay(data, tmp_path):
    edf = tmp_path / "s.edf"
    assert mb(["simulate", "--scenario", "moderate-L", "--seed", "4", "-o", str(edf)], data).returncode == 0
    ref = mb(["replay", str(edf), "--json"], data)
    assert ref.returncode == 0, ref.stderr
    t0 = time.monotonic()
    got = mb(["sim", "--recording", str(edf), "--fast", "--until-done", "--json"], data)
    wall = time.monotonic() - t0
    assert got.returncode == 0, got.stderr
    a, b = json.loads(ref.stdout), json.loads(got.stdout)
    assert b["runtime"] == "virtual" and a["events"] and a["events"] == b["events"]
    assert b["bands"]["L"]["samples"] == round(a["duration_s"] * 1000)
    print(f"155 s recording through two virtual bands: {wall:.1f} s (process)")
    assert not (data / "sim" / "sim.json").exists()


def test_sim_bad_input_is_one_line_exit_2(data, tmp_path):
    from mirrorband.sessions.edf import write_edf
    from mirrorband.sim.simulate import simulate

    rec = simulate("mild", seed=1, protocol=[("REST", 5.0), ("WRITE L", 5.0)])
    del rec.hands["R"]
    one = tmp_path / "left-only.edf"
    write_edf(rec, one)
    for args, msg in ((["--recording", str(one)], "R FLEX"),
                      (["--recording", str(tmp_path / "missing.edf")], "no such recording"),
                      (["--scenario", "nope"], "unknown scenario"),
                      (["--scenario", "mild", "--recording", str(one)], "not both"),
                      (["--scenario", "mild", "--minutes", "500"], "minutes")):
        r = mb(["sim", *args, "--fast"], data)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert not (data / "sim" / "sim.json").exists()
