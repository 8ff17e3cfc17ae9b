"""mirrorband scan / pair / download: one-line errors (exit 2) and a full run against a
radio hub process with a band served from a thread."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mirrorband.bands.keystore import BandKey, Keystore
from mirrorband.cli.core import main

from .harness import KEY, Band

pytestmark = pytest.mark.timeout(90)


def test_sim_without_radio_is_a_one_line_error(monkeypatch, capsys, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("MIRRORBAND_HOST_HCI", raising=False)
    monkeypatch.setenv("MIRRORBAND_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    for cmd in ("scan", "pair", "download"):
        assert main([cmd, "--sim"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "virtual radio" in err[0], err


SID = 4711
START_MS = 5_000


def fill_run(band: Band, n: int) -> None:
    """A task run in the band's log: start marker, n events (hand L), activity spans, stop marker."""
    import random

    from mbfw import events
    from mbfw.logrec import SESSION_START, SESSION_STOP, T_EVENT, T_SESSION, session_payload

    rng = random.Random(9)
    log = band.log
    log.append(T_SESSION, session_payload(SID, SESSION_START, 0, 3, START_MS, 1_700_000_000))
    t = START_MS + 1000
    for i in range(n):
        if i % 50 == 0:  # activity windows (docs/storage.md ACTIVITY: "<IIIBBH")
            w0 = (t - START_MS) // 10
            log.append(4, struct.pack("<IIIBBH", SID, w0, w0 + 30, 0, 0, 0))
        d = rng.randint(150, 900)
        ev = [0, rng.randint(1, 3), 0, 0, t, t + d, 160, 500, 40, 20, 1]
        if ev[1] == 3:
            ev[3] = 1
        log.append(T_EVENT, events.pack(ev))
        band.run_events.append(ev)
        t += d + rng.randint(100, 400)
    log.append(T_SESSION, session_payload(SID, SESSION_STOP, 0, 3, t + 500, 1_700_000_100))


@pytest.fixture
def hub_and_band(tmp_path: Path):  # noqa: ANN201
    env = dict(os.environ, PYTHONPATH="host:firmware")
    proc = subprocess.Popen([sys.executable, "-m", "mirrorband.sim.vradio.hub", "host", "band-L", "--untimed"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=str(Path(__file__).parents[2]))
    specs = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "ready":
            break
        name, spec = line.split()
        specs[name] = spec
    loop = asyncio.new_event_loop()
    box: dict = {}
    started = threading.Event()

    async def serve() -> None:
        band = await Band(None, "MB-L", tmp_path / "log", hci=specs["band-L"]).start()
        band.run_events = []  # type: ignore[attr-defined]
        band.fill(20, seed=4)  # records outside a task run
        fill_run(band, 400)
        box["band"] = band
        started.set()
        box["stop"] = asyncio.Event()
        await box["stop"].wait()
        await band.stop()

    t = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    t.start()
    assert started.wait(20)
    yield specs["host"], box["band"]
    loop.call_soon_threadsafe(box["stop"].set)
    t.join(10)
    proc.terminate()
    proc.wait(10)


def test_scan_pair_download_on_the_virtual_radio(hub_and_band, monkeypatch, capsys, tmp_path) -> None:  # noqa: ANN001
    host_hci, band = hub_and_band
    monkeypatch.setenv("MIRRORBAND_HOST_HCI", host_hci)
    monkeypatch.setenv("MIRRORBAND_DATA_DIR", str(tmp_path / "data"))
    assert main(["scan", "--sim", "--json", "--timeout", "1"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["name"] == "MB-L" and found["hand"] == "L"
    # not provisioned on this computer
    assert main(["pair", "--sim", "--timeout", "1"]) == 2
    assert "provisioned" in capsys.readouterr().err
    Keystore().put(BandKey(band.device.band_id.hex(), KEY, "L", "P01", 0, True))
    assert main(["pair", "--sim", "--timeout", "1"]) == 0
    assert band.device.band_id.hex() in capsys.readouterr().out
    data = tmp_path / "data"
    assert main(["download", "--sim", "--timeout", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "430 new records" in out and "20 records outside a task run" in out, out
    # into the store: one session of the task run, its events, raw pages kept; no loose files left
    assert main(["sessions", "--json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)["sessions"]
    assert s["source"] == "bands" and s["n_events"] == 400, s
    assert main(["report", str(s["id"]), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["session"] == s["id"] and "metrics" in rep
    from mirrorband.sessions.session import load
    from mirrorband.sessions.store import Store
    with Store(data) as st:
        sess = load(st, s["id"])
        want = [(ev[4] - START_MS, ev[5] - START_MS) for ev in band.run_events]
        assert [(round(e["onset_s"] * 1000), round(e["offset_s"] * 1000)) for e in sess.events] == want
        (lg,) = st.band_logs(f"P01/{SID}")
        assert (st.dir / lg["raw_path"]).stat().st_size > 400 * 38
        assert lg["markers"]["activity"][0] == [START_MS + 1000, START_MS + 1300]
    pend = data / "incoming" / f"band-{band.device.band_id.hex()}"
    assert sorted(p.name for p in pend.iterdir()) == ["last"]
    assert not (data / "downloads").exists()
    # again: nothing new, the same single session; a band name that is not there
    assert main(["download", "--sim", "--timeout", "1", "--quiet"]) == 0
    assert "0 new records" in capsys.readouterr().out
    assert main(["sessions", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["sessions"]) == 1
    assert main(["download", "MB-X", "--sim", "--timeout", "0.5"]) == 2
    assert "not found" in capsys.readouterr().err
