"""mirrorband scan / pair / download: one-line errors (exit 2) and a full run against a
radio hub process with a band served from a thread."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mirrorband.cli import main
from mirrorband.keystore import BandKey, Keystore

from .harness import KEY, Band, record_hash

pytestmark = pytest.mark.timeout(90)


def test_sim_without_radio_is_a_one_line_error(monkeypatch, capsys, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv("MIRRORBAND_HOST_HCI", raising=False)
    monkeypatch.setenv("MIRRORBAND_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    for cmd in ("scan", "pair", "download"):
        assert main([cmd, "--sim"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "virtual radio" in err[0], err


@pytest.fixture
def hub_and_band(tmp_path: Path):  # noqa: ANN201
    env = dict(os.environ, PYTHONPATH="host:firmware")
    proc = subprocess.Popen([sys.executable, "-m", "mirrorband.vradio.hub", "host", "band-L", "--untimed"],
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
        band.fill(500, seed=4)
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
    assert main(["download", "--sim", "--timeout", "1", "--out", str(tmp_path / "dl"), "--quiet"]) == 0
    assert "500 new records" in capsys.readouterr().out
    lines = (tmp_path / "dl" / f"band-{band.device.band_id.hex()}.records.jsonl").read_text().splitlines()
    got = {r["seq"]: record_hash(r["seq"], r["type"], bytes.fromhex(r["payload"])) for r in map(json.loads, lines)}
    assert got == band.hashes
    # again: nothing new; a band name that is not there
    assert main(["download", "--sim", "--timeout", "1", "--out", str(tmp_path / "dl"), "--quiet"]) == 0
    assert "0 new records" in capsys.readouterr().out
    assert main(["download", "MB-X", "--sim", "--timeout", "0.5"]) == 2
    assert "not found" in capsys.readouterr().err
