"""Long recordings in bounded memory: chunked reading and replay give the events of the whole.

Short recordings with small chunks (1 s, 3 s) so that bursts, baseline blocks,
IMU filters and merge gaps straddle chunk boundaries.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from mirrorband.detect.bandio import prepare, streams
from mirrorband.detect.replay import replay_events
from mirrorband.recording import HandSignals, Recording
from mirrorband.sessions.edf import open_edf, read_edf, write_edf
from mirrorband.sim.simulate import simulate


@pytest.fixture(scope="module")
def rec():
    return simulate("severe-L", seed=4)


@pytest.mark.parametrize("chunk", [1000, 3000, 7000])
def test_numpy_port_in_chunks_equals_the_firmware(rec, chunk):
    ref = replay_events(rec, "cpython")
    assert ref
    assert replay_events(rec, "numpy", chunk=chunk) == ref
    assert replay_events(rec, "cpython", chunk=chunk) == ref


def test_one_hand_without_imu_in_chunks():
    r = simulate("moderate-R", seed=2)
    only = Recording(hands={"R": HandSignals(emg={"FLEX": r.hands["R"].emg["FLEX"]})},
                     emg_rate=r.emg_rate, imu_rate=r.imu_rate, annotations=r.annotations)
    ref = replay_events(only, "cpython")
    assert replay_events(only, "numpy", chunk=2000) == ref


def test_micropython_in_chunks_over_a_pipe(rec, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    ref = replay_events(rec, "cpython")
    assert replay_events(rec, "micropython", chunk=3000) == ref
    assert list(tmp_path.iterdir()) == []  # no temporary file


def test_open_edf_reads_what_read_edf_reads(rec, tmp_path):
    p = tmp_path / "r.edf"
    write_edf(rec, p)
    whole = read_edf(p)
    with open_edf(p) as sig:
        a, b = prepare(whole), prepare(sig)
        assert a.settings == b.settings and a.points == b.points and a.n == b.n
        for x, y in zip(streams(whole), b.streams(), strict=True):
            assert np.array_equal(x.emg, y.emg) and np.array_equal(x.acc, y.acc)
            assert np.array_equal(x.imu_win, y.imu_win)
        assert replay_events(b, "numpy", chunk=4000) == replay_events(whole, "cpython")


def test_open_edf_resamples_whole_when_rates_differ(tmp_path):
    r = simulate("mild-R", seed=6, emg_rate=2048.0)
    p = tmp_path / "r.edf"
    write_edf(r, p)
    ref = replay_events(read_edf(p), "cpython")  # (edflib opens a file once at a time)
    with open_edf(p) as sig:
        assert replay_events(sig, "numpy", chunk=5000) == ref
        assert any("resampled" in n for n in sig.notes)


def test_chunk_size_must_keep_blocks_whole(rec):
    with pytest.raises(ValueError):
        list(prepare(rec).chunks(1500))
    assert os.environ.get("MIRRORBAND_NEVER_SET") is None
