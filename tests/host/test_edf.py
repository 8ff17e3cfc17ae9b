"""EDF+ reading and writing (FORMATS.md §1): round trips, resampling, refusals, atomic writes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyedflib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirrorband.recording import Annotation, HandSignals, Recording, RecordingError
from mirrorband.sessions import edf
from mirrorband.sessions.edf import read_edf, write_edf
from mirrorband.sim.simulate import simulate

SHORT = [("REST", 3.0), ("WRITE L", 6.0), ("REST", 2.0), ("WRITE R", 6.0), ("REST", 2.0)]


def make_rec(seconds=4.0, emg_rate=1000, imu_rate=104, hands="LR", ext=True, imu=True, annotations=None):
    rng = np.random.default_rng(7)
    n, m = int(seconds * emg_rate), int(seconds * imu_rate)
    hs = {}
    for h in hands:
        emg = {"FLEX": rng.normal(0, 20, n) + 1500.0}
        if ext:
            emg["EXT"] = rng.normal(0, 8, n) - 700.0
        acc = gyr = None
        if imu:
            acc = rng.normal(0, 0.05, (m, 3)) + [0.0, 0.0, 1.0]
            gyr = rng.normal(0, 5, (m, 3))
        hs[h] = HandSignals(emg=emg, acc=acc, gyr=gyr)
    anns = (
        annotations
        if annotations is not None
        else [Annotation(0.0, 2.0, "REST"), Annotation(2.0, 2.0, "WRITE L")]
    )
    return Recording(hands=hs, emg_rate=emg_rate, imu_rate=imu_rate, annotations=anns)


def write_raw(path, signals, annotations=(), file_type=pyedflib.FILETYPE_EDFPLUS, seconds=4):
    """Write an EDF with pyedflib directly: signals = [(label, dimension, rate, data or None)]."""
    big = file_type in (pyedflib.FILETYPE_BDFPLUS, pyedflib.FILETYPE_BDF)
    dmax = 8388607 if big else 32767
    headers, data = [], []
    for label, dim, rate, x in signals:
        if x is None:
            x = np.sin(2 * np.pi * 7 * np.arange(int(seconds * rate)) / rate) * 100.0
        headers.append(
            {
                "label": label,
                "dimension": dim,
                "sample_frequency": rate,
                "physical_min": math.floor(float(np.min(x))) - 1.0,
                "physical_max": math.ceil(float(np.max(x))) + 1.0,
                "digital_min": -dmax - 1,
                "digital_max": dmax,
                "transducer": "",
                "prefilter": "",
            }
        )
        data.append(np.asarray(x, dtype=np.float64))
    w = pyedflib.EdfWriter(str(path), len(signals), file_type=file_type)
    try:
        w.setSignalHeaders(headers)
        for onset, dur, text in annotations:
            w.writeAnnotation(onset, dur, text)
        w.writeSamples(data)
    finally:
        w.close()
    return data


def emg_pair(hand="R", rate=1000, seconds=4):
    return [(f"EMG {hand} FLEX", "uV", rate, None), (f"EMG {hand} EXT", "uV", rate, None)]


def imu(hand="R", rate=104, acc_dim="g", gyr_dim="deg/s", axes="XYZ", seconds=4):
    out = []
    for a in axes:
        out.append((f"ACC {hand} {a}", acc_dim, rate, np.full(int(seconds * rate), 0.5)))
    for a in axes:
        out.append((f"GYR {hand} {a}", gyr_dim, rate, np.full(int(seconds * rate), 0.25)))
    return out


def steps(path):
    """Quantisation step of every signal, by label, from the file's header."""
    r = pyedflib.EdfReader(str(path))
    try:
        return {
            r.getLabel(i).rstrip(): (r.getPhysicalMaximum(i) - r.getPhysicalMinimum(i))
            / (r.getDigitalMaximum(i) - r.getDigitalMinimum(i))
            for i in range(r.signals_in_file)
        }
    finally:
        r.close()


