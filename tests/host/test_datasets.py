"""Loaders for the real recordings in ../shared/data (mirrorband.analysis.datasets); skipped when absent."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mirrorband.analysis import datasets
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
    for name, dur, n_bursts in (("emg_bursts", 28.5, 9), ("emg_1000_hz_16_bits_solo.h5", 87.6, 21)):
        rec = datasets.load_plux(name, data_root, labels=False)
        assert rec.emg_rate == 1000 and abs(rec.duration - dur) < 0.1
        x = rec.hands["R"].emg["FLEX"]
        assert set(rec.hands["R"].emg) == {"FLEX"} and not rec.annotations
        assert np.max(np.abs(x)) <= 1500 and 10 < np.std(x) < 500
        labelled = datasets.load_plux(name, data_root)
        bursts = labelled.truth("BURST", "R")
        assert len(bursts) == n_bursts and labelled.annotations == bursts  # BURST R only, no REST
        assert np.array_equal(labelled.hands["R"].emg["FLEX"], x)
        assert any("annotated bursts" in n for n in labelled.notes)


# --------------------------------------------------------------------------- our labels


def _band_rms(x, rate, a, b):
    y, _env = datasets.labelling_envelope(x, rate)
    return float(np.sqrt(np.mean(y[int(a * rate):int(b * rate)] ** 2)))


def test_label_files_well_formed():
    files = sorted(datasets.LABELS_DIR.glob("*.json"))
    assert {p.stem for p in files} == set(datasets.PLUX_NAMES)
    for p in files:
        d = datasets.load_labels(p.stem + ".h5")
        assert d["recording"] == p.stem + ".h5" and "not" in d["annotator"] and d["bursts"]
        assert all(0.1 <= b - a <= 3.0 for a, b in d["bursts"])
        for c in d["corrections"]:  # every hand correction is recorded with the rule's value
            assert list(d["bursts"][c["index"]]) == c["label"] != c["rule"]
        assert all(not (a < e and s < b) for s, e in (x["span"] for x in d["excluded"]) for a, b in d["bursts"])


def test_labels_reproduce_rule_and_mark_energy(data_root):
    """The labels are the documented rule plus the listed hand corrections, and sit where the energy is."""
    _need(data_root, datasets.PLUX_DIR)
    for name in datasets.PLUX_NAMES:
        d = datasets.load_labels(name)
        rec = datasets.load_plux(name, data_root, labels=False)
        x, rate = rec.hands["R"].emg["FLEX"], rec.emg_rate
        draft = [[round(a, 3), round(b, 3)] for a, b in datasets.rule_bursts(x, rate, **d["rule"])]
        fixed = {c["index"]: c for c in d["corrections"]}
        assert len(draft) == len(d["bursts"])
        for i, (rule, lab) in enumerate(zip(draft, d["bursts"], strict=True)):
            assert rule == (fixed[i]["rule"] if i in fixed else list(lab))
        _y, env = datasets.labelling_envelope(x, rate)
        q = datasets.quiet_level(env, rate)
        assert d["quiet_level_uV"] == pytest.approx(q, abs=1e-3)
        for a, b in d["bursts"]:
            assert _band_rms(x, rate, a, b) > 5 * q


def test_load_labels_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "LABELS_DIR", tmp_path)
    assert datasets.load_labels("emg_bursts.h5") is None
    base = {"recording": "x.h5", "method": "m", "annotator": "a"}
    for bursts in ([[2.0, 1.0]], [[0.0, 2.0], [1.0, 3.0]], [["a", 1]], [[1.0]]):
        (tmp_path / "x.json").write_text(json.dumps({**base, "bursts": bursts}))
        with pytest.raises(ValueError, match="x.json"):
            datasets.load_labels("x.h5")
    (tmp_path / "x.json").write_text(json.dumps({"recording": "x.h5", "bursts": []}))
    with pytest.raises(ValueError, match="method"):
        datasets.load_labels("x.h5")
    with pytest.raises(ValueError, match="1 < k_off"):
        datasets.rule_bursts(np.zeros(5000), 1000.0, k_on=2.0, k_off=3.0)


def test_real_sources(data_root, tmp_path):
    assert datasets.real_sources(tmp_path) == {}
    got = datasets.real_sources(data_root)
    if (data_root / datasets.UCI_DIR).is_dir():
        assert len(got["uci"]) == len(datasets.uci_files(data_root))
        assert all(r.truth("BURST", "R") and r.task_annotations() for r in got["uci"])
    if (data_root / datasets.PLUX_DIR).is_dir():
        assert [r.name for r in got["plux"]] == [f"{n}.h5" for n in datasets.PLUX_NAMES]
    assert "biosppy" not in got


def test_biosppy(data_root):
    _need(data_root, datasets.BIOSPPY_DIR, "emg.txt")
    rec = datasets.load_biosppy_emg(data_root)
    x = rec.hands["R"].emg["FLEX"]
    assert rec.emg_rate == 1000 and len(x) == 100_000 and not rec.annotations
    assert abs(np.mean(x)) < 1e-9 and 1 < np.std(x) < 5 and np.max(np.abs(x)) < 30
