"""Semi-synthetic recordings from real data (mirrorband.analysis.semisynth); skipped when the shared data are absent."""

from __future__ import annotations

import numpy as np
import pytest

from mirrorband.analysis import datasets, semisynth
from mirrorband.recording import EMG_RATE_HZ


def _need(*parts):
    root = datasets.shared_data_dir()
    p = root.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return root


@pytest.fixture
def plux():
    return _need(datasets.PLUX_DIR)


def _truth(rec):
    return [(a.onset, a.end) for a in rec.truth("BURST", "R")]


def test_deterministic_for_a_seed(plux):
    a = semisynth.semisynth_recording(9.0, 3, duration_s=40.0)
    b = semisynth.semisynth_recording(9.0, 3, duration_s=40.0)
    c = semisynth.semisynth_recording(9.0, 4, duration_s=40.0)
    assert np.array_equal(a.hands["R"].emg["FLEX"], b.hands["R"].emg["FLEX"])
    assert a.annotations == b.annotations and a.notes == b.notes
    assert _truth(a) != _truth(c)
    assert a.emg_rate == EMG_RATE_HZ and abs(a.duration - 40.0) < 1e-9 and list(a.hands) == ["R"]


def test_truth_is_where_energy_was_added(plux):
    """Same seed at two SNRs: the recordings differ exactly inside the truth spans, which are real bursts."""
    lo = semisynth.semisynth_recording(0.0, 1)
    hi = semisynth.semisynth_recording(20.0, 1)
    assert _truth(lo) == _truth(hi) and len(_truth(lo)) >= 5
    diff = hi.hands["R"].emg["FLEX"] - lo.hands["R"].emg["FLEX"]
    t = np.arange(len(diff)) / hi.emg_rate
    inside = np.zeros(len(diff), bool)
    for a, b in _truth(hi):
        inside |= (t >= a - 1e-6) & (t < b - 1e-6)
        assert b - a >= 0.1
    assert np.all(diff[~inside] == 0)
    assert np.mean(diff[inside] != 0) > 0.99
    # gaps between bursts and a lead-in with the REST step before the first one
    spans = _truth(hi)
    assert all(b2[0] - b1[1] >= 2.0 - 1e-6 for b1, b2 in zip(spans, spans[1:], strict=False))
    rest = hi.task_annotations()
    assert [r.text for r in rest] == ["REST"] and rest[0].end <= spans[0][0]


@pytest.mark.parametrize("snr", [0.0, 6.0, 15.0])
def test_snr_is_achieved(plux, snr):
    """Band SNR of each injected burst as defined (its own band RMS over its span / the rest's) within 0.5 dB;
    estimated from the mixture alone (span power minus local rest power) within 1.5 dB from 6 dB up."""
    rec = semisynth.semisynth_recording(snr, 2, channels=("FLEX", "EXT"))
    x = rec.hands["R"].emg["FLEX"]
    zero = semisynth.semisynth_recording(-200.0, 2, channels=("FLEX", "EXT"))  # same rest, bursts ~0
    rest_band = semisynth._band(zero.hands["R"].emg["FLEX"], rec.emg_rate)
    band = semisynth._band(x, rec.emg_rate)
    r = rec.emg_rate
    added_band = semisynth._band(x - zero.hands["R"].emg["FLEX"], rec.emg_rate)
    for a, b in _truth(rec):
        i, j = int(round(a * r)), int(round(b * r))
        assert semisynth.band_snr_db(added_band[i:j], rest_band) == pytest.approx(snr, abs=0.5)
        if snr >= 6.0:
            burst_power = np.mean(band[i:j] ** 2) - np.mean(rest_band[i:j] ** 2)
            assert 10 * np.log10(burst_power / np.mean(rest_band ** 2)) == pytest.approx(snr, abs=1.5)
    assert set(rec.hands["R"].emg) == {"FLEX", "EXT"}
    ext_added = rec.hands["R"].emg["EXT"] - zero.hands["R"].emg["EXT"]
    assert np.allclose(ext_added, (x - zero.hands["R"].emg["FLEX"]) * 10 ** (-12 / 20), atol=1e-6)
    assert not np.allclose(rec.hands["R"].emg["EXT"], x)  # its own rest, not a copy of FLEX


def test_without_rest_and_other_sources(plux):
    rec = semisynth.semisynth_recording(10.0, 0, rest=False, duration_s=30.0)
    assert not rec.task_annotations() and rec.truth("BURST", "R") and rec.name.endswith("-norest")
    if (datasets.shared_data_dir() / datasets.BIOSPPY_DIR / "emg.txt").exists():
        b = semisynth.semisynth_recording(10.0, 0, rest_from="biosppy", duration_s=30.0)
        assert "biosppy rest" in b.notes[0]
    with pytest.raises(ValueError, match="UCI"):
        semisynth.semisynth_recording(10.0, 0, bursts_from="plux", rest_from="uci")
    with pytest.raises(ValueError, match="bursts_from"):
        semisynth.semisynth_recording(10.0, 0, bursts_from="nope")
    with pytest.raises(ValueError, match="channels"):
        semisynth.semisynth_recording(10.0, 0, channels=("EXT",))
    with pytest.raises(ValueError, match="finite SNR"):
        semisynth.semisynth_recording(float("nan"), 0)


def test_uci_source():
    _need(datasets.UCI_DIR)
    rec = semisynth.semisynth_recording(12.0, 5, bursts_from="uci", duration_s=40.0)
    assert "uci rest" in rec.notes[0] and rec.truth("BURST", "R")
    assert all(1.0 < b - a < 5.0 for a, b in _truth(rec))  # gesture segments held ~3 s


def _threshold_detector(rec):
    """A plain reference detector (not Mirrorband's): 50 ms band RMS over 4x the first REST's level."""
    x = rec.hands["R"].emg["FLEX"]
    r = rec.emg_rate
    _y, env = datasets.labelling_envelope(x, r)
    rest = rec.task_annotations()[0]
    level = np.sqrt(np.mean(env[int(rest.onset * r):int(rest.end * r)] ** 2))
    events = []
    for a, b in datasets._segments(env > 4.0 * level):
        if b - a >= 0.05 * r:
            events.append({"hand": "R", "kind": "burst", "onset_s": a / r, "offset_s": b / r})
    return events


def test_curve_is_monotone_for_a_reference_detector(plux):
    rows = semisynth.snr_curve(_threshold_detector, snrs_db=(-6.0, 3.0, 12.0, 25.0), seeds=(0, 1), duration_s=40.0)
    assert [r["snr_db"] for r in rows] == [-6.0, 3.0, 12.0, 25.0]
    p = [r["p_detect"] for r in rows]
    assert all(b >= a - 0.1 for a, b in zip(p, p[1:], strict=False))
    assert p[0] < 0.5 < p[-1]
    for r in rows:
        assert r["n_true"] > 0 and 0 <= r["n_detected_true"] <= r["n_true"]
        assert r["p_detect"] == pytest.approx(r["n_detected_true"] / r["n_true"])
        assert r["fp_per_min"] == pytest.approx(r["n_false"] / r["minutes"]) and r["minutes"] == pytest.approx(4 / 3)
    # the same truth at every SNR (seeded placement)
    assert len({r["n_true"] for r in rows}) == 1


def test_band_snr_db():
    rng = np.random.default_rng(0)
    rest = rng.normal(0, 1.0, 10_000)
    assert semisynth.band_snr_db(10 * rest[:500], rest) == pytest.approx(20.0, abs=0.5)
    with pytest.raises(ValueError):
        semisynth.band_snr_db(np.zeros(10), rest)