def assert_refused(path, *words):
    with pytest.raises(RecordingError) as ei:
        read_edf(path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert str(path) in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    return msg


# ---------------------------------------------------------------------------------------------
# round trips


@pytest.fixture(scope="module")
def sim_rec():
    return simulate("severe", seed=3, protocol=SHORT)


def test_round_trip_simulated(tmp_path, sim_rec):
    path = tmp_path / "sim.edf"
    write_edf(sim_rec, path)
    back = read_edf(path)
    q = steps(path)
    assert back.name == "sim.edf"
    assert back.notes == []
    assert back.emg_rate == 1000 and back.imu_rate == 104
    assert set(back.hands) == {"L", "R"}
    for h, hs in sim_rec.hands.items():
        bh = back.hands[h]
        for ch, x in hs.emg.items():
            y = bh.emg[ch]
            assert len(y) == len(x)
            assert np.max(np.abs(y - x)) <= q[f"EMG {h} {ch}"] * 0.51
        for kind, a, b in (("ACC", hs.acc, bh.acc), ("GYR", hs.gyr, bh.gyr)):
            assert b.shape == a.shape
            for j, axis in enumerate("XYZ"):
                assert np.max(np.abs(b[:, j] - a[:, j])) <= q[f"{kind} {h} {axis}"] * 0.51
    assert len(back.annotations) == len(sim_rec.annotations)
    for a, b in zip(
        sorted(sim_rec.annotations, key=lambda a: (a.onset, a.text)),
        sorted(back.annotations, key=lambda a: (a.onset, a.text)),
        strict=True,
    ):
        assert b.text == a.text
        assert b.onset == pytest.approx(a.onset, abs=1e-6)
        assert b.duration == pytest.approx(a.duration, abs=1e-6)


def test_header_is_formats_contract(tmp_path, sim_rec):
    path = tmp_path / "h.edf"
    write_edf(sim_rec, path)
    raw = path.read_bytes()
    assert raw[:8] == b"0       "
    assert raw[192:197] == b"EDF+C"
    r = pyedflib.EdfReader(str(path))
    try:
        labels = [r.getLabel(i).rstrip() for i in range(r.signals_in_file)]
        dims = {r.getLabel(i).rstrip(): r.getPhysicalDimension(i).rstrip() for i in range(r.signals_in_file)}
        assert r.datarecord_duration == 1.0
        for i in range(r.signals_in_file):
            assert r.getDigitalMinimum(i) == -32768 and r.getDigitalMaximum(i) == 32767
            assert r.getPhysicalMaximum(i) > r.getPhysicalMinimum(i)
    finally:
        r.close()
    expected = []
    for h in "LR":
        expected += [f"EMG {h} FLEX", f"EMG {h} EXT"]
        expected += [f"ACC {h} {a}" for a in "XYZ"] + [f"GYR {h} {a}" for a in "XYZ"]
    assert labels == expected
    assert dims["EMG L FLEX"] == "uV" and dims["ACC R Z"] == "g" and dims["GYR L X"] == "deg/s"


def test_2048_hz_reads_back_resampled(tmp_path):
    fs = 2048
    n = 4 * fs
    t = np.arange(n) / fs
    rec = make_rec(emg_rate=fs)
    rec.hands["L"].emg["FLEX"] = 80.0 * np.sin(2 * np.pi * 37.0 * t) + 200.0
    path = tmp_path / "hi.edf"
    write_edf(rec, path)
    back = read_edf(path)
    assert "EMG resampled 2048 Hz -> 1000 Hz" in back.notes
    y = back.hands["L"].emg["FLEX"]
    assert len(y) == 4000 and back.emg_rate == 1000
    t1 = np.arange(4000) / 1000
    ref = 80.0 * np.sin(2 * np.pi * 37.0 * t1) + 200.0
    assert np.max(np.abs(y[50:-50] - ref[50:-50])) < 1.0
    assert len(back.hands["L"].emg["EXT"]) == 4000


def test_simulated_2048_round_trip(tmp_path):
    rec = simulate("mild", seed=1, emg_rate=2048, protocol=[("REST", 3.0), ("WRITE R", 4.0)])
    path = tmp_path / "s2048.edf"
    write_edf(rec, path)
    r = pyedflib.EdfReader(str(path))
    try:
        assert r.getSampleFrequency(0) == 2048
    finally:
        r.close()
    back = read_edf(path)
    assert back.notes == ["EMG resampled 2048 Hz -> 1000 Hz"]
    assert len(back.hands["R"].emg["FLEX"]) == 7000


def test_write_resamples_on_request(tmp_path):
    rec = make_rec()
    path = tmp_path / "r.edf"
    write_edf(rec, path, emg_rate=2000, imu_rate=100)
    r = pyedflib.EdfReader(str(path))
    try:
        rates = {r.getLabel(i).rstrip(): r.getSampleFrequency(i) for i in range(r.signals_in_file)}
    finally:
        r.close()
    assert rates["EMG L FLEX"] == 2000 and rates["GYR R Z"] == 100
    back = read_edf(path)
    assert "EMG resampled 2000 Hz -> 1000 Hz" in back.notes
    assert "ACC resampled 100 Hz -> 104 Hz" in back.notes and "GYR resampled 100 Hz -> 104 Hz" in back.notes
    assert back.hands["L"].acc.shape == (416, 3)
    # gravity survives two resamplings, edges included (no zero-padding ringing)
    assert np.allclose(back.hands["L"].acc[:, 2].mean(), 1.0, atol=0.01)
    assert abs(back.hands["L"].acc[0, 2] - 1.0) < 0.2


def test_non_integer_rate_record_duration(tmp_path):
    rec = simulate("control", seed=2, emg_rate=1234.5, protocol=[("REST", 4.0)])
    path = tmp_path / "odd.edf"
    write_edf(rec, path)
    r = pyedflib.EdfReader(str(path))
    try:
        assert r.datarecord_duration == 2.0
        assert r.getSampleFrequency(0) == pytest.approx(1234.5)
    finally:
        r.close()
    back = read_edf(path)
    assert "EMG resampled 1234.5 Hz -> 1000 Hz" in back.notes
    assert len(back.hands["L"].emg["FLEX"]) == 4000


def test_record_duration_helper():
    assert edf._record_duration([1000.0, 104.0]) == 1
    assert edf._record_duration([2048.0, 104.0]) == 1
    assert edf._record_duration([1234.5, 104.0]) == 2
    d = edf._record_duration([512.25, 104.0])
    assert (512.25 * d) == int(512.25 * d) and (104 * d) == int(104 * d)


def test_partial_last_record_is_padded(tmp_path):
    rec = make_rec(seconds=2.5)
    path = tmp_path / "pad.edf"
    write_edf(rec, path)
    back = read_edf(path)
    q = steps(path)["EMG L FLEX"]
    x, y = rec.hands["L"].emg["FLEX"], back.hands["L"].emg["FLEX"]
    assert len(y) == 3000
    assert np.max(np.abs(y[:2500] - x)) <= q * 0.51
    assert np.allclose(y[2500:], y[2499])
    assert back.duration == 3.0


def test_constant_signal_never_zero_range(tmp_path):
    rec = make_rec()
    rec.hands["R"].emg["FLEX"] = np.zeros(4000)
    rec.hands["R"].gyr = np.full((416, 3), 3.25)
    path = tmp_path / "c.edf"
    write_edf(rec, path)
    back = read_edf(path)
    assert np.allclose(back.hands["R"].emg["FLEX"], 0.0, atol=1e-3)
    assert np.allclose(back.hands["R"].gyr, 3.25, atol=1e-3)


def test_one_hand_without_imu(tmp_path):
    rec = make_rec(hands="R", ext=False, imu=False)
    path = tmp_path / "one.edf"
    write_edf(rec, path)
    back = read_edf(path)
    assert set(back.hands) == {"R"}
    assert set(back.hands["R"].emg) == {"FLEX"}
    assert back.hands["R"].acc is None and back.hands["R"].gyr is None


def test_many_annotations_all_kept(tmp_path):
    anns = [Annotation(round(i * 0.013, 3), 0.005 * (i % 3), f"MIRROR {'LR'[i % 2]}") for i in range(200)]
    rec = make_rec(seconds=4.0, annotations=anns)
    path = tmp_path / "many.edf"
    write_edf(rec, path)
    back = read_edf(path)
    assert len(back.annotations) == 200
    got = sorted((a.onset, a.duration, a.text) for a in back.annotations)
    exp = sorted((a.onset, a.duration, a.text) for a in anns)
    for g, e in zip(got, exp, strict=True):
        assert (
            g[2] == e[2] and g[0] == pytest.approx(e[0], abs=1e-6) and g[1] == pytest.approx(e[1], abs=1e-6)
        )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 39999),
            st.integers(0, 20000),
            st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), min_size=1, max_size=12),
        ),
        max_size=12,
    )
)
def test_annotations_round_trip_property(tmp_path, items):
    anns = [Annotation(o / 10000, d / 10000, text) for o, d, text in items]
    rec = make_rec(seconds=4.0, emg_rate=500, imu=False, hands="L", annotations=anns)
    path = tmp_path / "prop.edf"
    write_edf(rec, path)
    back = read_edf(path)
    got = sorted((round(a.onset, 4), round(a.duration, 4), a.text) for a in back.annotations)
    exp = sorted((round(a.onset, 4), round(a.duration, 4), a.text) for a in anns)
    assert got == exp


