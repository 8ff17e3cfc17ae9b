"""Loaders for the real recordings in ../shared/data (mirrorband.datasets); skipped when absent."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from mirrorband import datasets
from mirrorband.recording import EMG_RATE_HZ


@pytest.fixture
def data_root():
    root = datasets.shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"shared data not available: {root}")
    return root


def _need(root, *parts):
    p = root.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


def test_env_var_and_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("MIRRORBAND_SHARED_DATA", str(tmp_path))
    assert datasets.shared_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError):
        datasets.uci_files()
    with pytest.raises(FileNotFoundError):
        datasets.load_plux("emg_bursts")
    with pytest.raises(FileNotFoundError):
        datasets.load_biosppy_emg()
    with pytest.raises(FileNotFoundError):
        datasets.load_uci(tmp_path / "nope.txt.gz")


def test_hold_on_grid():
    t = np.array([1.0, 3.0, 4.0, 7.0])  # ms
    v = np.array([10.0, 20.0, 30.0, 40.0])
    assert datasets.hold_on_grid(t, v).tolist() == [10, 10, 10, 20, 30, 30, 30, 40]


def test_uci_small_file(tmp_path):
    # 3 s synthetic file in the UCI layout: rest, a wrist flexion, rest, an extension
    rows = []
    rng = np.random.default_rng(0)
    for ms in range(0, 3000, 1):
        cls = 1 if ms < 500 else 3 if 1000 <= ms < 1500 else 4 if 2000 <= ms < 2500 else 0
        x = rng.normal(0, 2e-5, 8)
        if cls == 3:
            x[6] *= 20
        if cls == 4:
            x[2] *= 20
        rows.append("\t".join([str(ms + 1)] + [f"{v:.6g}" for v in x] + [str(cls)]))
    p = tmp_path / "s99_1_raw.txt.gz"
    with gzip.open(p, "wt") as f:
        f.write("time\t" + "\t".join(f"channel{i}" for i in range(1, 9)) + "\tclass\n" + "\n".join(rows) + "\n")
    rec = datasets.load_uci(p)
    assert list(rec.hands) == ["R"] and set(rec.hands["R"].emg) == {"FLEX", "EXT"}
    assert rec.emg_rate == EMG_RATE_HZ and len(rec.hands["R"].emg["FLEX"]) == 3001
    assert any("channel7" in n and "channel3" in n for n in rec.notes)
    bursts = rec.truth("BURST", "R")
    assert [x for a in bursts for x in (a.onset, a.duration)] == pytest.approx([1.001, 0.5, 2.001, 0.5])
    assert [a.text for a in rec.task_annotations()] == ["REST"]
    assert not datasets.load_uci(p, rest=False).task_annotations()


def test_uci_real_file(data_root):
    _need(data_root, datasets.UCI_DIR)
    files = datasets.uci_files(data_root)
    assert len(files) >= 1
    rec = datasets.load_uci(files[0])
    hand = rec.hands["R"]
    assert rec.emg_rate == 1000 and set(hand.emg) == {"FLEX", "EXT"}
    n = len(hand.emg["FLEX"])
    assert 45 < rec.duration < 80 and n == len(hand.emg["EXT"])
    bursts = rec.truth("BURST", "R")
    assert 8 <= len(bursts) <= 12
    assert all(1.0 < a.duration < 5.0 for a in bursts)
    assert not rec.truth("MIRROR") and not rec.truth("BURST", "L")
    assert all(a.text == "REST" for a in rec.task_annotations())
    # microvolts: rest RMS ~15-60 uV, gesture RMS ~100-600 uV (PROVENANCE sanity check x1e6)
    x = np.hypot(hand.emg["FLEX"], hand.emg["EXT"]) / np.sqrt(2)
    t = np.arange(n) / rec.emg_rate
    in_burst = np.zeros(n, bool)
    for a in bursts:
        in_burst |= (t >= a.onset) & (t < a.end)
    rest = rec.task_annotations()[0]
    at_rest = (t >= rest.onset) & (t < rest.end)
    rms_rest = np.sqrt(np.mean(x[at_rest] ** 2))
    rms_burst = np.sqrt(np.mean(x[in_burst] ** 2))
    assert 5 < rms_rest < 100 and 80 < rms_burst < 1000 and rms_burst > 3 * rms_rest
    assert np.max(np.abs(x)) < 5000
    assert any("200 Hz" in note for note in rec.notes)


def test_plux(data_root):
    _need(data_root, datasets.PLUX_DIR)
    for name, dur in (("emg_bursts", 28.5), ("emg_1000_hz_16_bits_solo.h5", 87.6)):
        rec = datasets.load_plux(name, data_root)
        assert rec.emg_rate == 1000 and abs(rec.duration - dur) < 0.1
        x = rec.hands["R"].emg["FLEX"]
        assert set(rec.hands["R"].emg) == {"FLEX"} and not rec.annotations
        assert np.max(np.abs(x)) <= 1500 and 10 < np.std(x) < 500


def test_biosppy(data_root):
    _need(data_root, datasets.BIOSPPY_DIR, "emg.txt")
    rec = datasets.load_biosppy_emg(data_root)
    x = rec.hands["R"].emg["FLEX"]
    assert rec.emg_rate == 1000 and len(x) == 100_000 and not rec.annotations
    assert abs(np.mean(x)) < 1e-9 and 1 < np.std(x) < 5 and np.max(np.abs(x)) < 30
