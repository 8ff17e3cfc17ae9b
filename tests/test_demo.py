"""``mirrorband demo``: the timed virtual radio, the two real virtual bands (firmware on
emulated sensors) and the BLE controller run a short session end to end in-process (live
envelopes of both hands, events, download with the bands' activity spans), and the command itself starts in a terminal and stops
everything on quit (no child process, no thread left)."""

from __future__ import annotations

import asyncio
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mirrorband.cli.demo import run_demo
from mirrorband.control.controller import ProtocolStep

pytestmark = [pytest.mark.timeout(120)]

# the simulated patient follows the task's steps (re-simulated for them): REST 15 s, then
# the left hand writes for 8 s
SHORT = (ProtocolStep("REST", 15), ProtocolStep("WRITE L", 8))


def test_scripted_flow_pair_task_download(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def flow(ctl: Any, store_dir: Path) -> int:
        bands = await ctl.scan(2.0)
        seen["hands"] = sorted(b.hand for b in bands)
        for b in bands:
            st = await ctl.pair(b.id)
            assert st.firmware_version and st.clock_error_ms is not None
        await ctl.set_task(SHORT)
        await ctl.start_task()
        frames = [f async for f in ctl.live()]
        seen["finished"] = frames[-1].finished
        seen["live"] = [e for f in frames for e in f.events]
        seen["env"] = {h: [v for f in frames for v in f.envelopes.get(h, [])] for h in "LR"}
        seen["status"] = [await ctl.band_status(i) for i in ctl.paired()]
        seen["results"] = await ctl.download()
        return 0

    threads = set(threading.enumerate())
    assert asyncio.run(run_demo(tmp_path, body=flow)) == 0
    assert seen["hands"] == ["L", "R"] and seen["finished"]
    res = {r.hand: r for r in seen["results"]}
    assert res["L"].session_id == res["R"].session_id is not None
    assert sum(r.events for r in res.values()) == len(seen["live"])  # everything streamed was stored
    # live envelopes over BLE: about one value per 0.1 s of the 15 s task for each hand
    for h in "LR":
        assert 200 <= len(seen["env"][h]) <= 250, (h, len(seen["env"][h]))
        assert max(seen["env"][h]) > 2.0  # writing shows above the resting baseline
    for st in seen["status"]:  # electrodes known after a task: contact and a resting level
        assert [c.lead_off for c in st.channels] == [False, False]
        assert all(c.noise_uv is not None and c.noise_uv > 0 for c in st.channels), st.channels
    assert (tmp_path / "keystore.json").exists() and (tmp_path / "store").is_dir()
    # each band logged its own writing-activity spans (ACTIVITY records) for the session
    from mbfw.logrec import T_ACTIVITY, parse_records, unpack_activity

    spans = {}
    for hand in "LR":
        segs = sorted((tmp_path / "flash" / hand).rglob("e*"))
        spans[hand] = [unpack_activity(p) for f in segs for _s, t, p in parse_records(f.read_bytes())
                       if t == T_ACTIVITY]
        assert all(s[3] == "LR".index(hand) and 0 <= s[1] < s[2] <= 2300 for s in spans[hand]), spans
    assert len({s[0] for v in spans.values() for s in v}) == 1  # one session id on both bands
    # the left hand writes from 15 s (window 1500): most of it is in its activity spans
    assert sum(min(s[2], 2300) - max(s[1], 1500) for s in spans["L"] if s[2] > 1500) > 400, spans
    time.sleep(0.2)  # to_thread workers wind down
    left = [t for t in threading.enumerate() if t not in threads and not t.name.startswith("asyncio_")]
    assert left == []
    # a second run provisions the (erased) bands again in the same demo keystore and pairs

    async def pair_only(ctl: Any, _store: Path) -> int:
        for b in await ctl.scan(2.0):
            await ctl.pair(b.id)
        return len(ctl.paired())

    assert asyncio.run(run_demo(tmp_path, body=pair_only)) == 2


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _read_until(fd: int, want: bytes, timeout: float) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while want not in buf and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                buf += os.read(fd, 65536)
            except OSError:
                break
    return buf


def test_demo_command_opens_the_ui_and_quits_cleanly(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(["host", "firmware"]), TERM="xterm-256color",
               COLUMNS="80", LINES="24")
    proc = subprocess.Popen([sys.executable, "-m", "mirrorband.cli", "demo", "--data-dir", str(tmp_path)],
                            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[1])
    os.close(slave)
    try:
        out = _read_until(master, b"Scan", 60)
        assert b"Scan" in out, out[-2000:]
        assert _children(proc.pid) == []  # everything runs in the one process
        os.write(master, b"q")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_summary_for_scripts(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mirrorband.cli", "demo", "--summary"], capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONPATH="host:firmware"),
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0 and r.stdout.strip()


def test_demo_without_terminal_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "mirrorband.cli", "demo", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH="host:firmware"), cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--summary" in r.stderr