# ---------------------------------------------------------------------------------------------
# reading files written by other tools


def test_units_converted_and_noted(tmp_path):
    path = tmp_path / "units.edf"
    sig = [("EMG R FLEX", "mV", 1000, np.full(4000, 0.5)), ("EMG R EXT", "mV", 1000, np.full(4000, -0.25))]
    sig += imu(acc_dim="m/s^2", gyr_dim="rad/s")
    write_raw(path, sig)
    rec = read_edf(path)
    assert np.allclose(rec.hands["R"].emg["FLEX"], 500.0, atol=0.1)
    assert np.allclose(rec.hands["R"].emg["EXT"], -250.0, atol=0.1)
    assert np.allclose(rec.hands["R"].acc, 0.5 / 9.80665, atol=1e-3)
    assert np.allclose(rec.hands["R"].gyr, 0.25 * 180 / math.pi, atol=0.05)
    assert any("mV" in n for n in rec.notes)
    assert any("m/s^2" in n for n in rec.notes) and any("rad/s" in n for n in rec.notes)


@pytest.mark.parametrize("dim", ["uV", "uv", "UV", "\u00b5V"])
def test_microvolt_spellings(tmp_path, dim):
    path = tmp_path / "uv.edf"
    write_raw(path, [("EMG L FLEX", dim, 1000, np.full(4000, 12.0))])
    rec = read_edf(path)
    assert np.allclose(rec.hands["L"].emg["FLEX"], 12.0, atol=0.05)
    assert rec.notes == []


