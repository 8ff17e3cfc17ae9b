"""HIL: boot banner, sensor self-test, a short recorded task and log download over USB.

Runs against a virtual band's pty (default) or a real band (``--port=/dev/ttyACM0``).
"""

from __future__ import annotations

import secrets
import time

import pytest

from mbfw import protocol as P
from mbfw.task import STEP_NONE, STEP_REST
from mirrorband.bands.client import BandClient


def _text(m) -> str:
    g = m.group(1)
    return g.decode() if isinstance(g, bytes) else g


def _line(dut, cmd: str, pattern: str, timeout: float = 5) -> str:
    dut.write(cmd + "\r")
    return _text(dut.expect(pattern, timeout=timeout))


def _reboot(dut) -> None:
    dut.write("\x04")
    dut.expect_exact("MPY: soft reboot", timeout=15)
    dut.expect(r"Mirrorband band firmware \S+ on \S+", timeout=15)
    dut.expect_exact(">>> ", timeout=5)


def test_boot_banner(dut):
    _reboot(dut)
    info = _line(dut, "info", r"(OK info [^\r\n]*)")
    assert "fw=" in info and "board=" in info


def test_sensor_self_test(dut):
    _reboot(dut)  # idle: a task in progress would refuse the self-test
    out = _line(dut, "selftest", r"(OK selftest [^\r\n]*)")
    assert "ads=ok ads_id=0x73" in out and "imu=ok imu_who=0x6c" in out, out


def test_short_task_recorded_and_downloaded_over_usb(dut):
    _reboot(dut)
    key = secrets.token_bytes(32)
    answer = _line(dut, f"provision {key.hex()} R hil", r"((?:OK|CONFIRM|ERR)[^\r\n]*)")
    if answer.startswith("CONFIRM"):
        answer = _line(dut, f"confirm {answer.split()[1]}", r"((?:OK|ERR)[^\r\n]*)")
    assert answer.startswith("OK provisioned"), answer
    client = BandClient(key)

    def send(raw: bytes) -> bytes:
        return bytes.fromhex(_line(dut, "frame " + raw.hex(), r"FRAME ([0-9a-f]+)"))

    client.call(send, P.OP_TASK_SET, bytes(P.TaskSet([(0, STEP_REST), (1500, STEP_NONE)])))
    client.call(send, P.OP_TASK_START, bytes(P.TaskStart(7)))
    deadline = time.monotonic() + 60
    while True:
        st = client.status(send)
        if st.state == 3:  # DONE
            break
        assert time.monotonic() < deadline, f"task not done: state {st.state}"
        time.sleep(0.2)
    pages: list[bytes] = []
    records = client.download(send, pages.append)
    from mbfw.logrec import SESSION_START, SESSION_STOP, T_SESSION, unpack_session

    marks = [(s[0], s[1]) for s in (unpack_session(p) for _, t, p in records if t == T_SESSION)]
    assert marks[-2:] == [(7, SESSION_START), (7, SESSION_STOP)], marks  # session 7 started and ended
    assert pages and client.log_range(send).acked == records[-1][0]
    assert client.download(send, pages.append) == []  # all acknowledged: nothing twice


@pytest.mark.hil
def test_rts_reset_restarts_the_firmware(dut):
    # USB modem lines: RTS pulses EN on the XIAO ESP32S3 (USB-Serial/JTAG) -> hard reset
    ser = dut.serial.proc
    ser.rts = True
    time.sleep(0.1)
    ser.rts = False
    dut.expect(r"Mirrorband band firmware \S+ on \S+", timeout=20)


@pytest.mark.hil
def test_band_advertises_over_ble(dut):
    # radio: the band is found by name within 10 s (needs a BLE adapter on this computer)
    import asyncio

    from bleak import BleakScanner

    found = asyncio.run(BleakScanner.find_device_by_filter(
        lambda d, ad: (d.name or "").startswith("Mirrorband-"), timeout=10))
    assert found is not None
