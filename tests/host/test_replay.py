"""Replay: the FORMATS.md §2 contract, identical events across runtimes, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mirrorband.cli.core import main
from mirrorband.detect.replay import replay, replay_events
from mirrorband.recording import HandSignals, Recording
from mirrorband.sessions.edf import read_edf, write_edf
from mirrorband.sim.simulate import simulate


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "moderate_R.edf"
    write_edf(simulate("moderate-R", seed=3), path)
    return path


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mirrorband.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_replay_json_follows_the_contract(sim_file):
    proc = cli("replay", str(sim_file), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # nothing else on stdout
    assert out["recording"] == sim_file.name
    assert out["runtime"] == "cpython"
    assert isinstance(out["firmware_version"], str)
    assert 150 < out["duration_s"] < 160
    ev = out["events"]
    assert ev, "a moderate patient has bursts"
    assert [e["onset_s"] for e in ev] == sorted(e["onset_s"] for e in ev)
    for e in ev:
        assert e["hand"] in ("L", "R")
        assert e["kind"] in ("mirror", "burst", "artifact")
        assert 0 <= e["onset_s"] < e["offset_s"] <= out["duration_s"] + 0.1
        assert set(e["channels"]) <= {"FLEX", "EXT"}
    assert any(e["kind"] == "mirror" and e["hand"] == "R" for e in ev)


def test_runtimes_give_identical_events(sim_file):
    rec = read_edf(sim_file)
    ref = replay_events(rec, "cpython")
    assert replay_events(rec, "numpy") == ref
    assert replay_events(rec, "micropython") == ref
    assert json.loads(cli("replay", str(sim_file), "--json", "--runtime", "micropython").stdout)["events"] == \
        replay(rec)["events"]


@pytest.mark.parametrize("scenario,rate,mains", [
    ("severe-L", 2048.0, 60), ("mild-R", 500.0, 50), ("control", 1000.0, 60), ("moderate-L", 1500.0, 50)])
def test_numpy_port_equals_firmware_on_simulated_recordings(tmp_path, scenario, rate, mains):
    path = tmp_path / "r.edf"
    write_edf(simulate(scenario, seed=11, emg_rate=rate, mains_hz=mains), path)
    rec = read_edf(path)
    assert replay_events(rec, "numpy") == replay_events(rec, "cpython")


def test_one_hand_without_imu_marks_peer_unknown():
    rec = simulate("severe-R", seed=5)
    only = Recording(hands={"R": HandSignals(emg={"FLEX": rec.hands["R"].emg["FLEX"]})},
                     emg_rate=rec.emg_rate, imu_rate=rec.imu_rate, annotations=rec.annotations)
    ev = replay(only)["events"]
    assert ev and all(e.get("peer_unknown") for e in ev)
    assert all("imu_deg" not in e and "cci" not in e for e in ev)
    assert any(e["kind"] == "mirror" for e in ev)  # from the task step
    assert replay_events(only, "numpy") == replay_events(only, "cpython")


def test_ground_truth_does_not_influence_detection():
    rec = simulate("moderate-R", seed=8)
    a = replay(rec)["events"]
    rec.annotations = [x for x in rec.annotations if x.text.split()[0] not in ("MIRROR", "BURST", "ARTIFACT")]
    assert replay(rec)["events"] == a


# --- bad input ------------------------------------------------------------------------

def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_replay_rejects_a_non_edf_file(tmp_path):
    bad = tmp_path / "notes.edf"
    bad.write_text("these are not biosignals\n" * 20)
    _one_error_line(cli("replay", str(bad), "--json"))


def test_replay_rejects_truncated_and_missing_files(tmp_path, sim_file):
    cut = tmp_path / "cut.edf"
    cut.write_bytes(sim_file.read_bytes()[:5000])
    _one_error_line(cli("replay", str(cut)))
    _one_error_line(cli("replay", str(tmp_path / "absent.edf")))


def test_replay_rejects_emg_below_500_hz(tmp_path):
    import pyedflib

    path = tmp_path / "slow.edf"
    w = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": "EMG L FLEX", "dimension": "uV", "sample_frequency": 400,
                         "physical_max": 100.0, "physical_min": -100.0,
                         "digital_max": 32767, "digital_min": -32768}])
    w.writeSamples([np.random.default_rng(0).normal(0, 5, 400 * 20)])
    w.close()
    line = _one_error_line(cli("replay", str(path)))
    assert "500" in line


def test_simulate_bad_input_leaves_nothing_behind(tmp_path):
    _one_error_line(cli("simulate", "--scenario", "catastrophic", "-o", str(tmp_path / "x.edf")))
    _one_error_line(cli("simulate", "--scenario", "mild", "--emg-rate", "100", "-o", str(tmp_path / "x.edf")))
    _one_error_line(cli("simulate", "--scenario", "mild", "-o", str(tmp_path / "nodir" / "x.edf")))
    assert list(tmp_path.iterdir()) == []


def test_every_command_has_help():
    for cmd in ("simulate", "replay", "eval", "bench", "demo"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0


def test_band_limited_emg_turns_the_lf_rule_off():
    from mirrorband.detect.bandio import band_settings, effective_emg_rate

    rec = simulate("moderate-R", seed=3, emg_rate=1000.0)
    assert effective_emg_rate(rec) > 900
    settings, notes = band_settings(rec)
    assert "lf_k" not in settings and notes == []
    # the same signals held for 10 samples: a 100 Hz device upsampled to 1 kHz
    held = {h: HandSignals(emg={c: np.repeat(np.asarray(x)[::10], 10) for c, x in s.emg.items()}, acc=s.acc, gyr=s.gyr)
            for h, s in rec.hands.items()}
    slow = Recording(hands=held, emg_rate=rec.emg_rate, imu_rate=rec.imu_rate, annotations=rec.annotations)
    assert 90 <= effective_emg_rate(slow) <= 110
    settings, notes = band_settings(slow)
    assert settings["lf_k"] == 0 and "band-limited" in notes[0]
    assert band_settings(slow, {"lf_k": 10})[0]["lf_k"] == 10  # an explicit setting wins
    assert replay_events(slow, "numpy") == replay_events(slow, "cpython")


def test_eval_cli_scores_a_recording(sim_file):
    proc = cli("eval", "--json", str(sim_file))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["summary"]["burst_f1"] >= 0.9 and out["recordings"][0]["recording"] == sim_file.name


def test_demo_prints_a_readable_summary():
    proc = cli("demo", "--summary", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "mirror" in proc.stdout.lower() and "Traceback" not in proc.stderr