def test_latin1_micro_sign_refused_clearly(tmp_path):
    # plain EDF (EDF+ headers must be ASCII, edflib refuses a Latin-1 byte there)
    path = tmp_path / "latin1.edf"
    write_raw(path, [("EMG L FLEX", "uV", 1000, np.full(4000, 12.0))], file_type=pyedflib.FILETYPE_EDF)
    data = bytearray(path.read_bytes())
    off = 256 + 1 * (16 + 80)  # dimension field of signal 0
    assert data[off : off + 2] == b"uV"
    data[off : off + 2] = b"\xb5V"
    path.write_bytes(bytes(data))
    # edflib cannot open it; the refusal says why
    assert_refused(path, "not ASCII", "uV")


def test_acc_in_ms2_and_gyr_dps(tmp_path):
    path = tmp_path / "ms2.edf"
    write_raw(path, emg_pair() + imu(acc_dim="m/s2", gyr_dim="dps"))
    rec = read_edf(path)
    assert np.allclose(rec.hands["R"].acc, 0.5 / 9.80665, atol=1e-3)
    assert np.allclose(rec.hands["R"].gyr, 0.25, atol=1e-3)


def test_other_signals_ignored_and_annotations_kept(tmp_path):
    path = tmp_path / "other.edf"
    sig = [("ECG", "uV", 250, None), ("EMG L FLEX2", "uV", 1000, None), ("EMG L FLEX", "uV", 1000, None)]
    anns = [(0.5, -1, "Stimulus \u00fc start"), (1.25, 0.75, "MIRROR L"), (2.0, 0.0, "note  with  spaces")]
    write_raw(path, sig, anns)
    rec = read_edf(path)
    assert set(rec.hands) == {"L"} and set(rec.hands["L"].emg) == {"FLEX"}
    assert rec.hands["L"].acc is None
    assert [(a.onset, a.duration, a.text) for a in rec.annotations] == [
        (0.5, 0.0, "Stimulus \u00fc start"),
        (1.25, 0.75, "MIRROR L"),
        (2.0, 0.0, "note  with  spaces"),
    ]


def test_imu_100hz_resampled(tmp_path):
    path = tmp_path / "imu100.edf"
    write_raw(path, emg_pair() + imu(rate=100))
    rec = read_edf(path)
    assert rec.hands["R"].acc.shape == (416, 3)
    assert np.allclose(rec.hands["R"].acc, 0.5, atol=1e-3)
    assert "ACC resampled 100 Hz -> 104 Hz" in rec.notes


def test_bdf_plus_accepted(tmp_path):
    path = tmp_path / "b.bdf"
    x = 300.0 * np.sin(2 * np.pi * 50 * np.arange(4000) / 1000)
    write_raw(
        path, [("EMG R FLEX", "uV", 1000, x)], [(1.0, 2.0, "REST")], file_type=pyedflib.FILETYPE_BDFPLUS
    )
    rec = read_edf(path)
    assert np.max(np.abs(rec.hands["R"].emg["FLEX"] - x)) < 1e-3
    assert rec.annotations == [Annotation(1.0, 2.0, "REST")]


