"""Wire protocol codecs under CPython: the golden byte vectors (the table in
tests/micropython/protocol_check.py, also checked inside MicroPython), round
trips, range checks and clear error codes."""

from __future__ import annotations

import pytest

from mbfw import protocol as P
from mbfw.config import FIELD_NAMES
from mbfw.security import Keys, seal, verify
from mirrorband.bands.client import aes_ctr

from ..micropython import protocol_check as golden


def test_golden_vectors_and_checks_under_cpython():
    fails, n = golden.run(aes_ctr)
    assert fails == [] and n >= 240


def test_vector_table_is_complete_and_fixed():
    names = [name for name, _ in golden.VECTORS]
    assert len(names) == len(set(names)) == 15
    # the header layout of docs/protocol.md, byte by byte
    raw = bytes.fromhex(dict(golden.VECTORS)["frame_time_set"])
    assert raw[0] == 0xB5 and raw[1] == 1 and raw[2] == 0 and raw[3] == P.OP_TIME_SET and raw[4] == 0
    assert raw[5:7] == (0x1234).to_bytes(2, "little") and raw[7:11] == (7).to_bytes(4, "little")
    assert raw[11:13] == (9).to_bytes(2, "little") and len(raw) == P.HEADER + 9 + P.TAG


def test_handler_on_cpython_matches_micropython_script():
    fails, codes = golden.run_handler(aes_ctr, mutants=3000)
    assert fails == [] and codes & 0b11110


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version_rejected_with_supported_version(version):
    raw = bytearray(seal(P.Frame(P.OP_INFO, b"", 1, 0), None))
    raw[1] = version
    with pytest.raises(P.ProtocolError) as e:
        P.Frame.from_bytes(bytes(raw))
    assert e.value.code == P.ERR_BAD_VERSION and e.value.detail == bytes([P.VERSION])
    assert "version" in str(e.value)


def test_payload_round_trips():
    msgs = [
        P.TimeSet(P.TIME_ADJ, -123456789), P.TaskSet([(0, 1), (10, 2), (2**30 - 1, 3)]), P.TaskStart(2**32 - 1),
        P.Calibrate(1000), P.LogAck(0), P.LogRead(7, P.PAGE_MAX), P.TimeNow(-5),
        P.ConfigValues([(i, -i) for i in range(len(FIELD_NAMES))]), P.Provision(bytes(32), 0, "a.b_c-9", 77),
        P.Info(bytes(8), 0, 0, 0, "", "", ""), P.Status(0, 0, 100, 1, 2, 3, 4), P.LogRange(1, 2, 2**32 - 1, 4, 5, 6),
        P.PageHeader(P.PAGE_MAGIC, 1, 1, 2, 3, P.PAGE_MAX),
    ]
    for m in msgs:
        raw = bytes(m)
        again = type(m).from_bytes(raw)
        assert bytes(again) == raw, type(m).__name__
        assert P.encode(m) == raw


def test_range_and_length_errors_have_codes():
    with pytest.raises(P.ProtocolError) as e:
        P.TaskSet([(i * 10, 1) for i in range(P.MAX_TASK_STEPS + 1)])
    assert e.value.code == P.ERR_RANGE
    for cls, raw in ((P.TimeSet, b"\x00" * 8), (P.TaskSet, b"\x02\x00"), (P.ConfigValues, b""),
                     (P.Provision, bytes(38)), (P.Info, bytes(14)), (P.LogRange, bytes(23))):
        with pytest.raises(P.ProtocolError) as e:
            cls.from_bytes(raw)
        assert e.value.code == P.ERR_BAD_LENGTH, cls.__name__
    with pytest.raises(P.ProtocolError) as e:
        P.Frame(P.OP_INFO, bytes(P.MAX_PAYLOAD + 1))
    assert e.value.code == P.ERR_BAD_LENGTH
    with pytest.raises(P.ProtocolError) as e:
        P.Frame(P.OP_INFO, b"", counter=2**32)
    assert e.value.code == P.ERR_RANGE
    with pytest.raises(P.ProtocolError) as e:
        P.ConfigValues.from_dict({"nope": 1})
    assert e.value.code == P.ERR_RANGE


def test_response_direction_is_authenticated():
    k = Keys(bytes(32))
    req = P.Frame.from_bytes(seal(P.Frame(P.OP_STATUS, b"", 3, 4), k))
    # turning a request into a "response" (flag bit) breaks its tag
    raw = bytearray(bytes(req))
    raw[2] |= P.FLAG_RESP
    with pytest.raises(P.ProtocolError) as e:
        verify(P.Frame.from_bytes(bytes(raw)), k)
    assert e.value.code == P.ERR_BAD_TAG


def test_names_cover_every_code_and_opcode():
    assert len(P.ERROR_NAMES) == P.ERR_LAST + 1 and len(P.OP_NAMES) == P.OP_LAST + 1
    assert P.error_name(99) == "error 99"


def _usb(h, op, payload=b""):
    return P.Frame.from_bytes(h.handle(seal(P.Frame(op, payload, 1, 0), None), P.USB))


def test_status_with_electrodes_is_additive():
    # no payload: the 28-byte Status every host parses; STATUS_X: StatusX (status, then electrodes)
    from mbfw.console import Console
    from mbfw.handler import STATUS_X, Handler
    from mbfw.identity import Identity, MemStore

    dev = golden.Device()
    h = Handler(dev, golden.Log(3), Identity(MemStore()))
    plain = _usb(h, P.OP_STATUS)
    assert plain.status == P.OK and len(plain.payload) == 23
    st = P.Status.from_bytes(plain.payload)
    assert (st.state, st.step, st.battery) == (1, 0, 90)
    x = _usb(h, P.OP_STATUS, bytes((STATUS_X,)))
    assert x.status == P.OK and len(x.payload) == 28 and x.payload[:23] == plain.payload
    sx = P.StatusX.from_bytes(x.payload)
    assert (sx.loff, sx.q_flex, sx.q_ext) == (0x0C, 1234, 0xFFFF)  # 70000 capped
    assert _usb(h, P.OP_STATUS, b"\x02").status == P.ERR_RANGE
    assert _usb(h, P.OP_STATUS, b"\x01\x00").status == P.ERR_BAD_LENGTH
    # a device without electrodes() (older app): not sampled, levels unknown
    class OldDevice:
        status = golden.Device.status
        now_us = golden.Device.now_us
        clock = 5

    sx = P.StatusX.from_bytes(_usb(Handler(OldDevice(), golden.Log(3), Identity(MemStore())), P.OP_STATUS,
                                   bytes((STATUS_X,))).payload)
    assert (sx.loff, sx.q_flex, sx.q_ext, sx.now_us) == (P.LOFF_UNKNOWN, 0, 0, 5)
    line = Console(h).line("status")
    assert line.startswith("OK status state=1 step=0 battery=90 ")
    assert line.endswith(" loff=0x0c rest_flex=1234 rest_ext=65535"), line