def test_plain_edf_accepted(tmp_path):
    path = tmp_path / "plain.edf"
    write_raw(path, emg_pair("L"), file_type=pyedflib.FILETYPE_EDF)
    rec = read_edf(path)
    assert set(rec.hands) == {"L"} and rec.annotations == []


def test_hand_without_flex_ignored_with_note(tmp_path):
    path = tmp_path / "noflexL.edf"
    write_raw(path, emg_pair("R") + [("EMG L EXT", "uV", 1000, None)])
    rec = read_edf(path)
    assert set(rec.hands) == {"R"}
    assert any("EMG L FLEX" in n for n in rec.notes)


# ---------------------------------------------------------------------------------------------
# refusals


def test_refuse_missing_file(tmp_path):
    assert_refused(tmp_path / "nope.edf", "not found")


def test_refuse_directory(tmp_path):
    assert_refused(tmp_path, "directory")


def test_refuse_text_file(tmp_path):
    path = tmp_path / "notes.edf"
    path.write_text("this is a text file, not a recording\n" * 20)
    assert_refused(path, "not an EDF")


def test_refuse_empty_file(tmp_path):
    path = tmp_path / "empty.edf"
    path.write_bytes(b"")
    assert_refused(path, "not an EDF")


@pytest.mark.parametrize("cut", [1, 3, 1000, "half", "header"])
def test_refuse_truncated(tmp_path, cut, capfd):
    good = tmp_path / "good.edf"
    write_edf(make_rec(), good)
    data = good.read_bytes()
    if cut == "half":
        data = data[: len(data) // 2]
    elif cut == "header":
        data = data[:600]
    else:
        data = data[:-cut]
    path = tmp_path / "cut.edf"
    path.write_bytes(data)
    assert_refused(path, "truncated")
    out, _ = capfd.readouterr()
    assert out == ""  # nothing on stdout (replay --json owns it)


def test_refuse_trailing_garbage(tmp_path):
    path = tmp_path / "long.edf"
    write_edf(make_rec(), path)
    with open(path, "ab") as f:
        f.write(b"\0" * 10)
    assert_refused(path, "corrupt")


def test_refuse_corrupt_header_field(tmp_path):
    path = tmp_path / "bad.edf"
    write_edf(make_rec(), path)
    data = bytearray(path.read_bytes())
    data[236:244] = b"abcdefgh"
    path.write_bytes(bytes(data))
    assert_refused(path, "corrupt")


def test_refuse_discontinuous(tmp_path):
    path = tmp_path / "d.edf"
    write_edf(make_rec(), path)
    data = bytearray(path.read_bytes())
    data[192:197] = b"EDF+D"
    path.write_bytes(bytes(data))
    assert_refused(path, "discontinuous")


def test_refuse_no_flex(tmp_path):
    path = tmp_path / "noflex.edf"
    write_raw(path, [("EMG L EXT", "uV", 1000, None), ("ECG", "uV", 1000, None)] + imu("L"))
    assert_refused(path, "FLEX")


def test_refuse_low_emg_rate(tmp_path):
    path = tmp_path / "slow.edf"
    write_raw(path, emg_pair(rate=400))
    assert_refused(path, "400 Hz", "500")


def test_refuse_ext_rate_mismatch(tmp_path):
    path = tmp_path / "mismatch.edf"
    write_raw(path, [("EMG L FLEX", "uV", 1000, None), ("EMG L EXT", "uV", 2000, None)])
    assert_refused(path, "EXT", "2000")


@pytest.mark.parametrize("axes", ["X", "XY", "Z"])
def test_refuse_partial_axes(tmp_path, axes):
    path = tmp_path / "partial.edf"
    write_raw(path, emg_pair() + imu(axes=axes))
    assert_refused(path, "ACC R", "all three")


def test_refuse_low_imu_rate(tmp_path):
    path = tmp_path / "imuslow.edf"
    write_raw(path, emg_pair() + imu(rate=25))
    assert_refused(path, "25 Hz")


def test_refuse_unknown_emg_unit(tmp_path):
    path = tmp_path / "unit.edf"
    write_raw(path, [("EMG R FLEX", "mA", 1000, None)])
    assert_refused(path, "mA")


def test_refuse_duplicate_label(tmp_path):
    path = tmp_path / "dup.edf"
    write_raw(path, [("EMG R FLEX", "uV", 1000, None), ("EMG R FLEX", "uV", 1000, None)])
    assert_refused(path, "twice")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads everything")
def test_refuse_unreadable(tmp_path):
    path = tmp_path / "locked.edf"
    write_edf(make_rec(), path)
    path.chmod(0)
    try:
        assert_refused(path, "permission")
    finally:
        path.chmod(0o644)


# ---------------------------------------------------------------------------------------------
# writing failures: one line, nothing half-written


def _listing(d: Path):
    return sorted(p.name for p in d.iterdir())


def test_write_to_missing_directory(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "x.edf"
    with pytest.raises(RecordingError) as ei:
        write_edf(make_rec(), target)
    assert "\n" not in str(ei.value) and "x.edf" in str(ei.value)
    assert _listing(tmp_path) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes everywhere")
def test_write_to_readonly_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(RecordingError):
            write_edf(make_rec(), d / "x.edf")
        assert _listing(d) == []
    finally:
        d.chmod(0o755)


def test_failed_write_leaves_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "keep.edf"
    target.write_bytes(b"previous content")
    calls = {"n": 0}
    orig = pyedflib.EdfWriter.blockWriteDigitalSamples

    def failing(self, data):
        calls["n"] += 1
        if calls["n"] == 2:
            return -1
        return orig(self, data)

    monkeypatch.setattr(pyedflib.EdfWriter, "blockWriteDigitalSamples", failing)
    with pytest.raises(RecordingError) as ei:
        write_edf(make_rec(), target)
    assert "\n" not in str(ei.value)
    assert target.read_bytes() == b"previous content"
    assert _listing(tmp_path) == ["keep.edf"]


def test_overwrite_existing_file(tmp_path):
    target = tmp_path / "over.edf"
    target.write_bytes(b"old")
    write_edf(make_rec(), target)
    assert read_edf(target).hands["L"].emg["FLEX"].shape == (4000,)
    assert _listing(tmp_path) == ["over.edf"]


def test_write_refuses_long_annotation(tmp_path):
    rec = make_rec(annotations=[Annotation(0.0, 0.0, "x" * 41)])
    with pytest.raises(RecordingError, match="longer than 40"):
        write_edf(rec, tmp_path / "long.edf")
    assert _listing(tmp_path) == []


def test_write_refuses_nan(tmp_path):
    rec = make_rec()
    rec.hands["L"].emg["EXT"][10] = np.nan
    with pytest.raises(RecordingError, match="EMG L EXT"):
        write_edf(rec, tmp_path / "nan.edf")
    assert _listing(tmp_path) == []


def test_write_start_time(tmp_path):
    from datetime import datetime

    path = tmp_path / "t.edf"
    write_edf(make_rec(), path, start_time=datetime(2026, 3, 4, 5, 6, 7))
    r = pyedflib.EdfReader(str(path))
    try:
        assert r.getStartdatetime() == datetime(2026, 3, 4, 5, 6, 7)
    finally:
        r.close()
    write_edf(make_rec(), path)
    r = pyedflib.EdfReader(str(path))
    try:
        assert r.getStartdatetime() == datetime(1985, 1, 1)
    finally:
        r.close()


def test_header_number_fits_eight_chars():
    for x in [0.0, -0.0, 1e-9, -1234.56789, 99999.99, 123456.7, -2863.3842397, 0.123456789, 9999999.0]:
        lo = edf._header_number(x, up=False)
        hi = edf._header_number(x, up=True)
        assert lo <= x <= hi
        for v in (lo, hi):
            s = f"{v:.6f}".rstrip("0").rstrip(".")
            assert len(s) <= 8 or len(repr(v)) <= 8
    with pytest.raises(RecordingError):
        edf._header_number(1e8, up=True)


def test_refuse_permission_denied_simulated(tmp_path, monkeypatch):
    """The unreadable case also when the tests run as root (where chmod does not bite)."""
    path = tmp_path / "locked2.edf"
    write_edf(make_rec(), path)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(edf, "open", denied, raising=False)
    assert_refused(path, "permission")


def test_write_open_failure_simulated(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise OSError("can not open file, no write permission")

    monkeypatch.setattr(pyedflib, "EdfWriter", refuse)
    with pytest.raises(RecordingError, match="no write permission") as ei:
        write_edf(make_rec(), tmp_path / "x.edf")
    assert "\n" not in str(ei.value)
    assert _listing(tmp_path) == []
